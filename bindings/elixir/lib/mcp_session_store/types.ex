defmodule McpSessionStore.Error do
  @moduledoc """
  Raised by the bang (`!`) functions of `McpSessionStore`.

  `kind` is one atom per error kind of the core: `:not_found`,
  `:already_exists`, `:conflict`, `:invalid_input`, `:limit_exceeded`,
  `:cursor_expired`, `:unavailable`, `:timeout`, `:backend`, `:internal`.
  """
  defexception [:kind, :message]

  @type t :: %__MODULE__{kind: McpSessionStore.error_kind(), message: String.t()}

  @impl true
  def message(%__MODULE__{kind: kind, message: message}), do: "#{kind}: #{message}"
end

defmodule McpSessionStore.Session do
  @moduledoc """
  A session. Timestamps are milliseconds since the Unix epoch; `metadata` is
  a map with string keys; `version` grows with every write to the session.
  """
  defstruct [
    :id,
    :created_at,
    :last_activity,
    :expires_at,
    :ttl_ms,
    :metadata,
    :version,
    :last_seq
  ]

  @type t :: %__MODULE__{
          id: String.t(),
          created_at: integer(),
          last_activity: integer(),
          expires_at: integer(),
          ttl_ms: non_neg_integer(),
          metadata: %{optional(String.t()) => term()},
          version: non_neg_integer(),
          last_seq: non_neg_integer()
        }
end

defmodule McpSessionStore.StateEntry do
  @moduledoc "One state key of a session, with its value and version."
  defstruct [:key, :value, :version]

  @type t :: %__MODULE__{key: String.t(), value: term(), version: non_neg_integer()}
end

defmodule McpSessionStore.Event do
  @moduledoc """
  A stored event. `wire_id` is the id to send on the SSE `id:` line (and that
  comes back in `Last-Event-ID`). A priming event has `priming: true` and
  `data: nil`.
  """
  defstruct [
    :session_id,
    :seq,
    :stream_id,
    :data,
    :priming,
    :event_type,
    :retry_ms,
    :created_at,
    :wire_id
  ]

  @type t :: %__MODULE__{
          session_id: String.t(),
          seq: pos_integer(),
          stream_id: String.t(),
          data: term(),
          priming: boolean(),
          event_type: String.t() | nil,
          retry_ms: non_neg_integer() | nil,
          created_at: integer(),
          wire_id: String.t()
        }
end

defmodule McpSessionStore.Page do
  @moduledoc """
  One page of results. Pass `next` back (as `after:` for sessions; for
  events it is the wire id of the last item) to continue; `nil` on the last
  page.
  """
  defstruct items: [], next: nil

  @type t(item) :: %__MODULE__{items: [item], next: String.t() | nil}
end

defmodule McpSessionStore.CleanupStats do
  @moduledoc "What `McpSessionStore.cleanup_expired/1` removed."
  defstruct sessions: 0, state_entries: 0, events: 0

  @type t :: %__MODULE__{
          sessions: non_neg_integer(),
          state_entries: non_neg_integer(),
          events: non_neg_integer()
        }
end

defmodule McpSessionStore.SweeperStats do
  @moduledoc "What a background sweeper has done so far."
  defstruct runs: 0, sessions_removed: 0, errors: 0

  @type t :: %__MODULE__{
          runs: non_neg_integer(),
          sessions_removed: non_neg_integer(),
          errors: non_neg_integer()
        }
end

defmodule McpSessionStore.Sweeper do
  @moduledoc """
  A background expiry sweeper from `McpSessionStore.start_sweeper/2`. It runs
  until `McpSessionStore.stop_sweeper/1` or until this handle is garbage
  collected.
  """
  defstruct [:ref]

  @type t :: %__MODULE__{ref: reference()}
end

defmodule McpSessionStore.Subscription do
  @moduledoc """
  A live subscription from `McpSessionStore.subscribe/4`. Its events arrive
  as messages tagged with `tag`:

      {:mcp_session_store, tag, {:event, %McpSessionStore.Event{}}}
      {:mcp_session_store, tag, {:error, {kind, message}}}   # the last one

  It runs until `McpSessionStore.unsubscribe/1`, until the subscriber
  process exits, or until it ends with an error (`:not_found` once the
  session is deleted or expires, `:cursor_expired` if the subscriber fell so
  far behind that trimming removed events it had not received). Dropping
  this struct does not stop it.
  """
  defstruct [:ref, :tag, :session_id]

  @type t :: %__MODULE__{ref: reference(), tag: reference(), session_id: String.t()}
end

defmodule McpSessionStore.EventId do
  @moduledoc """
  A position in a session's event log: a stream and a `seq`. `seq` 0 is the
  start of a stream.

  The wire form (`format/2`, `parse/2`) is `SEQ.STREAM.TAG`, safe on an SSE
  `id:` line; it is bound to its session, so `parse/2` with another session
  id, or of an altered id, is `{:error, {:invalid_input, _}}`.
  """
  defstruct [:stream_id, seq: 0]

  @type t :: %__MODULE__{stream_id: String.t(), seq: non_neg_integer()}

  @doc "The start of `stream_id`: replaying after it yields the whole stream."
  @spec start(String.t()) :: t()
  def start(stream_id), do: %__MODULE__{stream_id: stream_id, seq: 0}

  @doc "The wire string of this position in `session_id`."
  @spec format(t(), String.t()) :: {:ok, String.t()} | McpSessionStore.error()
  def format(%__MODULE__{stream_id: stream, seq: seq}, session_id),
    do: McpSessionStore.Native.format_event_id(session_id, stream, seq)

  def format(other, _session_id),
    do: {:error, {:invalid_input, "expected %McpSessionStore.EventId{}, got #{inspect(other)}"}}

  @doc "Parse a wire string that `session_id` handed out."
  @spec parse(String.t(), String.t()) :: {:ok, t()} | McpSessionStore.error()
  def parse(wire, session_id), do: McpSessionStore.Native.parse_event_id(wire, session_id)
end
