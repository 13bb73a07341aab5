defmodule McpSessionStore.SchedulerTest do
  use ExUnit.Case, async: true

  test "store calls run on dirty I/O schedulers" do
    assert McpSessionStore.Native.io_thread_type() == :dirty_io
    assert :erlang.system_info(:dirty_io_schedulers) > 0
  end

  # The futures of store calls run on the runtime's worker threads, never on
  # the dirty scheduler's small stack (a few hundred KiB): an overflow there
  # would kill the VM. 2 MiB is more than any dirty scheduler has by default.
  test "a store call's future may use more stack than a dirty scheduler has" do
    assert {:ok, 2048} = McpSessionStore.Native.test_deep_stack_in_call(2048)
  end

  test "a panic in a store call comes back as an internal error" do
    assert {:error, {:internal, message}} = McpSessionStore.Native.test_panic_in_call()
    assert message =~ "panicked: test panic in a store call"
    # The runtime is still there.
    assert {:ok, 16} = McpSessionStore.Native.test_deep_stack_in_call(16)
  end
end

for backend <- McpSessionStore.TestBackends.names() do
  defmodule Module.concat(McpSessionStore.ConcurrencyTest, Macro.camelize(backend)) do
    use ExUnit.Case, async: true

    alias McpSessionStore, as: S
    alias McpSessionStore.{EventId, TestBackends}

    @backend backend
    @moduletag backend: backend
    # How long a test waits for work that must finish before it calls it a
    # hang: generous, as in the Rust conformance suite (HANG), because the
    # DynamoDB emulator serves one request at a time (a few ms each on a
    # loaded machine) and the 20 contending update_state workers below need
    # thousands of requests there. A guard, not a speed assertion.
    @hang 180_000
    @moduletag timeout: 2 * @hang

    @writers 50
    @per_writer 20

    setup do
      url = TestBackends.url(@backend)
      on_exit(fn -> TestBackends.cleanup(url) end)
      %{store: S.open!(url, max_events_per_session: 10_000)}
    end

    test "#{@backend}: #{@writers} processes appending to one session get unique increasing seqs",
         %{store: store} do
      session = S.create_session!(store)
      parent = self()

      # The probe pings a responder process in a loop while the appends run,
      # counting round trips and the longest wait (reported, not asserted:
      # its liveness is the point; every store call also refuses to run on a
      # normal scheduler, see SchedulerTest).
      responder = spawn_link(fn -> responder_loop() end)
      probe = spawn_link(fn -> probe_loop(responder, parent, 0, 0) end)
      assert_receive {:probe_ready, ^probe}, 10_000

      writers =
        for w <- 1..@writers do
          Task.async(fn ->
            receive do
              :go -> :ok
            end

            for i <- 1..@per_writer do
              event = S.append_event!(store, session.id, "w#{w}", %{"w" => w, "i" => i})
              event.seq
            end
          end)
        end

      Enum.each(writers, &send(&1.pid, :go))
      seqs_by_writer = Enum.map(writers, &Task.await(&1, @hang))

      send(probe, :stop)

      {round_trips, max_gap_us} =
        receive do
          {:probe, n, gap} -> {n, gap}
        after
          10_000 -> flunk("the probe process did not answer: normal schedulers are blocked")
        end

      assert round_trips > 0

      IO.puts(
        :stderr,
        "  [#{@backend}] probe: #{round_trips} round trips, longest #{max_gap_us} µs"
      )

      # Each writer saw its own seqs strictly increasing...
      for seqs <- seqs_by_writer do
        assert seqs == Enum.sort(seqs)
        assert length(Enum.uniq(seqs)) == @per_writer
      end

      # ...and all of them are unique, exactly 1..N.
      all = List.flatten(seqs_by_writer)
      total = @writers * @per_writer
      assert length(all) == total
      assert Enum.sort(all) == Enum.to_list(1..total)
      assert S.get_session!(store, session.id).last_seq == total

      # Every stream replays exactly its writer's events, in order.
      for w <- [1, div(@writers, 2), @writers] do
        page = S.events_after!(store, session.id, EventId.start("w#{w}"), limit: 1000)
        assert Enum.map(page.items, & &1.data["i"]) == Enum.to_list(1..@per_writer)
        assert Enum.map(page.items, & &1.seq) == Enum.at(seqs_by_writer, w - 1)
      end
    end

    test "#{@backend}: concurrent update_state increments give the exact count",
         %{store: store} do
      session = S.create_session!(store)
      workers = 20
      per_worker = 10

      1..workers
      |> Enum.map(fn _ ->
        Task.async(fn ->
          for _ <- 1..per_worker do
            {:ok, _} = S.update_state(store, session.id, "counter", fn n -> (n || 0) + 1 end)
          end
        end)
      end)
      |> Enum.each(&Task.await(&1, @hang))

      assert %{value: value} = S.get_state!(store, session.id, "counter")
      assert value == workers * per_worker
    end

    test "#{@backend}: the store is shared by processes and survives its opener",
         %{store: store} do
      session = S.create_session!(store)

      # A process opens nothing: it uses the handle it was sent, after the
      # process that created the session has exited.
      task = Task.async(fn -> S.set_state!(store, session.id, "from", "task") end)
      Task.await(task)
      assert %{value: "task"} = S.get_state!(store, session.id, "from")
    end

    defp responder_loop do
      receive do
        {:ping, from, ref} ->
          send(from, {:pong, ref})
          responder_loop()
      end
    end

    defp probe_loop(responder, parent, count, max_gap) do
      receive do
        :stop -> send(parent, {:probe, count, max_gap})
      after
        0 ->
          ref = make_ref()
          started = System.monotonic_time(:microsecond)
          send(responder, {:ping, self(), ref})

          receive do
            {:pong, ^ref} -> :ok
          end

          gap = System.monotonic_time(:microsecond) - started
          if count == 0, do: send(parent, {:probe_ready, self()})
          Process.sleep(1)
          probe_loop(responder, parent, count + 1, max(max_gap, gap))
      end
    end
  end
