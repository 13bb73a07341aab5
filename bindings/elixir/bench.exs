# W2, W3a and W4 of the project's benchmark (BENCH.md), through the Elixir
# binding. Prints one JSON line per workload, like `mcp-session-store bench`.
#
#   MSS_NIF_PROFILE=release mix run bench.exs
#   MSS_NIF_PROFILE=release mix run bench.exs -- --store memory:// --sessions 1000 --events 100 --concurrency 8

defmodule McpSessionStore.Bench do
  alias McpSessionStore, as: S
  alias McpSessionStore.EventId

  def main(argv) do
    {opts, _, _} =
      OptionParser.parse(argv,
        strict: [store: :keep, sessions: :integer, events: :integer, concurrency: :integer]
      )

    n = Keyword.get(opts, :sessions, 1000)
    m = Keyword.get(opts, :events, 100)
    c = Keyword.get(opts, :concurrency, 8)

    urls =
      case Keyword.get_values(opts, :store) do
        [] ->
          [
            "memory://",
            "sqlite://" <>
              Path.join(
                System.tmp_dir!(),
                "mss_elixir_bench_#{System.unique_integer([:positive])}.db"
              )
          ]

        urls ->
          urls
      end

    failed =
      Enum.map(urls, fn url -> run(url, n, m, c) end)
      |> Enum.any?(&(&1 == :failed))

    if failed, do: System.halt(1)
  end

  defp run(url, n, m, c) do
    store = S.open!(url)
    IO.puts(:stderr, "#{store.backend}: creating #{n} sessions")
    sessions = parallel(Enum.to_list(1..n), c, fn _ -> {S.create_session!(store).id, 0} end)
    ids = Enum.map(sessions, &elem(&1, 0))

    common = %{backend: store.backend, sessions: n, events_per_session: m, concurrency: c}

    results = [
      w2(store, ids, c, common),
      w3a(store, ids, m, c, common),
      w4(store, ids, m, c, common)
    ]

    for id <- ids, do: S.delete_session!(store, id)
    S.close(store)

    case url do
      "sqlite://" <> path -> for s <- ["", "-wal", "-shm"], do: File.rm(path <> s)
      _ -> :ok
    end

    if Enum.all?(results, &(&1 == :ok)), do: :ok, else: :failed
  end

  # Per session: set 10 small JSON keys, read each back.
  defp w2(store, ids, c, common) do
    {elapsed, results} =
      timed(fn ->
        parallel(ids, c, fn id ->
          sets =
            for k <- 1..10 do
              time_us(fn -> S.set_state!(store, id, "k#{k}", %{"k" => k, "v" => "value-#{k}"}) end)
            end

          {gets, mismatches} =
            Enum.map_reduce(1..10, 0, fn k, bad ->
              {lat, entry} = time_us_value(fn -> S.get_state!(store, id, "k#{k}") end)
              ok = entry != nil and entry.value == %{"k" => k, "v" => "value-#{k}"}
              {lat, if(ok, do: bad, else: bad + 1)}
            end)

          {sets ++ gets, mismatches}
        end)
      end)

    report("W2_state_set_get", common, elapsed, results, %{readback_mismatches: sum(results)})
  end

  # Per session, M events of ~200 bytes; C tasks on distinct sessions.
  defp w3a(store, ids, m, c, common) do
    payload = fn i ->
      %{
        "jsonrpc" => "2.0",
        "method" => "notifications/progress",
        "params" => %{
          "progressToken" => "tok-1",
          "progress" => i,
          "total" => m,
          "message" => String.duplicate("x", 100)
        }
      }
    end

    {elapsed, results} =
      timed(fn ->
        parallel(ids, c, fn id ->
          {lats, seqs} =
            Enum.map(1..m, fn i ->
              time_us_value(fn -> S.append_event!(store, id, "_GET_stream", payload.(i)).seq end)
            end)
            |> Enum.unzip()

          {lats, {seqs}}
        end)
      end)

    all_seqs = Enum.map(results, fn {_, {seqs}} -> seqs end)
    duplicates = Enum.sum(Enum.map(all_seqs, fn s -> length(s) - length(Enum.uniq(s)) end))
    non_increasing = Enum.count(all_seqs, fn s -> s != Enum.sort(s) end)

    lost =
      Enum.sum(
        Enum.map(Enum.zip(ids, all_seqs), fn {id, _} ->
          page = S.events_after!(store, id, EventId.start("_GET_stream"), limit: 10_000)
          max(m - length(page.items), 0)
        end)
      )

    report("W3a_event_append", common, elapsed, Enum.map(results, fn {l, _} -> {l, 0} end), %{
      lost_events: lost,
      duplicate_ids: duplicates,
      non_increasing: non_increasing
    })
  end

  # Per session, events_after the middle event.
  defp w4(store, ids, m, c, common) do
    mid = div(m, 2)
    expected = Enum.to_list((mid + 1)..m)

    {elapsed, results} =
      timed(fn ->
        parallel(ids, c, fn id ->
          {lat, page} =
            time_us_value(fn ->
              S.events_after!(store, id, {"_GET_stream", mid}, limit: 10_000)
            end)

          seqs = Enum.map(page.items, & &1.seq)
          {[lat], if(seqs == expected, do: 0, else: 1)}
        end)
      end)

    events = length(ids) * length(expected)

    report("W4_replay", common, elapsed, results, %{
      wrong_replays: sum(results),
      events_per_sec: Float.round(events / elapsed, 1)
    })
  end

  # ---- helpers -------------------------------------------------------------

  defp parallel(items, c, fun) do
    items
    |> Enum.with_index()
    |> Enum.group_by(fn {_, i} -> rem(i, c) end, fn {item, _} -> item end)
    |> Map.values()
    |> Enum.map(fn chunk -> Task.async(fn -> Enum.map(chunk, fun) end) end)
    |> Enum.flat_map(&Task.await(&1, :infinity))
  end

  defp timed(fun) do
    started = System.monotonic_time(:microsecond)
    result = fun.()
    {(System.monotonic_time(:microsecond) - started) / 1_000_000, result}
  end

  defp time_us(fun), do: elem(time_us_value(fun), 0)

  defp time_us_value(fun) do
    started = System.monotonic_time(:nanosecond)
    value = fun.()
    {(System.monotonic_time(:nanosecond) - started) / 1000, value}
  end

  defp sum(results), do: Enum.sum(Enum.map(results, fn {_, n} -> n end))

  defp report(name, common, elapsed, results, counters) do
    lats = results |> Enum.flat_map(fn {l, _} -> l end) |> Enum.sort() |> List.to_tuple()
    ops = tuple_size(lats)

    line =
      Map.merge(common, %{
        workload: name,
        binding: "elixir",
        ops: ops,
        errors: 0,
        elapsed_s: Float.round(elapsed, 4),
        ops_per_sec: Float.round(ops / elapsed, 1),
        p50_us: percentile(lats, 0.50),
        p99_us: percentile(lats, 0.99)
      })
      |> Map.merge(counters)

    IO.puts(to_json(line))

    bad = Enum.filter(counters, fn {k, v} -> k != :events_per_sec and v != 0 end)
    if bad == [], do: :ok, else: :failed
  end

  defp percentile({}, _), do: 0.0

  defp percentile(sorted, q) do
    idx = min(tuple_size(sorted) - 1, trunc(q * tuple_size(sorted)))
    Float.round(elem(sorted, idx) * 1.0, 1)
  end

  @order ~w(workload binding backend sessions events_per_session concurrency ops errors elapsed_s ops_per_sec p50_us p99_us)a

  defp to_json(map) do
    keys = @order ++ (map |> Map.keys() |> Enum.reject(&(&1 in @order)) |> Enum.sort())

    body =
      keys
      |> Enum.filter(&Map.has_key?(map, &1))
      |> Enum.map_join(",", fn k -> ~s("#{k}":#{json_value(map[k])}) end)

    "{" <> body <> "}"
  end

  defp json_value(v) when is_binary(v), do: ~s("#{v}")
  defp json_value(v), do: to_string(v)
end

McpSessionStore.Bench.main(Enum.reject(System.argv(), &(&1 == "--")))
