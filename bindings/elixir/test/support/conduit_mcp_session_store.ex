defmodule ConduitMcp.Session.Store do
  @moduledoc false
  # The session store behaviour of ConduitMCP, with exactly its callbacks.
  # ConduitMCP cannot be installed here; compiling this module in the test
  # environment makes the compiler check McpSessionStore.ConduitStore's
  # @behaviour and @impl against it.

  @callback create(session_id :: String.t(), metadata :: map()) :: :ok | {:error, term()}
  @callback get(session_id :: String.t()) :: {:ok, map()} | {:error, :not_found}
  @callback update(session_id :: String.t(), metadata :: map()) :: :ok | {:error, :not_found}
  @callback delete(session_id :: String.t()) :: :ok
  @callback cleanup(ttl_ms :: non_neg_integer()) :: non_neg_integer()
end
