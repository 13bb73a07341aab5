#!/usr/bin/env bash
# Generate the C header from ffi/src with cbindgen 0.29.4, adding the version
# macros from the crate's version (Cargo.toml). Writes to $1, or to
# ffi/include/mcp_session_store.h without an argument.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/include/mcp_session_store.h}"

want="cbindgen 0.29.4"
have="$(cbindgen --version 2>/dev/null || true)"
if [ "$have" != "$want" ]; then
  echo "gen-header.sh: needs $want (found: ${have:-none}); run: cargo install cbindgen --version 0.29.4 --locked" >&2
  exit 1
fi

# The crate version, e.g. 0.1.0 (inherited from the workspace).
version="$(cd "$here" && cargo pkgid --offline -p mcp-session-store-ffi 2>/dev/null | sed 's/.*@//')"
case "$version" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) echo "gen-header.sh: cannot read the crate version (got '$version')" >&2; exit 1 ;;
esac
core="${version%%[-+]*}"
major="${core%%.*}"; rest="${core#*.}"; minor="${rest%%.*}"; patch="${rest#*.}"

config="$(mktemp)"
trap 'rm -f "$config"' EXIT
# after_includes is a top-level key, so it goes before cbindgen.toml's sections.
{
  cat <<TOML
after_includes = """

/** The version of this header: major, minor, patch (as the crate's Cargo.toml). */
#define MSS_VERSION_MAJOR $major
#define MSS_VERSION_MINOR $minor
#define MSS_VERSION_PATCH $patch
/** The version as a string. */
#define MSS_VERSION_STRING "$version"
/**
 * The version packed in one number, as mss_version() returns it:
 * (major << 16) | (minor << 8) | patch, e.g. 0x000100 for 0.1.0.
 */
#define MSS_VERSION_NUMBER ((MSS_VERSION_MAJOR << 16) | (MSS_VERSION_MINOR << 8) | MSS_VERSION_PATCH)
"""
TOML
  cat "$here/cbindgen.toml"
} > "$config"
cbindgen --quiet --config "$config" --crate mcp-session-store-ffi --output "$out" "$here"
