defmodule McpSessionStore.BadInputTest do
  # Bad input of any type is an error tuple (never a badarg, never a crashed
  # VM), and nothing already stored is lost.
  use ExUnit.Case, async: true

  alias McpSessionStore, as: S
  alias McpSessionStore.{EventId, StateEntry, TestBackends}

  setup do
    {:ok, store} = S.open("memory://")
    session = S.create_session!(store, id: "s1", metadata: %{"keep" => 1})
    S.set_state!(store, "s1", "k", "stored")
    S.append_event!(store, "s1", "st", %{"n" => 1})
    on_exit(fn -> :ok end)
    %{store: store, session: session}
  end

  defp assert_intact(store) do
    assert %{metadata: %{"keep" => 1}} = S.get_session!(store, "s1")
    assert %StateEntry{value: "stored"} = S.get_state!(store, "s1", "k")
    assert %{items: [%{data: %{"n" => 1}}]} = S.events_after!(store, "s1", EventId.start("st"))
  end

  defmodule Point do
    @moduledoc false
    defstruct [:x]
  end

  import Bitwise, only: [<<<: 2]

  # Values that cannot be JSON (built at run time: PIDs, references and
  # functions cannot live in module attributes).
  defp non_json do
    [
      {"a PID", self()},
      {"a reference", make_ref()},
      {"a function", &Function.identity/1},
      {"a tuple", {:a, 1}},
      {"a port", hd(Port.list())},
      {"a struct", %Point{x: 1}},
      {"a struct (DateTime)", ~U[2026-01-01 00:00:00Z]},
      {"an improper list", [1 | 2]},
      {"a non-UTF-8 binary", <<0xFF, 0xFE>>},
      {"a bitstring", <<1::3>>},
      {"a big integer", 1 <<< 70},
      {"a negative big integer", -(1 <<< 70)},
      {"an integer map key", %{1 => "one"}},
      {"a tuple map key", %{{:a} => 1}},
      {"duplicate atom and string keys", %{:a => 1, "a" => 2}},
      {"a PID nested in a list in a map", %{"list" => [1, %{"pid" => self()}]}}
    ]
  end

  test "values that cannot be JSON are invalid_input everywhere", %{store: store} do
    for {label, value} <- non_json() do
      assert {:error, {:invalid_input, msg}} = S.set_state(store, "s1", "k", value), label
      assert is_binary(msg) and msg != ""
      assert {:error, {:invalid_input, _}} = S.append_event(store, "s1", "st", value), label
      assert {:error, {:invalid_input, _}} = S.update_session(store, "s1", %{"v" => value}), label

      assert {:error, {:invalid_input, _}} = S.create_session(store, metadata: %{"v" => value}),
             label

      assert {:error, {:invalid_input, _}} = S.set_state_if_version(store, "s1", "k", value, 1),
             label

      assert {:error, {:invalid_input, _}} = S.update_state(store, "s1", "k", fn _ -> value end),
             label

      assert_intact(store)
    end
  end

  test "non-maps where a map is required", %{store: store} do
    for bad <- [[a: 1], [], "map", 1, nil, self(), make_ref(), {:ok, %{}}, %Point{x: 1}] do
      assert {:error, {:invalid_input, msg}} = S.update_session(store, "s1", bad)
      assert msg =~ "metadata patch"
      assert {:error, {:invalid_input, _}} = S.create_session(store, metadata: bad)
    end

    assert_intact(store)
  end

  test "nesting deeper than 127 levels is refused; 127 levels round-trip", %{store: store} do
    # Converted without recursion: deep values cannot overflow the small
    # stack of a dirty scheduler.
    for depth <- [128, 200, 100_000] do
      deep = Enum.reduce(1..depth, 1, fn _, acc -> [acc] end)
      assert {:error, {:invalid_input, msg}} = S.set_state(store, "s1", "deep", deep)
      assert msg =~ "nested deeper than 127"
    end

    deep_map = Enum.reduce(1..128, 1, fn _, acc -> %{"a" => acc} end)
    assert {:error, {:invalid_input, _}} = S.append_event(store, "s1", "st", deep_map)

    # 126 levels here, 127 inside the metadata map below.
    ok = Enum.reduce(1..62, %{"leaf" => [1]}, fn _, acc -> %{"a" => [acc]} end)
    assert {:ok, _} = S.set_state(store, "s1", "ok", ok)
    assert %StateEntry{value: ^ok} = S.get_state!(store, "s1", "ok")
    event = S.append_event!(store, "s1", "deep", ok)
    assert event.data == ok
    assert %{items: [%{data: ^ok}]} = S.events_after!(store, "s1", EventId.start("deep"))
    S.update_session!(store, "s1", %{"deep" => ok})
    assert %{metadata: %{"deep" => ^ok}} = S.get_session!(store, "s1")
    assert_intact(store)
  end

  test "ids, keys and streams of the wrong type or shape", %{store: store} do
    for bad <- [nil, :s1, 1, ~c"s1", self(), %{}, {"s1"}, <<0xFF>>] do
      assert {:error, {:invalid_input, msg}} = S.get_session(store, bad)
      assert msg =~ "session id"
      assert {:error, {:invalid_input, _}} = S.get_state(store, "s1", bad)
      assert {:error, {:invalid_input, _}} = S.append_event(store, "s1", bad, 1)
      assert {:error, {:invalid_input, _}} = S.delete_session(store, bad)
    end

    for bad <- ["", "has space", "tab\t", String.duplicate("x", 256), "ünicode"] do
      assert {:error, {:invalid_input, _}} = S.get_session(store, bad)
      assert {:error, {:invalid_input, _}} = S.create_session(store, id: bad)
    end

    assert {:error, {:invalid_input, _}} = S.set_state(store, "s1", "", 1)
    assert {:error, {:invalid_input, _}} = S.set_state(store, "s1", "new\nline", 1)

    assert {:error, {:invalid_input, _}} =
             S.append_event(store, "s1", "st", 1, event_type: "a\r\nb")

    assert {:error, {:invalid_input, _}} = S.append_event(store, "s1", "st", 1, retry_ms: -1)

    assert {:error, {:invalid_input, _}} =
             S.append_event(store, "s1", "st", 1, retry_ms: 1 <<< 40)

    assert_intact(store)
  end

  test "limits, cursors and options of the wrong type or range", %{store: store} do
    for bad <- [0, -1, 10_001, "10", 1.5, nil] do
      assert {:error, {:invalid_input, _}} = S.list_sessions(store, limit: bad)
      assert {:error, {:invalid_input, _}} = S.events_after(store, "s1", {"st", 0}, limit: bad)
    end

    for bad <- [nil, "st", {"st"}, {"st", -1}, {:st, 0}, %{stream_id: "st"}, [stream_id: "st"]] do
      assert {:error, {:invalid_input, _}} = S.events_after(store, "s1", bad)
    end

    assert {:error, {:invalid_input, _}} = S.list_sessions(store, :not_a_list)
    assert {:error, {:invalid_input, _}} = S.list_sessions(store, bogus: 1)
    assert {:error, {:invalid_input, _}} = S.create_session(store, bogus: 1)
    assert {:error, {:invalid_input, _}} = S.create_session(store, "not opts")
    assert {:error, {:invalid_input, _}} = S.create_session(store, [{"id", "x"}])
    assert {:error, {:invalid_input, _}} = S.create_session(store, ttl: -5)
    assert {:error, {:invalid_input, _}} = S.create_session(store, ttl: "soon")
    assert {:error, {:invalid_input, _}} = S.append_event(store, "s1", "st", 1, bogus: 1)
    assert {:error, {:invalid_input, _}} = S.set_state_if_version(store, "s1", "k", 1, :any)
    assert {:error, {:invalid_input, _}} = S.set_state_if_version(store, "s1", "k", 1, "1")
    assert {:error, {:invalid_input, _}} = S.update_state(store, "s1", "k", :not_a_fun)
    assert {:error, {:invalid_input, _}} = S.replay(store, "s1", 42)
    assert {:error, {:invalid_input, _}} = EventId.parse(nil, "s1")
    assert {:error, {:invalid_input, _}} = EventId.format(:nope, "s1")

    assert {:error, {:invalid_input, _}} =
             EventId.format(%EventId{stream_id: "st", seq: -1}, "s1")

    assert_intact(store)
  end

  test "something that is not a store" do
    for bad <- [nil, self(), make_ref(), %{}, "memory://", %S{ref: make_ref(), backend: "x"}] do
      assert {:error, {:invalid_input, msg}} = S.get_session(bad, "s1")
      assert msg =~ "store"
      assert {:error, {:invalid_input, _}} = S.count_sessions(bad)
      assert {:error, {:invalid_input, _}} = S.close(bad)
      assert {:error, {:invalid_input, _}} = S.start_sweeper(bad, 10)
    end

    assert {:error, {:invalid_input, _}} = S.sweeper_stats(:nope)
    assert {:error, {:invalid_input, _}} = S.stop_sweeper(make_ref())
  end

  test "bad URLs and options to open" do
    assert {:error, {:invalid_input, _}} = S.open("nope://x")
    assert {:error, {:invalid_input, _}} = S.open("memory://?bogus=1")
    assert {:error, {:invalid_input, _}} = S.open("memory://", bogus: 1)
    assert {:error, {:invalid_input, _}} = S.open("memory://", ttl: "forever")
    assert {:error, {:invalid_input, _}} = S.open("memory://", ttl: 0)
    assert {:error, {:invalid_input, _}} = S.open("memory://", max_sessions: -1)
    assert {:error, {:invalid_input, _}} = S.open("memory://", :opts)
    assert {:error, {:invalid_input, _}} = S.open(:memory, [])
    assert {:error, {:invalid_input, _}} = S.open(~c"memory://", [])
    assert {:error, {:invalid_input, _}} = S.open("memory://", %{"ttl" => 1})
    assert {:ok, %S{}} = S.open("memory://", %{ttl: "1s"})

    error = assert_raise McpSessionStore.Error, fn -> S.open!("nope://x") end
    assert error.kind == :invalid_input
  end

  test "unreachable and absent backends get the right kind" do
    assert {:error, {:unavailable, msg}} = S.open("sqlite:///nonexistent-dir/x/y.db")
    assert msg =~ "nonexistent-dir"

    # A server backend whose port is closed is unavailable (or times out),
    # within its connect timeout.
    for url <- [
          "postgres://postgres@127.0.0.1:1/x?connect_timeout=500ms",
          "redis://127.0.0.1:1?connect_timeout=500ms",
          "dynamodb://mss_unreachable?region=us-east-1&endpoint=http://127.0.0.1:1&connect_timeout=500ms"
        ] do
      assert {:error, {kind, _}} = S.open(url), url
      assert kind in [:unavailable, :timeout], url
    end
  end

  test "a closed SQLite store answers unavailable and keeps its data" do
    url = TestBackends.sqlite_url()
    on_exit(fn -> TestBackends.cleanup(url) end)
    store = S.open!(url)
    S.create_session!(store, id: "kept")
    assert :ok = S.close(store)
    assert {:error, {:unavailable, _}} = S.create_session(store)
    reopened = S.open!(url)
    assert %{id: "kept"} = S.get_session!(reopened, "kept")
  end

  test "error kinds are the core's, one atom each" do
    assert S.error_kinds() == [
             :not_found,
             :already_exists,
             :conflict,
             :invalid_input,
             :limit_exceeded,
             :cursor_expired,
             :unavailable,
             :timeout,
             :backend,
             :internal
           ]
  end
end
