defmodule McpSessionStore.MixProject do
  use Mix.Project

  # One version for the Rust crates and every binding: the workspace's
  # ([workspace.package] in ../../Cargo.toml).
  @cargo_toml Path.expand("../../Cargo.toml", __DIR__)
  @version (case Regex.run(
                   ~r/^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"/ms,
                   File.read!(@cargo_toml)
                 ) do
              [_, version] -> version
              nil -> raise "no [workspace.package] version in #{@cargo_toml}"
            end)
  @nif_crate "mcp-session-store-nif"
  @nif_lib "libmcp_session_store_nif.so"

  def project do
    [
      app: :mcp_session_store,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      aliases: [compile: [&cargo_nif/1, "compile"]],
      description:
        "Sessions, per-key state and resumable SSE event logs for MCP servers " <>
          "(Rust core through a Rustler NIF), with a ConduitMCP session store."
    ]
  end

  def application do
    [extra_applications: [:logger], mod: {McpSessionStore.Application, []}]
  end

  # test/support holds the ConduitMcp.Session.Store behaviour the adapter is
  # checked against (ConduitMCP itself is not a dependency).
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  # Builds the NIF crate with cargo and copies the library to priv/native.
  # MSS_NIF_PROFILE=release|debug overrides the profile (release in :prod);
  # MSS_SKIP_NIF_BUILD=1 keeps the library already in priv/native.
  defp cargo_nif(_args) do
    if System.get_env("MSS_SKIP_NIF_BUILD") in ["1", "true"] and
         File.exists?(Path.join(__DIR__, "priv/native/#{@nif_lib}")) do
      :ok
    else
      build_nif()
    end
  end

  defp build_nif do
    profile =
      System.get_env("MSS_NIF_PROFILE") || if(Mix.env() == :prod, do: "release", else: "debug")

    release = if profile == "release", do: ["--release"], else: []

    args = ["build", "-p", @nif_crate, "--message-format=json-render-diagnostics"] ++ release

    {out, status} = System.cmd("cargo", args, cd: Path.join(__DIR__, "native"))

    if status != 0 do
      Mix.raise("cargo build of the NIF failed (exit status #{status})")
    end

    source =
      out
      |> String.split("\n")
      |> Enum.filter(&String.contains?(&1, "\"compiler-artifact\""))
      |> Enum.find_value(fn line ->
        case Regex.run(~r/"filenames":\["([^"]*#{Regex.escape(@nif_lib)})"/, line) do
          [_, path] -> path
          nil -> nil
        end
      end)

    if source == nil, do: Mix.raise("cargo did not report #{@nif_lib}")

    dest_dir = Path.join(__DIR__, "priv/native")
    dest = Path.join(dest_dir, @nif_lib)
    File.mkdir_p!(dest_dir)

    if stale?(source, dest) do
      # Copy, then rename: a VM that has the old library loaded keeps it.
      tmp = dest <> ".tmp"
      File.cp!(source, tmp)
      File.rename!(tmp, dest)
      Mix.shell().info("Copied NIF (#{profile}) to priv/native/#{@nif_lib}")
    end

    :ok
  end

  defp stale?(source, dest) do
    case {File.stat(source, time: :posix), File.stat(dest, time: :posix)} do
      {{:ok, s}, {:ok, d}} -> s.size != d.size or s.mtime > d.mtime
      _ -> true
    end
  end
end
