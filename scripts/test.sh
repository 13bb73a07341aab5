#!/usr/bin/env bash
# The whole test suite, from a fresh machine: starts what the selected
# backends need, runs the unit tests and the conformance suite on every
# backend in MSS_TEST_BACKENDS (default memory,sqlite), runs the quickstart
# and a small benchmark whose correctness counters must be zero.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export MSS_TEST_BACKENDS="${MSS_TEST_BACKENDS:-memory,sqlite}"

scripts/services.sh ${MSS_TEST_BACKENDS//,/ }

start=$(date +%s)
log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"' EXIT

echo "== cargo test (backends: $MSS_TEST_BACKENDS)"
cargo test --workspace --all-targets 2>&1 | tee "$log"
cargo test --workspace --doc 2>&1 | tee -a "$log"

echo "== quickstart"
for url in memory:// "sqlite://$work/quickstart.db"; do
  out=$(cargo run -q -p mcp-session-store-examples --example quickstart -- "$url")
  echo "$out"
  grep -q 'replaying 3 missed events of stream "2"' <<<"$out" || { echo "quickstart did not print the replay for $url" >&2; exit 1; }
  [ "$(grep -c '^id: ' <<<"$out")" = 3 ] || { echo "quickstart replayed the wrong events for $url" >&2; exit 1; }
done

echo "== bench smoke (correctness counters must be zero)"
cargo build -q --release -p mcp-session-store-cli
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/mcp-session-store"
for url in memory:// "sqlite://$work/bench.db"; do
  "$bin" bench --store "$url" --sessions 200 --events 20 --concurrency 8
done

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "took $(( $(date +%s) - start )) s"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
