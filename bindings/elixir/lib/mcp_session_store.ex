defmodule McpSessionStore do
  @moduledoc """
  Sessions, per-key versioned state and resumable SSE event logs for MCP
  servers, on the mcp-session-store Rust core (a Rustler NIF).

      {:ok, store} = McpSessionStore.open("sqlite://sessions.db", ttl: "30m")
      {:ok, session} = McpSessionStore.create_session(store, metadata: %{client: "demo"})
      {:ok, event} = McpSessionStore.append_event(store, session.id, "_GET_stream", %{n: 1})
      # a client reconnects with `Last-Event-ID: event.wire_id`:
      {:ok, page} = McpSessionStore.replay(store, session.id, event.wire_id)

  ## Results and errors

  Every function returns `{:ok, value}` or `{:error, {kind, message}}`, where
  `kind` is one of `t:error_kind/0`. Each has a bang variant (`get_session!/2`,
  …) that returns the value or raises `McpSessionStore.Error`.

  A missing or expired session is always `{:error, {:not_found, _}}`; a state
  key that is not set is `{:ok, nil}` from `get_state/3`.

  ## Values

  Metadata, state values and event data are JSON: maps, lists, strings,
  integers, floats, `true`, `false` and `nil`. Atom map keys become strings,
  and other atoms used as values become strings (`:ok` is stored as `"ok"`),
  as with `Jason`. Values come back with string keys. A PID, port,
  reference, function, tuple, struct, improper list, non-UTF-8 binary, an
  integer outside the 64-bit range, a map whose keys are neither strings nor
  atoms, or nesting deeper than 128 levels is `{:error, {:invalid_input, _}}`.

  ## Scheduling

  Every call that does I/O runs on a dirty I/O scheduler, blocking on one
  tokio runtime shared by all stores, so normal schedulers never wait on the
  store. The store handle is a NIF resource: it stays open while any process
  holds the struct, and is closed when it is garbage collected (or by
  `close/1`).
  """

  import Bitwise, only: [<<<: 2]

  alias McpSessionStore.{Native, Page}

  @enforce_keys [:ref, :backend]
  defstruct [:ref, :backend]

  @typedoc "An open store: a NIF resource and the backend's name."
  @type t :: %__MODULE__{ref: reference(), backend: String.t()}

  @type error_kind ::
          :not_found
          | :already_exists
          | :conflict
          | :invalid_input
          | :limit_exceeded
          | :cursor_expired
          | :unavailable
          | :timeout
          | :backend
          | :internal

  @type error :: {:error, {error_kind(), String.t()}}
  @type result(value) :: {:ok, value} | error()

  @typedoc "A duration: milliseconds, or a string with a unit (`\"500ms\"`, `\"30s\"`, `\"30m\"`, `\"2h\"`, `\"7d\"`)."
  @type duration :: non_neg_integer() | String.t()

  @typedoc "A cursor for `events_after/4`."
  @type cursor :: McpSessionStore.EventId.t() | {String.t(), non_neg_integer()}

  # No `limit` given: the NIF takes the core's default page limit (100).
  @default_limit :default
  @update_attempts 1000

  @doc "Every error kind, in the order of the core's stable numbers."
  @spec error_kinds() :: [error_kind()]
  def error_kinds, do: Native.error_kinds()

  @doc "The version of the Rust core this NIF was built from."
  @spec core_version() :: String.t()
  def core_version, do: Native.core_version()

  # ---- store ---------------------------------------------------------------

  @doc """
  Open the store at `url`: `memory://`, `sqlite://PATH` (`sqlite:///abs/path.db`),
  or `postgres://…`, `redis://…`, `dynamodb://…` when the NIF was built with
  those backends. Query parameters in the URL win over `opts`.

  Options: `ttl` (sliding session TTL, default 30 min), `max_events_per_session`
  (default 1000), `max_payload_bytes` (default 1 MiB), `max_sessions`
  (default unlimited), `poll_interval` (default 250 ms). Durations are
  milliseconds or strings such as `"30m"`. An unknown option is
  `{:error, {:invalid_input, _}}`; a backend that cannot be reached
  `{:error, {:unavailable, _}}`.
  """
  @spec open(String.t(), keyword()) :: result(t())
  def open(url, opts \\ []) do
    with {:ok, ref} <- Native.open(url, opts),
         {:ok, backend} <- Native.backend_name(ref) do
      {:ok, %__MODULE__{ref: ref, backend: backend}}
    end
  end

  @doc "Finish pending writes and release the backend's connections."
  @spec close(t()) :: :ok | error()
  def close(store) do
    with {:ok, _} <- Native.close(ref(store)), do: :ok
  end

  # ---- sessions ------------------------------------------------------------

  @doc """
  Create a session. Options: `id` (default: a generated UUID v4), `metadata`
  (a map), `ttl` (this session's TTL). An id that is live is
  `{:error, {:already_exists, _}}`.
  """
  @spec create_session(t(), keyword()) :: result(McpSessionStore.Session.t())
  def create_session(store, opts \\ []), do: Native.create_session(ref(store), opts)

  @doc "A live session; `{:error, {:not_found, _}}` if it does not exist or has expired."
  @spec get_session(t(), String.t()) :: result(McpSessionStore.Session.t())
  def get_session(store, id), do: Native.get_session(ref(store), id)

  @doc "Shallow-merge `patch` into the session's metadata and renew its TTL."
  @spec update_session(t(), String.t(), map()) :: result(McpSessionStore.Session.t())
  def update_session(store, id, patch), do: Native.update_session(ref(store), id, patch)

  @doc "Renew the session's TTL."
  @spec touch_session(t(), String.t()) :: result(McpSessionStore.Session.t())
  def touch_session(store, id), do: Native.touch_session(ref(store), id)

  @doc "Delete a session with its state and events. Idempotent: `{:ok, true}` if a live session was deleted."
  @spec delete_session(t(), String.t()) :: result(boolean())
  def delete_session(store, id), do: Native.delete_session(ref(store), id)

  @doc """
  Live sessions in id order. Options: `after` (the previous page's `next`),
  `limit` (1–10 000, default 100).
  """
  @spec list_sessions(t(), keyword()) :: result(Page.t(McpSessionStore.Session.t()))
  def list_sessions(store, opts \\ []) do
    with {:ok, opts} <- options(opts, after: nil, limit: @default_limit) do
      Native.list_sessions(ref(store), opts[:after], opts[:limit])
    end
  end

  @doc "How many sessions are live."
  @spec count_sessions(t()) :: result(non_neg_integer())
  def count_sessions(store), do: Native.count_sessions(ref(store))

  # ---- state ---------------------------------------------------------------

  @doc "One state key: `{:ok, %StateEntry{}}`, or `{:ok, nil}` if the key is not set."
  @spec get_state(t(), String.t(), String.t()) :: result(McpSessionStore.StateEntry.t() | nil)
  def get_state(store, id, key), do: Native.get_state(ref(store), id, key)

  @doc "Set one state key; returns its new version."
  @spec set_state(t(), String.t(), String.t(), term()) :: result(non_neg_integer())
  def set_state(store, id, key, value), do: Native.set_state(ref(store), id, key, value, :any)

  @doc """
  Compare-and-set: write only if the key is at version `expected` (`nil`: only
  if the key is not set). A mismatch is `{:error, {:conflict, _}}` and writes
  nothing.
  """
  @spec set_state_if_version(t(), String.t(), String.t(), term(), non_neg_integer() | nil) ::
          result(non_neg_integer())
  def set_state_if_version(store, id, key, value, expected)
      when is_nil(expected) or is_integer(expected),
      do: Native.set_state(ref(store), id, key, value, expected)

  def set_state_if_version(_store, _id, _key, _value, expected),
    do:
      {:error,
       {:invalid_input, "expected version must be an integer or nil, got #{inspect(expected)}"}}

  @doc """
  Atomically replace a key's value with `fun.(current)` (`current` is `nil`
  when the key is not set), retrying with compare-and-set when another writer
  got in between: N concurrent increments give N. `fun` may run several
  times and should have no side effects. Returns the new entry; gives up with
  `{:error, {:conflict, _}}` after #{@update_attempts} lost races.
  """
  @spec update_state(t(), String.t(), String.t(), (term() -> term())) ::
          result(McpSessionStore.StateEntry.t())
  def update_state(store, id, key, fun) when is_function(fun, 1),
    do: update_state_loop(ref(store), id, key, fun, 0)

  def update_state(_store, _id, _key, fun),
    do: {:error, {:invalid_input, "update function must take one argument, got #{inspect(fun)}"}}

  defp update_state_loop(_ref, _id, key, _fun, @update_attempts),
    do:
      {:error,
       {:conflict, "update of state key #{inspect(key)} lost #{@update_attempts} races in a row"}}

  defp update_state_loop(ref, id, key, fun, attempt) do
    with {:ok, current} <- Native.get_state(ref, id, key) do
      {old, expected} =
        case current do
          nil -> {nil, nil}
          entry -> {entry.value, entry.version}
        end

      new = fun.(old)

      case Native.set_state(ref, id, key, new, expected) do
        {:ok, version} ->
          # The value as it is stored and read back (atoms become strings);
          # it was accepted, so it is JSON.
          {:ok, %McpSessionStore.StateEntry{key: key, value: normalize(new), version: version}}

        {:error, {:conflict, _}} ->
          backoff(attempt)
          update_state_loop(ref, id, key, fun, attempt + 1)

        error ->
          error
      end
    end
  end

  defp normalize(value) when is_map(value),
    do: Map.new(value, fn {k, v} -> {to_string(k), normalize(v)} end)

  defp normalize(value) when is_list(value), do: Enum.map(value, &normalize/1)
  defp normalize(value) when value in [nil, true, false], do: value
  defp normalize(value) when is_atom(value), do: Atom.to_string(value)
  defp normalize(value), do: value

  defp backoff(attempt) when attempt < 3, do: :ok

  defp backoff(attempt) do
    # Jittered exponential backoff, capped near 5 ms.
    ceiling = min(1 <<< min(attempt - 3, 3), 5)
    Process.sleep(:rand.uniform(ceiling + 1) - 1)
  end

  @doc "Delete one state key; `{:ok, true}` if it existed."
  @spec delete_state(t(), String.t(), String.t()) :: result(boolean())
  def delete_state(store, id, key), do: Native.delete_state(ref(store), id, key)

  @doc "Every state key of the session, sorted."
  @spec state_keys(t(), String.t()) :: result([String.t()])
  def state_keys(store, id), do: Native.state_keys(ref(store), id)

  @doc "Every state entry of the session, sorted by key."
  @spec state_all(t(), String.t()) :: result([McpSessionStore.StateEntry.t()])
  def state_all(store, id), do: Native.state_all(ref(store), id)

  # ---- events --------------------------------------------------------------

  @doc """
  Append an event carrying `data` to the session on stream `stream_id`,
  trimming the oldest beyond `max_events_per_session`. Options: `event_type`
  (the SSE `event:` field), `retry_ms` (the SSE `retry:` field). Returns the
  event with its `seq` and `wire_id`.
  """
  @spec append_event(t(), String.t(), String.t(), term(), keyword()) ::
          result(McpSessionStore.Event.t())
  def append_event(store, id, stream_id, data, opts \\ []),
    do: Native.append_event(ref(store), id, stream_id, {:data, data}, opts)

  @doc """
  Append a priming event (an id without data, so the id is a valid cursor).
  Same options as `append_event/5`.
  """
  @spec append_priming(t(), String.t(), String.t(), keyword()) ::
          result(McpSessionStore.Event.t())
  def append_priming(store, id, stream_id, opts \\ []),
    do: Native.append_event(ref(store), id, stream_id, :priming, opts)

  @doc """
  Events of the cursor's stream after it, oldest first. Options: `limit`
  (1–10 000, default 100). `{:error, {:cursor_expired, _}}` if trimming
  removed events after the cursor.
  """
  @spec events_after(t(), String.t(), cursor(), keyword()) ::
          result(Page.t(McpSessionStore.Event.t()))
  def events_after(store, id, cursor, opts \\ []) do
    with {:ok, opts} <- options(opts, limit: @default_limit) do
      Native.events_after(ref(store), id, cursor, opts[:limit])
    end
  end

  @doc """
  `events_after/4` for a wire id (the `Last-Event-ID` header). An id from
  another session, or altered, is `{:error, {:invalid_input, _}}` and replays
  nothing.
  """
  @spec replay(t(), String.t(), String.t(), keyword()) ::
          result(Page.t(McpSessionStore.Event.t()))
  def replay(store, id, last_event_id, opts \\ []) do
    with {:ok, opts} <- options(opts, limit: @default_limit) do
      Native.replay(ref(store), id, last_event_id, opts[:limit])
    end
  end

  @doc """
  Follow one stream of a session: the events after `cursor` (the replay),
  then each new event as it is appended, in `seq` order with no gap and no
  duplicate at the seam, sent as messages to `pid` (default: the caller):

      {:ok, sub} = McpSessionStore.subscribe(store, session_id, EventId.start("_GET_stream"))

      receive do
        {:mcp_session_store, tag, {:event, event}} when tag == sub.tag -> event
        {:mcp_session_store, tag, {:error, {kind, message}}} when tag == sub.tag -> :ended
      end

  An unknown session is `{:error, {:not_found, _}}` and an expired cursor
  `{:error, {:cursor_expired, _}}` right away. Appends by other processes on
  a shared backend arrive within the store's `poll_interval`. Messages are
  not flow-controlled: a subscriber that cannot keep up grows its mailbox.
  See `McpSessionStore.Subscription` for how it ends.
  """
  @spec subscribe(t(), String.t(), cursor(), pid()) :: result(McpSessionStore.Subscription.t())
  def subscribe(store, session_id, cursor, pid \\ self()) do
    tag = make_ref()

    with {:ok, ref} <- Native.subscribe(ref(store), session_id, cursor, pid, tag) do
      {:ok, %McpSessionStore.Subscription{ref: ref, tag: tag, session_id: session_id}}
    end
  end

  @doc """
  Stop a subscription: no message is sent for events appended after this
  returns. `{:ok, false}` if it had already stopped.
  """
  @spec unsubscribe(McpSessionStore.Subscription.t()) :: result(boolean())
  def unsubscribe(%McpSessionStore.Subscription{ref: ref}), do: Native.unsubscribe(ref)
  def unsubscribe(other), do: Native.unsubscribe(other)

  @doc "How many subscriptions are running in this VM (all stores)."
  @spec active_subscriptions() :: non_neg_integer()
  def active_subscriptions, do: Native.active_subscriptions()

  # ---- expiry --------------------------------------------------------------

  @doc "Delete every expired session with its state and events."
  @spec cleanup_expired(t()) :: result(McpSessionStore.CleanupStats.t())
  def cleanup_expired(store), do: Native.cleanup_expired(ref(store))

  @doc """
  Run `cleanup_expired/1` every `interval` in the background until
  `stop_sweeper/1` is called or the returned handle is garbage collected.
  """
  @spec start_sweeper(t(), duration()) :: result(McpSessionStore.Sweeper.t())
  def start_sweeper(store, interval) do
    with {:ok, ref} <- Native.start_sweeper(ref(store), interval) do
      {:ok, %McpSessionStore.Sweeper{ref: ref}}
    end
  end

  @doc "What a sweeper has done so far (`{:ok, nil}` once stopped)."
  @spec sweeper_stats(McpSessionStore.Sweeper.t()) ::
          result(McpSessionStore.SweeperStats.t() | nil)
  def sweeper_stats(%McpSessionStore.Sweeper{ref: ref}), do: Native.sweeper_stats(ref)
  def sweeper_stats(other), do: Native.sweeper_stats(other)

  @doc "Stop a sweeper; `{:ok, false}` if it was already stopped."
  @spec stop_sweeper(McpSessionStore.Sweeper.t()) :: result(boolean())
  def stop_sweeper(%McpSessionStore.Sweeper{ref: ref}), do: Native.stop_sweeper(ref)
  def stop_sweeper(other), do: Native.stop_sweeper(other)

  # ---- bang variants -------------------------------------------------------

  @bang [
    open: 1,
    open: 2,
    close: 1,
    create_session: 1,
    create_session: 2,
    get_session: 2,
    update_session: 3,
    touch_session: 2,
    delete_session: 2,
    list_sessions: 1,
    list_sessions: 2,
    count_sessions: 1,
    get_state: 3,
    set_state: 4,
    set_state_if_version: 5,
    update_state: 4,
    delete_state: 3,
    state_keys: 2,
    state_all: 2,
    append_event: 4,
    append_event: 5,
    append_priming: 3,
    append_priming: 4,
    events_after: 3,
    events_after: 4,
    replay: 3,
    replay: 4,
    subscribe: 3,
    subscribe: 4,
    unsubscribe: 1,
    cleanup_expired: 1,
    start_sweeper: 2,
    sweeper_stats: 1,
    stop_sweeper: 1
  ]

  for {name, arity} <- @bang do
    args = Macro.generate_arguments(arity, __MODULE__)

    @doc "Like `#{name}/#{arity}`, but returns the value or raises `McpSessionStore.Error`."
    def unquote(:"#{name}!")(unquote_splicing(args)),
      do: unwrap!(unquote(name)(unquote_splicing(args)))
  end

  defp unwrap!({:ok, value}), do: value
  defp unwrap!(:ok), do: :ok

  defp unwrap!({:error, {kind, message}}),
    do: raise(McpSessionStore.Error, kind: kind, message: message)

  # ---- helpers -------------------------------------------------------------

  defp ref(%__MODULE__{ref: ref}), do: ref
  # Anything else reaches the NIF, which answers {:error, {:invalid_input, _}}.
  defp ref(other), do: other

  defp options(opts, defaults) do
    if is_list(opts) and Keyword.keyword?(opts) do
      case Keyword.keys(opts) -- Keyword.keys(defaults) do
        [] ->
          {:ok, Keyword.merge(defaults, opts)}

        unknown ->
          {:error,
           {:invalid_input,
            "unknown option(s) #{inspect(unknown)} (known: #{inspect(Keyword.keys(defaults))})"}}
      end
    else
      {:error, {:invalid_input, "options must be a keyword list, got #{inspect(opts)}"}}
    end
  end
end
