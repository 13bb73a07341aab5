#!/usr/bin/env bash
# Build and test the Node package from scratch: install the npm dependencies
# (package-lock.json; `npm ci` trips over the optional platform packages of
# @napi-rs/cli), build the addon, check the committed generated files
# are current, type-check, run `node --test`. Ends with one line
# `Node tests: N passed, M failed, K skipped` (K: backends in MSS_TEST_BACKENDS
# that the addon was built without).
#
# Needs: Node >= 20.17 with npm, a Rust toolchain, the npm registry.
# MSS_TEST_BACKENDS etc. select backends as for the Rust suite.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# shellcheck source=/dev/null
. scripts/env.sh
cd "$here"

failed_steps=0
step() { echo "== node: $*" >&2; }
fail() { echo "FAILED: $*" >&2; failed_steps=$((failed_steps + 1)); }

step "npm install (package-lock.json)"
if ! npm install --ignore-scripts --no-audit --no-fund >/dev/null; then
  echo "Node tests: 0 passed, 1 failed"
  exit 1
fi

step "build the addon and check the committed index.js / index.d.ts are current"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp index.js "$tmp/index.js.committed" 2>/dev/null || : >"$tmp/index.js.committed"
cp index.d.ts "$tmp/index.d.ts.committed" 2>/dev/null || : >"$tmp/index.d.ts.committed"
if ! npx napi build --platform --js index.js --dts index.d.ts; then
  echo "Node tests: 0 passed, 1 failed"
  exit 1
fi
for f in index.js index.d.ts; do
  if ! diff -u "$tmp/$f.committed" "$f" >&2; then
    fail "$f is not current: run \`npm run build:debug\` in bindings/node and commit it"
  fi
done

step "type check (tsc)"
npx tsc -p tsconfig.json || fail "tsc"

step "node --test"
node --test --test-reporter=tap test/ >"$tmp/tap.txt" 2>&1
status=$?
grep -E '^(not ok|# (tests|pass|fail|skipped|cancelled))' "$tmp/tap.txt" >&2 || true
if [ "$status" -ne 0 ]; then
  grep -E -A25 '^\s*not ok' "$tmp/tap.txt" >&2 || true
fi
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tmp/tap.txt" | tail -1)
failn=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tmp/tap.txt" | tail -1)
cancelled=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tmp/tap.txt" | tail -1)
skipped=$(sed -n 's/^# skipped \([0-9]*\)$/\1/p' "$tmp/tap.txt" | tail -1)
pass=${pass:-0}
failn=$(( ${failn:-0} + ${cancelled:-0} + failed_steps ))
if [ "$status" -ne 0 ] && [ "$failn" -eq 0 ]; then failn=1; fi
echo "Node tests: $pass passed, $failn failed, ${skipped:-0} skipped"
[ "$failn" -eq 0 ]
