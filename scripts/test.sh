#!/usr/bin/env bash
# The whole test suite, from a fresh machine: starts what the selected
# backends need (PostgreSQL, Redis, a local Redis Cluster, the DynamoDB
# emulator), runs the unit tests and the conformance suite on every backend
# in MSS_TEST_BACKENDS (default: all five, Redis also as `redis-cluster`),
# the quickstart, a small benchmark whose correctness counters must be zero,
# then the C, Python, Node and Elixir suites.
#
#   MSS_TEST_BACKENDS=memory,sqlite scripts/test.sh   # no servers needed
#   MSS_TEST_SUITES=rust,c scripts/test.sh            # a subset of the suites
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
export MSS_TEST_BACKENDS="${MSS_TEST_BACKENDS:-memory,sqlite,postgres,redis,redis-cluster,dynamodb}"
# Loopback tests need no TLS (one test checks TLS on its own), and valgrind
# cannot follow ring's constant-time code in a TLS session.
export MSS_TEST_POSTGRES_URL="${MSS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
suites="${MSS_TEST_SUITES:-rust,c,python,node,elixir}"
has() { [[ ",$1," == *,$2,* ]]; }

scripts/services.sh ${MSS_TEST_BACKENDS//,/ }

start=$(date +%s)
log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"' EXIT
failed_suites=()

if has "$suites" rust; then
  echo "== cargo test (backends: $MSS_TEST_BACKENDS)"
  # The NIF and the Node addon link only inside the BEAM and node (their
  # symbols come from there); their suites run below.
  native=(--exclude mcp-session-store-nif --exclude mcp-session-store-node)
  cargo test --workspace "${native[@]}" --all-targets 2>&1 | tee -a "$log"
  cargo test --workspace "${native[@]}" --doc 2>&1 | tee -a "$log"

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
  urls=(memory:// "sqlite://$work/bench.db")
  ns="mss_t_bench_$$"
  with() { if [[ "$1" == *\?* ]]; then echo "$1&$2"; else echo "$1?$2"; fi; }
  has "$MSS_TEST_BACKENDS" postgres && urls+=("$(with "${MSS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}" "schema=$ns")")
  has "$MSS_TEST_BACKENDS" redis && urls+=("$(with "${MSS_TEST_REDIS_URL:-redis://127.0.0.1:6379}" "key_prefix=$ns:")")
  has "$MSS_TEST_BACKENDS" redis-cluster && urls+=("$(with "${MSS_TEST_REDIS_CLUSTER_URL:-redis://127.0.0.1:7101?cluster=true}" "key_prefix=$ns:")")
  has "$MSS_TEST_BACKENDS" dynamodb && urls+=("dynamodb://$ns?endpoint=${MSS_TEST_DYNAMODB_ENDPOINT:-http://127.0.0.1:8000}&region=us-east-1&create_table=true")
  for url in "${urls[@]}"; do
    case "$url" in
      dynamodb:*) "$bin" bench --store "$url" --sessions 20 --events 5 --concurrency 4 --only W1,W2,W3a,W4,W6 ;;
      *) "$bin" bench --store "$url" --sessions 200 --events 20 --concurrency 8 ;;
    esac
  done
fi

# The binding suites: each prints "… N passed, M failed" last. They run on
# the selected backends that each binding's suite has been checked against
# (MSS_BINDING_TEST_BACKENDS overrides the list for all of them).
run_suite() {
  local name="$1" script="$2" checked="$3" backends=()
  has "$suites" "$name" || return 0
  for b in ${MSS_TEST_BACKENDS//,/ }; do
    has "${MSS_BINDING_TEST_BACKENDS:-$checked}" "$b" && backends+=("$b")
  done
  local list
  list=$(IFS=,; echo "${backends[*]}")
  echo "== $name ($script, backends: $list)"
  if ! MSS_TEST_BACKENDS="$list" "$script" 2>&1 | tee -a "$log"; then
    failed_suites+=("$name")
  fi
}
run_suite c ffi/tests/run.sh memory,sqlite,postgres,redis,dynamodb
run_suite python bindings/python/test.sh memory,sqlite,postgres,redis,dynamodb
run_suite node bindings/node/test.sh memory,sqlite,postgres,redis,dynamodb
run_suite elixir bindings/elixir/test.sh memory,sqlite,postgres,redis,dynamodb

scripts/drop-test-namespaces.sh

passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "took $(( $(date +%s) - start )) s"
if [ "${#failed_suites[@]}" -gt 0 ]; then
  echo "failed suites: ${failed_suites[*]}"
  failed=$((failed > 0 ? failed : ${#failed_suites[@]}))
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
