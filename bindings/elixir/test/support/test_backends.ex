defmodule McpSessionStore.TestBackends do
  @moduledoc false
  # The backends under test, chosen by the same environment variables as the
  # Rust conformance suite. Adding a backend is one entry in `@urls`.

  @urls %{
    "memory" => &__MODULE__.memory_url/0,
    "sqlite" => &__MODULE__.sqlite_url/0,
    "postgres" => &__MODULE__.postgres_url/0,
    "redis" => &__MODULE__.redis_url/0,
    "dynamodb" => &__MODULE__.dynamodb_url/0
  }

  @doc "Names from MSS_TEST_BACKENDS (default memory,sqlite)."
  def names do
    "MSS_TEST_BACKENDS"
    |> System.get_env("memory,sqlite")
    |> String.split(",", trim: true)
    |> Enum.map(&String.trim/1)
    |> Enum.reject(&(&1 == ""))
    |> Enum.map(fn name ->
      Map.has_key?(@urls, name) ||
        raise "MSS_TEST_BACKENDS names unknown backend #{inspect(name)} " <>
                "(known: #{Enum.join(Map.keys(@urls), ", ")})"

      name
    end)
  end

  @doc "A fresh URL (its own namespace) for backend `name`."
  def url(name), do: Map.fetch!(@urls, name).()

  def memory_url, do: "memory://"

  def sqlite_url do
    dir = Path.join(System.tmp_dir!(), "mss_elixir_tests")
    File.mkdir_p!(dir)
    "sqlite://" <> Path.join(dir, "mss_t_#{random()}.db")
  end

  def postgres_url do
    "MSS_TEST_POSTGRES_URL"
    |> System.get_env("postgres://postgres@127.0.0.1:5432/test")
    |> add_param("schema=mss_t_#{random()}")
  end

  def redis_url do
    "MSS_TEST_REDIS_URL"
    |> System.get_env("redis://127.0.0.1:6379")
    |> add_param("key_prefix=mss_t_#{random()}:")
  end

  def dynamodb_url do
    endpoint = System.get_env("MSS_TEST_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000")

    "dynamodb://mss_t_#{random()}?endpoint=#{URI.encode_www_form(endpoint)}" <>
      "&region=us-east-1&create_table=true"
  end

  @doc "Remove what a test URL left behind (SQLite files)."
  def cleanup("sqlite://" <> path) do
    for suffix <- ["", "-wal", "-shm"], do: File.rm(path <> suffix)
    :ok
  end

  def cleanup(_url), do: :ok

  defp add_param(url, param) do
    if String.contains?(url, "?"), do: url <> "&" <> param, else: url <> "?" <> param
  end

  defp random, do: Integer.to_string(:rand.uniform(0xFFFFFFFFFFFF), 16) |> String.downcase()
end
