defmodule McpSessionStore.CoreCases do
  @moduledoc false
  # The core behaviours, as one set of tests that `use` instantiates for one
  # backend: `use McpSessionStore.CoreCases, backend: "sqlite"`.

  defmacro __using__(opts) do
    backend = Keyword.fetch!(opts, :backend)

    quote do
      use ExUnit.Case, async: true

      alias McpSessionStore, as: S
      alias McpSessionStore.{EventId, Page, Session, StateEntry, Event, TestBackends}

      @moduletag backend: unquote(backend)
      @backend unquote(backend)

      defp open_store(opts \\ []) do
        url = TestBackends.url(@backend)
        {:ok, store} = S.open(url, opts)
        on_exit(fn -> TestBackends.cleanup(url) end)
        store
      end

      setup do
        %{store: open_store()}
      end

      test "#{@backend}: open reports the backend", %{store: store} do
        assert %S{backend: @backend} = store
        assert is_binary(S.core_version())
      end

      test "#{@backend}: create, get, ids and timestamps", %{store: store} do
        {:ok, %Session{} = s} = S.create_session(store, metadata: %{user: "ada", n: 1})
        assert s.id =~ ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
        assert s.metadata == %{"user" => "ada", "n" => 1}
        assert s.expires_at > s.created_at
        assert s.ttl_ms == 30 * 60 * 1000
        assert {:ok, ^s} = S.get_session(store, s.id)

        {:ok, other} = S.create_session(store)
        assert other.id != s.id

        {:ok, named} = S.create_session(store, id: "client-1", ttl: "1h")
        assert named.id == "client-1"
        assert named.ttl_ms == 3_600_000
        assert named.metadata == %{}
      end

      test "#{@backend}: an existing id is already_exists and keeps the original",
           %{store: store} do
        {:ok, _} = S.create_session(store, id: "dup", metadata: %{"v" => 1})

        assert {:error, {:already_exists, msg}} =
                 S.create_session(store, id: "dup", metadata: %{"v" => 2})

        assert msg =~ "dup"
        assert {:ok, %{metadata: %{"v" => 1}}} = S.get_session(store, "dup")
      end

      test "#{@backend}: a missing session is not_found; bang variants raise", %{store: store} do
        assert {:error, {:not_found, _}} = S.get_session(store, "nope")
        assert {:error, {:not_found, _}} = S.update_session(store, "nope", %{a: 1})
        assert {:error, {:not_found, _}} = S.touch_session(store, "nope")
        assert {:error, {:not_found, _}} = S.set_state(store, "nope", "k", 1)
        assert {:error, {:not_found, _}} = S.append_event(store, "nope", "s", 1)

        error = assert_raise McpSessionStore.Error, fn -> S.get_session!(store, "nope") end
        assert error.kind == :not_found
        assert Exception.message(error) =~ "not_found: "

        s = S.create_session!(store)
        assert %Session{} = S.get_session!(store, s.id)
      end

      test "#{@backend}: update merges shallowly and bumps the version", %{store: store} do
        s = S.create_session!(store, metadata: %{a: 1, b: %{x: 1}})
        {:ok, u} = S.update_session(store, s.id, %{"b" => %{"y" => 2}, c: [1, 2]})
        assert u.metadata == %{"a" => 1, "b" => %{"y" => 2}, "c" => [1, 2]}
        assert u.version > s.version
        assert u.created_at == s.created_at
        {:ok, t} = S.touch_session(store, s.id)
        assert t.version == u.version
        assert t.expires_at >= u.expires_at
      end

      test "#{@backend}: delete is idempotent and removes state and events", %{store: store} do
        s = S.create_session!(store)
        S.set_state!(store, s.id, "k", 1)
        S.append_event!(store, s.id, "_GET_stream", %{n: 1})
        assert {:ok, true} = S.delete_session(store, s.id)
        assert {:ok, false} = S.delete_session(store, s.id)
        assert {:error, {:not_found, _}} = S.get_session(store, s.id)
        assert {:error, {:not_found, _}} = S.state_keys(store, s.id)

        assert {:error, {:not_found, _}} =
                 S.events_after(store, s.id, EventId.start("_GET_stream"))

        # The id can be used again, with nothing of the old session.
        S.create_session!(store, id: s.id)
        assert {:ok, []} = S.state_keys(store, s.id)
      end

      test "#{@backend}: list and count sessions, paginated", %{store: store} do
        ids = for i <- 1..25, do: "s-#{String.pad_leading(Integer.to_string(i), 2, "0")}"
        for id <- ids, do: S.create_session!(store, id: id)
        assert {:ok, 25} = S.count_sessions(store)

        {:ok, %Page{items: first, next: next}} = S.list_sessions(store, limit: 10)
        assert Enum.map(first, & &1.id) == Enum.take(ids, 10)
        assert next == "s-10"

        all = collect_sessions(store, nil, [])
        assert all == ids
        assert {:ok, %Page{items: [], next: nil}} = S.list_sessions(store, after: "s-25")
      end

      defp collect_sessions(store, after_id, acc) do
        {:ok, page} = S.list_sessions(store, after: after_id, limit: 7)
        acc = acc ++ Enum.map(page.items, & &1.id)
        if page.next, do: collect_sessions(store, page.next, acc), else: acc
      end

      test "#{@backend}: state keys are stored and versioned one by one", %{store: store} do
        s = S.create_session!(store)
        assert {:ok, nil} = S.get_state(store, s.id, "missing")
        {:ok, v1} = S.set_state(store, s.id, "b", %{x: [1, 2.5, "three", nil, true, false]})
        {:ok, v2} = S.set_state(store, s.id, "a", "plain")
        assert v2 > v1

        assert {:ok, %StateEntry{key: "b", value: value, version: ^v1}} =
                 S.get_state(store, s.id, "b")

        assert value == %{"x" => [1, 2.5, "three", nil, true, false]}
        assert {:ok, ["a", "b"]} = S.state_keys(store, s.id)
        assert {:ok, [%StateEntry{key: "a"}, %StateEntry{key: "b"}]} = S.state_all(store, s.id)
        assert {:ok, true} = S.delete_state(store, s.id, "a")
        assert {:ok, false} = S.delete_state(store, s.id, "a")
        assert {:ok, ["b"]} = S.state_keys(store, s.id)
      end

      test "#{@backend}: JSON values round-trip", %{store: store} do
        s = S.create_session!(store)

        values = [
          nil,
          true,
          false,
          0,
          -1,
          9_223_372_036_854_775_807,
          -9_223_372_036_854_775_808,
          18_446_744_073_709_551_615,
          1.5,
          -0.25,
          1.0e300,
          "",
          "ünïcødé ✓ \u0000 nul",
          [],
          %{},
          [1, [2, [3, %{"deep" => [%{}]}]]],
          %{"nested" => %{"list" => [1, "a", nil], "empty" => %{}}}
        ]

        for {value, i} <- Enum.with_index(values) do
          S.set_state!(store, s.id, "k#{i}", value)
          assert %StateEntry{value: ^value} = S.get_state!(store, s.id, "k#{i}")
        end

        # Atoms: keys and values become strings; nil/true/false stay.
        S.set_state!(store, s.id, "atoms", %{status: :ok, list: [:a, nil, true]})

        assert %StateEntry{value: %{"status" => "ok", "list" => ["a", nil, true]}} =
                 S.get_state!(store, s.id, "atoms")
      end

      test "#{@backend}: compare-and-set", %{store: store} do
        s = S.create_session!(store)
        {:ok, v1} = S.set_state_if_version(store, s.id, "k", 1, nil)
        assert {:error, {:conflict, _}} = S.set_state_if_version(store, s.id, "k", 2, nil)
        assert {:error, {:conflict, _}} = S.set_state_if_version(store, s.id, "k", 2, v1 + 100)
        assert %StateEntry{value: 1, version: ^v1} = S.get_state!(store, s.id, "k")
        {:ok, v2} = S.set_state_if_version(store, s.id, "k", 2, v1)
        assert v2 > v1
        assert %StateEntry{value: 2} = S.get_state!(store, s.id, "k")
      end

      test "#{@backend}: update_state applies a function", %{store: store} do
        s = S.create_session!(store)
        {:ok, e1} = S.update_state(store, s.id, "n", fn nil -> 1 end)
        assert e1.value == 1
        {:ok, e2} = S.update_state(store, s.id, "n", &(&1 + 41))
        assert e2.value == 42
        assert e2.version > e1.version
        {:ok, e3} = S.update_state(store, s.id, "m", fn nil -> %{a: :b} end)
        assert e3.value == %{"a" => "b"}
        assert {:error, {:not_found, _}} = S.update_state(store, "nope", "n", &(&1 + 1))
      end

      test "#{@backend}: events get increasing seqs and replay per stream", %{store: store} do
        s = S.create_session!(store)
        {:ok, e1} = S.append_event(store, s.id, "_GET_stream", %{n: 1})

        {:ok, e2} =
          S.append_event(store, s.id, "2", %{n: 2}, event_type: "message", retry_ms: 500)

        {:ok, e3} = S.append_event(store, s.id, "_GET_stream", %{n: 3})
        {:ok, e4} = S.append_priming(store, s.id, "2")
        assert [e1.seq, e2.seq, e3.seq, e4.seq] == [1, 2, 3, 4]
        assert %Event{event_type: "message", retry_ms: 500, priming: false} = e2
        assert %Event{data: nil, priming: true} = e4
        assert e1.data == %{"n" => 1}
        assert S.get_session!(store, s.id).last_seq == 4

        {:ok, page} = S.events_after(store, s.id, EventId.start("_GET_stream"))
        assert Enum.map(page.items, & &1.seq) == [1, 3]
        # A short page is the last one.
        assert page.next == nil

        {:ok, page} = S.events_after(store, s.id, {"2", 0})
        assert Enum.map(page.items, & &1.seq) == [2, 4]

        # Resume with Last-Event-ID: only that stream, after it.
        {:ok, page} = S.replay(store, s.id, e1.wire_id)
        assert Enum.map(page.items, & &1.seq) == [3]
        {:ok, page} = S.replay(store, s.id, e3.wire_id)
        assert page.items == []
      end

      test "#{@backend}: event pages follow the limit", %{store: store} do
        s = S.create_session!(store)
        for i <- 1..12, do: S.append_event!(store, s.id, "st", i)
        {:ok, p1} = S.events_after(store, s.id, EventId.start("st"), limit: 5)
        assert Enum.map(p1.items, & &1.data) == [1, 2, 3, 4, 5]
        {:ok, p2} = S.replay(store, s.id, p1.next, limit: 5)
        assert Enum.map(p2.items, & &1.data) == [6, 7, 8, 9, 10]
        {:ok, p3} = S.replay(store, s.id, p2.next, limit: 5)
        assert Enum.map(p3.items, & &1.data) == [11, 12]
      end

      test "#{@backend}: wire ids are bound to their session", %{store: store} do
        a = S.create_session!(store)
        b = S.create_session!(store)
        e = S.append_event!(store, a.id, "_GET_stream", "x")
        S.append_event!(store, b.id, "_GET_stream", "y")

        assert {:ok, %EventId{stream_id: "_GET_stream", seq: 1}} = EventId.parse(e.wire_id, a.id)
        assert {:ok, wire} = EventId.format(%EventId{stream_id: "_GET_stream", seq: 1}, a.id)
        assert wire == e.wire_id
        assert {:error, {:invalid_input, _}} = EventId.parse(e.wire_id, b.id)
        assert {:error, {:invalid_input, _}} = S.replay(store, b.id, e.wire_id)
        assert {:error, {:invalid_input, _}} = S.replay(store, a.id, "1.garbage")
        tampered = String.replace_prefix(e.wire_id, "1.", "2.")
        assert {:error, {:invalid_input, _}} = S.replay(store, a.id, tampered)
      end

      test "#{@backend}: trimming keeps the newest and reports expired cursors" do
        store = open_store(max_events_per_session: 3)
        s = S.create_session!(store)
        events = for i <- 1..5, do: S.append_event!(store, s.id, "st", i)
        {:ok, page} = S.events_after(store, s.id, {"st", 2})
        assert Enum.map(page.items, & &1.seq) == [3, 4, 5]
        # Replaying from before what was kept would skip events: reported.
        assert {:error, {:cursor_expired, _}} = S.events_after(store, s.id, EventId.start("st"))
        first = hd(events)
        assert {:error, {:cursor_expired, _}} = S.replay(store, s.id, first.wire_id)
        # Seqs are never reused after trimming.
        assert S.append_event!(store, s.id, "st", 6).seq == 6
      end

      test "#{@backend}: expired sessions are invisible and cleaned up" do
        # The TTL has to outlast the three writes that set the session up: on
        # the DynamoDB emulator, under the rest of the async suite, one write
        # can take longer than 100 ms.
        store = open_store(ttl: 1_000)
        s = S.create_session!(store)
        S.set_state!(store, s.id, "k", 1)
        S.append_event!(store, s.id, "st", 1)
        keep = S.create_session!(store, ttl: "1h")
        Process.sleep(1_300)
        assert {:error, {:not_found, _}} = S.get_session(store, s.id)
        assert {:error, {:not_found, _}} = S.touch_session(store, s.id)
        assert {:ok, 1} = S.count_sessions(store)
        {:ok, stats} = S.cleanup_expired(store)
        assert stats.sessions == 1
        assert stats.state_entries == 1
        assert stats.events == 1
        assert {:ok, %Session{}} = S.get_session(store, keep.id)
      end

      test "#{@backend}: the sweeper removes expired sessions" do
        store = open_store(ttl: 50)
        for _ <- 1..3, do: S.create_session!(store)
        {:ok, sweeper} = S.start_sweeper(store, 20)

        stats =
          wait_until(fn ->
            {:ok, stats} = S.sweeper_stats(sweeper)
            stats.sessions_removed == 3 && stats
          end)

        assert stats.errors == 0
        assert {:ok, true} = S.stop_sweeper(sweeper)
        assert {:ok, false} = S.stop_sweeper(sweeper)
        assert {:ok, nil} = S.sweeper_stats(sweeper)
      end

      # Polls `fun` until it returns a truthy value (liveness, no timing
      # assertion): gives up after 10 s.
      defp wait_until(fun, tries \\ 500) do
        case fun.() do
          falsy when falsy in [nil, false] and tries > 0 ->
            Process.sleep(20)
            wait_until(fun, tries - 1)

          result ->
            assert result, "condition not met within 10 s"
            result
        end
      end

      test "#{@backend}: subscribe replays, then delivers new events in order", %{store: store} do
        s = S.create_session!(store)
        S.append_event!(store, s.id, "st", 1)
        S.append_event!(store, s.id, "other", "not mine")
        S.append_event!(store, s.id, "st", 2)

        {:ok, sub} = S.subscribe(store, s.id, EventId.start("st"))
        assert %McpSessionStore.Subscription{session_id: session_id, tag: tag} = sub
        assert session_id == s.id

        # Appended by other processes while the replay is delivered.
        Task.await(Task.async(fn -> for i <- 3..5, do: S.append_event!(store, s.id, "st", i) end))
        S.append_event!(store, s.id, "other", "still not mine")
        S.append_event!(store, s.id, "st", 6)

        received =
          for _ <- 1..6 do
            assert_receive {:mcp_session_store, ^tag, {:event, %Event{} = event}}, 10_000
            event
          end

        assert Enum.map(received, & &1.data) == [1, 2, 3, 4, 5, 6]
        assert Enum.all?(received, &(&1.stream_id == "st"))
        seqs = Enum.map(received, & &1.seq)
        assert seqs == Enum.sort(seqs)

        assert {:ok, true} = S.unsubscribe(sub)
        assert {:ok, false} = S.unsubscribe(sub)
        S.append_event!(store, s.id, "st", 7)
        # A marker subscription sees event 7: by then the stopped one would
        # have sent it too, had it still been running.
        {:ok, marker} = S.subscribe(store, s.id, {"st", List.last(seqs)})
        marker_tag = marker.tag
        assert_receive {:mcp_session_store, ^marker_tag, {:event, %Event{data: 7}}}, 10_000
        S.unsubscribe(marker)
        refute_received {:mcp_session_store, ^tag, _}
      end

      test "#{@backend}: a subscription ends with not_found when the session goes",
           %{store: store} do
        s = S.create_session!(store)
        parent = self()
        # Delivered to another process than the caller.
        listener =
          spawn_link(fn ->
            receive do
              {:mcp_session_store, _tag, message} -> send(parent, {:listener, message})
            end
          end)

        {:ok, sub} = S.subscribe(store, s.id, EventId.start("st"), listener)
        S.delete_session!(store, s.id)
        assert_receive {:listener, {:error, {:not_found, _}}}, 10_000
        assert {:ok, false} = S.unsubscribe(sub)
      end

      test "#{@backend}: subscribe errors come back at once", %{store: store} do
        assert {:error, {:not_found, _}} = S.subscribe(store, "nope", EventId.start("st"))
        s = S.create_session!(store)
        assert {:error, {:invalid_input, _}} = S.subscribe(store, s.id, "st")
        assert {:error, {:invalid_input, _}} = S.subscribe(store, s.id, {"st", 0}, :not_a_pid)
        dead = spawn(fn -> :ok end)
        ref = Process.monitor(dead)
        assert_receive {:DOWN, ^ref, _, _, _}
        assert {:error, {:invalid_input, msg}} = S.subscribe(store, s.id, {"st", 0}, dead)
        assert msg =~ "not alive"
        assert {:error, {:invalid_input, _}} = S.unsubscribe(make_ref())
      end

      test "#{@backend}: limits are enforced and keep stored data" do
        store = open_store(max_payload_bytes: 100, max_sessions: 2)
        s = S.create_session!(store, metadata: %{small: true})
        S.set_state!(store, s.id, "k", "small")
        big = String.duplicate("x", 200)
        assert {:error, {:limit_exceeded, _}} = S.set_state(store, s.id, "k", big)
        assert {:error, {:limit_exceeded, _}} = S.append_event(store, s.id, "st", big)
        assert {:error, {:limit_exceeded, _}} = S.update_session(store, s.id, %{big: big})
        assert {:error, {:limit_exceeded, _}} = S.create_session(store, metadata: %{big: big})
        assert %StateEntry{value: "small"} = S.get_state!(store, s.id, "k")
        assert %Session{metadata: %{"small" => true}} = S.get_session!(store, s.id)

        S.create_session!(store)
        assert {:error, {:limit_exceeded, _}} = S.create_session(store)
      end
    end
  end
end
