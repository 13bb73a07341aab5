#!/usr/bin/env bash
# Run `mcp-session-store bench` W3a and W3b (append) on Redis next to
# `redis-benchmark -c 8` running the very script the store's append runs
# (EVALSHA of core/src/backends/redis/lua/common.lua + append.lua) on one
# session, with a ~200-byte event and no trimming, in one go:
#   cli/bench/redis-benchmark-compare.sh [REQUESTS]
# MSS_BENCH_REDIS (default 127.0.0.1:6379) names the server; MSS_BENCH_SESSIONS
# (default 1000) sets the bench's N. Needs redis-cli and redis-benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
requests=${1:-100000}
server=${MSS_BENCH_REDIS:-127.0.0.1:6379}
host=${server%:*}
port=${server##*:}
prefix="mss_t_rbc_$$:"
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/mcp-session-store"
[ -x "$bin" ] || cargo build -q --release -p mcp-session-store-cli
cli() { redis-cli -h "$host" -p "$port" "$@"; }
cleanup() { cli --scan --pattern "${prefix}*" | xargs -r -n 1 redis-cli -h "$host" -p "$port" UNLINK >/dev/null; }
trap cleanup EXIT

echo "== mcp-session-store bench (C=8)"
"$bin" bench --store "redis://$server?key_prefix=$prefix" --sessions "${MSS_BENCH_SESSIONS:-1000}" \
  --concurrency 8 --only W3a,W3b 2>/dev/null

# One live session, laid out as the store lays it out (shard tag 0.0).
s="${prefix}{0.0}:rbc"
now_ms=$(($(date +%s) * 1000))
cli HSET "$s:s" created_at "$now_ms" last_activity "$now_ms" expires_at $((now_ms + 3600000)) \
  ttl_ms 3600000 metadata '{}' version 1 last_seq 0 trimmed_through 0 >/dev/null
sha=$(cli SCRIPT LOAD "$(cat core/src/backends/redis/lua/common.lua; echo; cat core/src/backends/redis/lua/append.lua)")
event='d{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-1","progress":1,"total":100,"message":"working on step 1 of the job, with some padding text to reach about two hundred bytes"}}'

echo "== redis-benchmark -c 8 -n $requests: EVALSHA of the append script, one session"
redis-benchmark -h "$host" -p "$port" -c 8 -n "$requests" --csv \
  EVALSHA "$sha" 6 "$s:s" "$s:st" "$s:ev" "$s:ix" "${prefix}{0.0}:exp" "${prefix}{0.0}:ids" \
  rbc 60000 stream-1 "$event" 1000000000 "${prefix}appends" |
  tail -n 1 | python3 -c 'import sys
# The last seven fields are numbers (the command text is not CSV-escaped).
rps, avg, low, p50, p95, p99, high = [f.strip("\"") for f in sys.stdin.read().strip().rsplit(",", 7)[1:]]
print(f"EVALSHA append: {rps} calls/s, p50 {p50} ms, p99 {p99} ms")'
echo "appended: $(cli HGET "$s:s" last_seq)"
