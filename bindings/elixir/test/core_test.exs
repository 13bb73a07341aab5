# The core behaviours, once per backend named in MSS_TEST_BACKENDS.
for backend <- McpSessionStore.TestBackends.names() do
  defmodule Module.concat(McpSessionStore.CoreTest, Macro.camelize(backend)) do
    use McpSessionStore.CoreCases, backend: backend
  end
end
