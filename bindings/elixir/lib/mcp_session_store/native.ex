defmodule McpSessionStore.Native do
  @moduledoc false
  # The NIF (native/, a Rustler crate). Every function returns `{:ok, value}`
  # or `{:error, {kind, message}}`; the public API is `McpSessionStore`.

  @on_load :load_nif

  def load_nif do
    case :code.priv_dir(:mcp_session_store) do
      {:error, reason} ->
        {:error, {:priv_dir, reason}}

      priv ->
        :erlang.load_nif(:filename.join(priv, ~c"native/libmcp_session_store_nif"), 0)
    end
  end

  defp nif, do: :erlang.nif_error(:nif_not_loaded)

  def open(_url, _opts), do: nif()
  def close(_store), do: nif()
  def backend_name(_store), do: nif()
  def create_session(_store, _opts), do: nif()
  def get_session(_store, _id), do: nif()
  def update_session(_store, _id, _patch), do: nif()
  def touch_session(_store, _id), do: nif()
  def delete_session(_store, _id), do: nif()
  def list_sessions(_store, _after, _limit), do: nif()
  def count_sessions(_store), do: nif()
  def get_state(_store, _id, _key), do: nif()
  def set_state(_store, _id, _key, _value, _expected), do: nif()
  def delete_state(_store, _id, _key), do: nif()
  def state_keys(_store, _id), do: nif()
  def state_all(_store, _id), do: nif()
  def append_event(_store, _id, _stream, _data, _opts), do: nif()
  def events_after(_store, _id, _cursor, _limit), do: nif()
  def replay(_store, _id, _last_event_id, _limit), do: nif()
  def subscribe(_store, _id, _cursor, _pid, _tag), do: nif()
  def unsubscribe(_subscription), do: nif()
  def active_subscriptions, do: nif()
  def cleanup_expired(_store), do: nif()
  def start_sweeper(_store, _interval), do: nif()
  def sweeper_stats(_sweeper), do: nif()
  def stop_sweeper(_sweeper), do: nif()
  def format_event_id(_session_id, _stream, _seq), do: nif()
  def parse_event_id(_wire, _session_id), do: nif()
  def io_thread_type, do: nif()
  def test_panic_in_call, do: nif()
  def test_deep_stack_in_call(_kib), do: nif()
  def core_version, do: nif()
  def error_kinds, do: nif()
end
