defmodule McpSessionStore.ConduitStoreTest.Behaviour do
  # Not async: the ConduitStore is one global store.
  use ExUnit.Case, async: false

  alias McpSessionStore.ConduitStore

  test "declares the ConduitMcp.Session.Store behaviour and implements every callback" do
    behaviours = ConduitStore.module_info(:attributes) |> Keyword.get_values(:behaviour)
    assert [ConduitMcp.Session.Store] in behaviours

    callbacks = ConduitMcp.Session.Store.behaviour_info(:callbacks)

    assert Enum.sort(callbacks) ==
             Enum.sort(create: 2, get: 1, update: 2, delete: 1, cleanup: 1)

    for {name, arity} <- callbacks do
      assert function_exported?(ConduitStore, name, arity), "#{name}/#{arity}"
    end
  end

  test "callbacks before the store is started answer unavailable" do
    assert {:error, {:unavailable, msg}} = ConduitStore.get("x")
    assert msg =~ "config :mcp_session_store"
    assert {:error, {:unavailable, _}} = ConduitStore.create("x", %{})
    assert {:error, {:unavailable, _}} = ConduitStore.cleanup(0)
  end

  test "starting without a URL fails clearly" do
    Application.delete_env(:mcp_session_store, ConduitStore)

    assert {:error, {{:invalid_input, msg}, _}} = start_supervised(ConduitStore)
    assert msg =~ "url"
  end

  test "a store that cannot open stops the start" do
    assert {:error, {{:unavailable, _}, _}} =
             start_supervised({ConduitStore, url: "sqlite:///nonexistent-dir/x/y.db"})

    assert {:error, {{:invalid_input, _}, _}} =
             start_supervised({ConduitStore, url: "memory://", bogus: 1})
  end
end

