defmodule McpSessionStore.ConduitStore do
  @moduledoc """
  A ConduitMCP session store (`ConduitMcp.Session.Store` behaviour) on
  mcp-session-store, so ConduitMCP sessions live in SQLite, PostgreSQL, Redis
  or DynamoDB and are shared by every node (and by servers in other
  languages using the same store).

      # config/runtime.exs
      config :mcp_session_store, McpSessionStore.ConduitStore,
        url: "sqlite://sessions.db",
        ttl: "30m"

      # ConduitMCP transport options
      session: [store: McpSessionStore.ConduitStore]

  The store is opened once, when the `:mcp_session_store` application starts
  (if configured), or when you start `McpSessionStore.ConduitStore` in your
  own supervision tree (`{McpSessionStore.ConduitStore, url: …}`; options
  given there win over the application config, and `autostart: false` in
  the config stops the application from starting it). The open store is
  kept in `:persistent_term`, so the callbacks take no store argument and
  never go through a process.

  Configuration: `url` (required) and the options of `McpSessionStore.open/2`
  (`ttl`, `max_events_per_session`, `max_payload_bytes`, `max_sessions`,
  `poll_interval`), plus `touch_on_get` (default `true`: `get/1` renews the
  session's sliding TTL, so a client that keeps calling keeps its session).

  ## Semantics

    * `create/2` stores the metadata (keys become strings); an id that is
      live is `{:error, {:already_exists, message}}`.
    * `get/1` returns the metadata with string keys plus `"created_at"`
      (milliseconds since the epoch), or `{:error, :not_found}` when the
      session does not exist, has expired, or the id cannot be a session id.
    * `update/2` shallow-merges the new metadata into the stored map.
    * `delete/1` is idempotent.
    * `cleanup/1` removes the sessions the store has expired and those idle
      (no write, touch or `get/1`) for at least `ttl_ms`, and returns how
      many it removed.

  Other failures are `{:error, {kind, message}}` as in `McpSessionStore`.

  ## The behaviour

  `@behaviour ConduitMcp.Session.Store` is declared only when that module
  exists at compile time (ConduitMCP is a dependency of the host
  application, not of this package); then `@impl` on every callback is
  checked by the compiler. Without ConduitMCP the module still compiles and
  works as a plain module with the same functions. (In a host application
  Mix compiles `conduit_mcp` first only if it happens to order it so: this
  package cannot declare ConduitMCP as a dependency without Hex. Either way
  ConduitMCP calls the callbacks by name, so they work.)
  """

  alias McpSessionStore.Session

  # The behaviour module when it is available (false otherwise): every
  # callback below is marked `if @conduit_impl, do: @impl(@conduit_impl)`, so
  # the compiler checks it against the behaviour whenever it exists.
  @conduit_behaviour ConduitMcp.Session.Store
  @conduit_impl (case Code.ensure_compiled(@conduit_behaviour) do
                   {:module, _} -> @conduit_behaviour
                   _ -> false
                 end)

  if @conduit_impl do
    @behaviour @conduit_behaviour
  end

  @key {__MODULE__, :store}

  @doc false
  def child_spec(opts) do
    %{
      id: __MODULE__,
      start: {McpSessionStore.ConduitStore.Holder, :start_link, [opts]},
      type: :worker
    }
  end

  @doc "Open the configured store and keep it for the callbacks (see the module docs)."
  defdelegate start_link(opts \\ []), to: McpSessionStore.ConduitStore.Holder

  @doc "The open store, or `{:error, {:unavailable, _}}` if it has not been started."
  @spec store() :: {:ok, McpSessionStore.t()} | McpSessionStore.error()
  def store do
    case :persistent_term.get(@key, nil) do
      {store, _config} ->
        {:ok, store}

      nil ->
        {:error,
         {:unavailable,
          "McpSessionStore.ConduitStore is not started: configure " <>
            "`config :mcp_session_store, McpSessionStore.ConduitStore, url: ...` " <>
            "or add it to a supervision tree"}}
    end
  end

  defp touch_on_get? do
    case :persistent_term.get(@key, nil) do
      {_store, config} -> Keyword.get(config, :touch_on_get, true)
      nil -> true
    end
  end

  @doc false
  def __key__, do: @key

  if @conduit_impl, do: @impl(@conduit_impl)
  @spec create(String.t(), map()) :: :ok | {:error, term()}
  def create(session_id, metadata) do
    with {:ok, store} <- store(),
         {:ok, _session} <-
           McpSessionStore.create_session(store, id: session_id, metadata: metadata) do
      :ok
    end
  end

  if @conduit_impl, do: @impl(@conduit_impl)
  @spec get(String.t()) :: {:ok, map()} | {:error, :not_found} | {:error, term()}
  def get(session_id) do
    with {:ok, store} <- store() do
      result =
        if touch_on_get?(),
          do: McpSessionStore.touch_session(store, session_id),
          else: McpSessionStore.get_session(store, session_id)

      case result do
        {:ok, %Session{metadata: metadata, created_at: created_at}} ->
          {:ok, Map.put(metadata, "created_at", created_at)}

        error ->
          not_found(error)
      end
    end
  end

  if @conduit_impl, do: @impl(@conduit_impl)
  @spec update(String.t(), map()) :: :ok | {:error, :not_found} | {:error, term()}
  def update(session_id, metadata) do
    with {:ok, store} <- store() do
      case McpSessionStore.update_session(store, session_id, metadata) do
        {:ok, _session} -> :ok
        error -> not_found(error)
      end
    end
  end

  if @conduit_impl, do: @impl(@conduit_impl)
  @spec delete(String.t()) :: :ok | {:error, term()}
  def delete(session_id) do
    with {:ok, store} <- store() do
      case McpSessionStore.delete_session(store, session_id) do
        {:ok, _deleted?} -> :ok
        # Deleting is idempotent: an id that names no session is already gone.
        error -> with {:error, :not_found} <- not_found(error), do: :ok
      end
    end
  end

  if @conduit_impl, do: @impl(@conduit_impl)
  @spec cleanup(non_neg_integer()) :: non_neg_integer() | {:error, term()}
  def cleanup(ttl_ms) when is_integer(ttl_ms) and ttl_ms >= 0 do
    with {:ok, store} <- store(),
         {:ok, stats} <- McpSessionStore.cleanup_expired(store) do
      cutoff = System.system_time(:millisecond) - ttl_ms
      remove_idle(store, cutoff, nil, stats.sessions)
    end
  end

  def cleanup(ttl_ms),
    do:
      {:error, {:invalid_input, "ttl_ms must be a non-negative integer, got #{inspect(ttl_ms)}"}}

  # Walks every live session once, deleting those idle since before `cutoff`.
  defp remove_idle(store, cutoff, after_id, removed) do
    case McpSessionStore.list_sessions(store, after: after_id, limit: 1000) do
      {:ok, page} ->
        removed =
          Enum.reduce(page.items, removed, fn session, acc ->
            if session.last_activity <= cutoff and deleted?(store, session.id),
              do: acc + 1,
              else: acc
          end)

        if page.next, do: remove_idle(store, cutoff, page.next, removed), else: removed

      error ->
        error
    end
  end

  defp deleted?(store, id), do: match?({:ok, true}, McpSessionStore.delete_session(store, id))

  defp not_found({:error, {:not_found, _}}), do: {:error, :not_found}
  # An id the core rejects as a session id names no session.
  defp not_found({:error, {:invalid_input, "session id" <> _}}), do: {:error, :not_found}
  defp not_found(error), do: error
