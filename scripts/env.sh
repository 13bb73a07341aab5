# Sourced by the scripts: shared build settings.
# Reuse a cargo target directory outside the clone when one exists (or can be
# made), so CI on a warm machine rebuilds only what changed.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  shared_target=/var/tmp/mcp-session-store-target
  if mkdir -p "$shared_target" 2>/dev/null && [ -w "$shared_target" ]; then
    export CARGO_TARGET_DIR="$shared_target"
  fi
fi
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL=0