for backend <- McpSessionStore.TestBackends.names() do
  defmodule Module.concat(McpSessionStore.ConduitStoreTest, Macro.camelize(backend)) do
    use ExUnit.Case, async: false

    alias McpSessionStore.{ConduitStore, TestBackends}

    @backend backend
    @moduletag backend: backend

    setup do
      url = TestBackends.url(@backend)
      # Configured the way an application is: through the app env.
      Application.put_env(:mcp_session_store, ConduitStore, url: url, ttl: "30m")

      on_exit(fn ->
        Application.delete_env(:mcp_session_store, ConduitStore)
        TestBackends.cleanup(url)
      end)

      start_supervised!(ConduitStore)
      %{url: url}
    end

    test "#{@backend}: create then get returns string keys and created_at" do
      before = System.system_time(:millisecond)
      assert :ok = ConduitStore.create("sess-1", %{client: "demo", caps: %{tools: true}})
      assert {:ok, meta} = ConduitStore.get("sess-1")
      assert meta["client"] == "demo"
      assert meta["caps"] == %{"tools" => true}
      assert is_integer(meta["created_at"])
      assert meta["created_at"] >= before - 1000
      assert Enum.all?(Map.keys(meta), &is_binary/1)
      assert {:ok, %{"created_at" => _}} = ConduitStore.get("sess-1")
    end

    test "#{@backend}: create with empty metadata and an existing id" do
      assert :ok = ConduitStore.create("e", %{})
      assert {:ok, %{"created_at" => _} = meta} = ConduitStore.get("e")
      assert map_size(meta) == 1
      assert {:error, {:already_exists, _}} = ConduitStore.create("e", %{"x" => 1})
      assert {:ok, ^meta} = ConduitStore.get("e")
    end

    test "#{@backend}: get of an unknown or impossible id is :not_found" do
      assert {:error, :not_found} = ConduitStore.get("unknown")
      assert {:error, :not_found} = ConduitStore.get("")
      assert {:error, :not_found} = ConduitStore.get("has space")
      assert {:error, :not_found} = ConduitStore.get(String.duplicate("x", 300))
    end

    test "#{@backend}: update merges into the existing metadata" do
      :ok = ConduitStore.create("u", %{"a" => 1, "b" => %{"x" => 1}, keep: "yes"})
      {:ok, %{"created_at" => created_at}} = ConduitStore.get("u")
      assert :ok = ConduitStore.update("u", %{"b" => %{"y" => 2}, c: 3})
      assert {:ok, meta} = ConduitStore.get("u")

      assert meta == %{
               "a" => 1,
               "b" => %{"y" => 2},
               "c" => 3,
               "keep" => "yes",
               "created_at" => created_at
             }

      assert :ok = ConduitStore.update("u", %{})
      assert {:ok, ^meta} = ConduitStore.get("u")
    end

    test "#{@backend}: update of an unknown id is :not_found; bad metadata is invalid_input" do
      assert {:error, :not_found} = ConduitStore.update("unknown", %{"a" => 1})
      assert {:error, :not_found} = ConduitStore.update("bad id", %{"a" => 1})
      :ok = ConduitStore.create("v", %{"a" => 1})
      assert {:error, {:invalid_input, _}} = ConduitStore.update("v", %{"pid" => self()})
      assert {:error, {:invalid_input, _}} = ConduitStore.update("v", a: 1)
      assert {:error, {:invalid_input, _}} = ConduitStore.create("w", %{"ref" => make_ref()})
      assert {:error, {:invalid_input, _}} = ConduitStore.create("w", "not a map")
      assert {:error, {:invalid_input, _}} = ConduitStore.create("bad id", %{})
      assert {:ok, %{"a" => 1}} = ConduitStore.get("v")
      assert {:error, :not_found} = ConduitStore.get("w")
    end

    test "#{@backend}: delete is idempotent" do
      :ok = ConduitStore.create("d", %{})
      assert :ok = ConduitStore.delete("d")
      assert {:error, :not_found} = ConduitStore.get("d")
      assert :ok = ConduitStore.delete("d")
      assert :ok = ConduitStore.delete("never-existed")
      assert :ok = ConduitStore.delete("")
      # The id is free again.
      assert :ok = ConduitStore.create("d", %{"new" => true})
      assert {:ok, %{"new" => true}} = ConduitStore.get("d")
    end

    test "#{@backend}: cleanup removes sessions idle for ttl_ms and counts them" do
      for id <- ~w(c1 c2 c3), do: :ok = ConduitStore.create(id, %{})
      # Nothing is idle for an hour.
      assert ConduitStore.cleanup(3_600_000) == 0
      assert {:ok, _} = ConduitStore.get("c1")

      Process.sleep(400)
      :ok = ConduitStore.create("fresh", %{})
      :ok = ConduitStore.update("c3", %{"active" => true})
      # c1 and c2 have been idle for >= 400 ms; c3 was just written.
      assert ConduitStore.cleanup(200) == 2
      assert {:error, :not_found} = ConduitStore.get("c1")
      assert {:error, :not_found} = ConduitStore.get("c2")
      assert {:ok, %{"active" => true}} = ConduitStore.get("c3")
      assert {:ok, _} = ConduitStore.get("fresh")

      # ttl 0: every session is idle.
      assert ConduitStore.cleanup(0) == 2
      assert {:error, :not_found} = ConduitStore.get("fresh")
      assert ConduitStore.cleanup(0) == 0
      assert {:error, {:invalid_input, _}} = ConduitStore.cleanup(-1)
      assert {:error, {:invalid_input, _}} = ConduitStore.cleanup("10")
    end

    test "#{@backend}: sessions expire with the configured ttl" do
      stop_supervised!(ConduitStore)
      url = TestBackends.url(@backend)
      on_exit(fn -> TestBackends.cleanup(url) end)
      Application.put_env(:mcp_session_store, ConduitStore, url: url, ttl: 1000)
      start_supervised!(ConduitStore)

      :ok = ConduitStore.create("short", %{"a" => 1})
      :ok = ConduitStore.create("kept", %{})
      assert {:ok, %{"a" => 1}} = ConduitStore.get("short")
      started = System.monotonic_time(:millisecond)

      # `get` renews the sliding TTL of "kept" (every 250 ms, well inside
      # the 1 s TTL) until "short", never renewed, is past its TTL.
      Stream.repeatedly(fn ->
        Process.sleep(250)
        assert {:ok, _} = ConduitStore.get("kept")
      end)
      |> Stream.take_while(fn _ -> System.monotonic_time(:millisecond) - started < 1300 end)
      |> Stream.run()

      assert {:error, :not_found} = ConduitStore.get("short")
      assert {:error, :not_found} = ConduitStore.update("short", %{"b" => 2})
      # Expired sessions are counted by cleanup too.
      assert ConduitStore.cleanup(3_600_000) >= 1
      # The id of an expired session can be created again.
      assert :ok = ConduitStore.create("short", %{"again" => true})
      assert {:ok, %{"again" => true}} = ConduitStore.get("short")
    end

    test "#{@backend}: options given to start_link win over the config" do
      stop_supervised!(ConduitStore)
      url = TestBackends.url(@backend)
      on_exit(fn -> TestBackends.cleanup(url) end)
      start_supervised!({ConduitStore, url: url, max_sessions: 1, touch_on_get: false})
      :ok = ConduitStore.create("one", %{})
      assert {:error, {:limit_exceeded, _}} = ConduitStore.create("two", %{})
      {:ok, store} = ConduitStore.store()
      assert store.backend == @backend
    end

    test "#{@backend}: stopping the store withdraws it from the callbacks", %{url: url} do
      :ok = ConduitStore.create("p", %{"persist" => 1})
      stop_supervised!(ConduitStore)
      assert {:error, {:unavailable, _}} = ConduitStore.get("p")
      start_supervised!({ConduitStore, url: url})

      if @backend == "memory" do
        assert {:error, :not_found} = ConduitStore.get("p")
      else
        # A shared backend keeps sessions across restarts.
        assert {:ok, %{"persist" => 1}} = ConduitStore.get("p")
      end
    end
  end
end
