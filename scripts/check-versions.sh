#!/usr/bin/env bash
# Every package of the project carries the workspace version
# ([workspace.package] version in the root Cargo.toml): the crates inherit
# it, the Python package takes it from Cargo through maturin, the Mix project
# reads it from the root Cargo.toml, and the npm package states it (npm needs
# a literal), checked here.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(sed -n '/^\[workspace.package\]/,/^\[/{s/^version *= *"\(.*\)"/\1/p}' Cargo.toml)
[ -n "$want" ] || { echo "no [workspace.package] version in Cargo.toml" >&2; exit 1; }
bad=0
check() {
  local what="$1" have="$2"
  if [ "$have" != "$want" ]; then
    echo "$what has version ${have:-<none>}, the workspace has $want" >&2
    bad=1
  fi
}
check bindings/node/package.json "$(sed -n 's/^  "version": "\(.*\)",$/\1/p' bindings/node/package.json)"
if grep -q '^ *@version "' bindings/elixir/mix.exs; then
  check bindings/elixir/mix.exs "$(sed -n 's/^ *@version "\(.*\)"$/\1/p' bindings/elixir/mix.exs)"
elif ! grep -q 'workspace\\.package' bindings/elixir/mix.exs; then
  echo "bindings/elixir/mix.exs neither states nor derives its version" >&2
  bad=1
fi
if ! grep -q '^dynamic = \[.*"version".*\]' bindings/python/pyproject.toml; then
  check bindings/python/pyproject.toml "$(sed -n 's/^version = "\(.*\)"$/\1/p' bindings/python/pyproject.toml)"
fi
# Every crate inherits the version instead of stating its own.
for toml in */Cargo.toml bindings/*/Cargo.toml bindings/elixir/native/Cargo.toml; do
  [ -f "$toml" ] || continue
  if grep -q '^version = ' "$toml"; then
    echo "$toml states its own version; use version.workspace = true" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] && echo "versions: every package is at $want"
exit "$bad"
