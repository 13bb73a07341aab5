defmodule McpSessionStore.Application do
  @moduledoc false
  use Application

  @impl true
  def start(_type, _args) do
    # The ConduitMCP store starts with the application when it is configured:
    #   config :mcp_session_store, McpSessionStore.ConduitStore, url: "sqlite://sessions.db"
    # (`autostart: false` leaves it to the host's own supervision tree.)
    config = Application.get_env(:mcp_session_store, McpSessionStore.ConduitStore, [])

    children =
      if Keyword.has_key?(config, :url) and Keyword.get(config, :autostart, true) do
        [McpSessionStore.ConduitStore]
      else
        []
      end

    Supervisor.start_link(children, strategy: :one_for_one, name: McpSessionStore.Supervisor)
  end
end