end

defmodule McpSessionStore.ConduitStore.Holder do
  @moduledoc false
  # Owns the ConduitStore's open store: opens it on start, publishes it in
  # :persistent_term, and removes it (closing the store) on shutdown.
  use GenServer

  @config_only [:touch_on_get, :autostart]

  def start_link(opts \\ []) do
    GenServer.start_link(__MODULE__, opts, name: __MODULE__)
  end

  @impl GenServer
  def init(opts) do
    config =
      :mcp_session_store
      |> Application.get_env(McpSessionStore.ConduitStore, [])
      |> Keyword.merge(opts)

    with {:ok, url} <- fetch_url(config),
         {:ok, store} <-
           McpSessionStore.open(url, Keyword.drop(config, [:url | @config_only])) do
      Process.flag(:trap_exit, true)
      :persistent_term.put(McpSessionStore.ConduitStore.__key__(), {store, config})
      {:ok, store}
    else
      {:error, reason} -> {:stop, reason}
    end
  end

  @impl GenServer
  def terminate(_reason, store) do
    :persistent_term.erase(McpSessionStore.ConduitStore.__key__())
    McpSessionStore.close(store)
    :ok
  end

  defp fetch_url(config) do
    case Keyword.fetch(config, :url) do
      {:ok, url} when is_binary(url) ->
        {:ok, url}

      _ ->
        {:error,
         {:invalid_input,
          "McpSessionStore.ConduitStore needs a store URL: " <>
            "config :mcp_session_store, McpSessionStore.ConduitStore, url: \"sqlite://sessions.db\""}}
    end
  end
end