end

defmodule McpSessionStore.SubscriptionLifetimeTest do
  # Not async: counts every subscription of the VM.
  use ExUnit.Case, async: false

  alias McpSessionStore, as: S
  alias McpSessionStore.EventId

  defp wait_until(fun, tries \\ 500) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("condition not met within 10 s")
      true -> Process.sleep(20) && wait_until(fun, tries - 1)
    end
  end

  test "a subscription stops when its subscriber exits, is unsubscribed, or its session goes" do
    store = S.open!("memory://")
    s = S.create_session!(store)
    base = S.active_subscriptions()

    # Subscriber exits.
    subscriber = spawn(fn -> receive(do: (:never -> :ok)) end)
    {:ok, _sub} = S.subscribe(store, s.id, EventId.start("st"), subscriber)
    assert S.active_subscriptions() == base + 1
    Process.exit(subscriber, :kill)
    wait_until(fn -> S.active_subscriptions() == base end)

    # Unsubscribed, and its handle dropped.
    {:ok, sub} = S.subscribe(store, s.id, EventId.start("st"))
    assert S.active_subscriptions() == base + 1
    S.unsubscribe(sub)
    wait_until(fn -> S.active_subscriptions() == base end)

    # The handle garbage collected: the subscription keeps running.
    {:ok, _} = S.subscribe(store, s.id, EventId.start("st"))
    :erlang.garbage_collect()
    S.append_event!(store, s.id, "st", "after gc")
    assert_receive {:mcp_session_store, _, {:event, %{data: "after gc"}}}, 10_000

    # The session deleted: it ends with not_found.
    S.delete_session!(store, s.id)
    assert_receive {:mcp_session_store, _, {:error, {:not_found, _}}}, 10_000
    wait_until(fn -> S.active_subscriptions() == base end)
  end
end
