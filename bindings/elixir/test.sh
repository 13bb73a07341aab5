#!/usr/bin/env bash
# Tests of the Elixir binding (bindings/elixir), self-contained:
#   installs Elixir if missing (Debian: elixir, erlang-dev), builds the NIF
#   through `mix compile` (cargo, from the mix.exs alias), checks formatting
#   and warnings (:dev without ConduitMCP, :test with the behaviour checked),
#   proves the compile-time @behaviour/@impl check is live, runs `mix test`.
# Backends: MSS_TEST_BACKENDS (default memory,sqlite) and the MSS_TEST_*
# URLs, as for the Rust conformance suite.
# Last line: "Elixir tests: N passed, M failed" (N: ExUnit tests passed;
# M: ExUnit failures plus any failed check step).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=/dev/null
. "$root/scripts/env.sh"
cd "$here"

failed_checks=0
step() {
  local name="$1"
  shift
  echo "== $name: $*"
  if "$@"; then
    echo "== $name: ok"
  else
    echo "== $name: FAILED"
    failed_checks=$((failed_checks + 1))
  fi
}

if ! command -v mix >/dev/null 2>&1; then
  echo "== installing Elixir (apt-get install -y elixir erlang-dev)"
  sudo=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -qq elixir erlang-dev >/dev/null ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq elixir erlang-dev >/dev/null; }
fi
if ! command -v mix >/dev/null 2>&1; then
  echo "Elixir is not installed and could not be installed"
  echo "Elixir tests: 0 passed, 1 failed"
  exit 1
fi
elixir --version | tail -1

# Builds the NIF (cargo) and the :dev code.
if ! mix compile; then
  echo "Elixir tests: 0 passed, 1 failed"
  exit 1
fi
step "format" mix format --check-formatted
step "warnings (:dev, no ConduitMCP)" mix compile --force --warnings-as-errors
step "warnings (:test, behaviour checked)" env MIX_ENV=test mix compile --force --warnings-as-errors

# The compile-time check must be live: a copy whose adapter misnames a
# callback has to fail to compile in :test.
behaviour_check() {
  local scratch proj
  scratch="$(mktemp -d)"
  # The same layout as the repository: mix.exs reads the version from
  # ../../Cargo.toml.
  proj="$scratch/bindings/elixir"
  mkdir -p "$proj/priv"
  cp "$root/Cargo.toml" "$scratch/"
  cp -r lib test mix.exs .formatter.exs "$proj"/
  cp -r priv/native "$proj/priv/"
  sed -i 's/  def cleanup(ttl_ms) when is_integer/  def cleanup_renamed(ttl_ms) when is_integer/' \
    "$proj/lib/mcp_session_store/conduit_store.ex"
  local status=0
  if (cd "$proj" && MSS_SKIP_NIF_BUILD=1 MIX_ENV=test mix compile --warnings-as-errors >"$scratch/out.txt" 2>&1); then
    echo "a misnamed ConduitMcp.Session.Store callback compiled without error"
    status=1
  elif ! grep -q "ConduitMcp.Session.Store" "$scratch/out.txt"; then
    echo "the broken copy failed for another reason:"
    cat "$scratch/out.txt"
    status=1
  fi
  rm -rf "$scratch"
  return $status
}
step "@behaviour/@impl checked at compile time" behaviour_check

out="$(mktemp)"
MIX_ENV=test mix test 2>&1 | tee "$out"
summary="$(grep -E '^[0-9]+ (tests?|doctests?)' "$out" | tail -1)"
rm -f "$out"

total=$(sed -nE 's/.*\b([0-9]+) tests?\b.*/\1/p' <<<"$summary")
failures=$(sed -nE 's/.*\b([0-9]+) failures?\b.*/\1/p' <<<"$summary")
excluded=$(sed -nE 's/.*\b([0-9]+) excluded\b.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.*\b([0-9]+) skipped\b.*/\1/p' <<<"$summary")
invalid=$(sed -nE 's/.*\b([0-9]+) invalid\b.*/\1/p' <<<"$summary")
total=${total:-0}
failures=${failures:-0}
if [ -z "$summary" ]; then
  # mix test did not get to its summary (compile error, crash): count it.
  failures=1
fi
passed=$((total - failures - ${excluded:-0} - ${skipped:-0} - ${invalid:-0}))
[ "$passed" -lt 0 ] && passed=0
failed=$((failures + ${invalid:-0} + failed_checks))

echo
echo "${summary:-mix test did not finish}"
echo "Elixir tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
