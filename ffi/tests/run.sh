#!/usr/bin/env bash
# The C ABI's checks, self-contained (scripts/test.sh calls it):
#   1. the committed header equals a fresh cbindgen 0.29.4 run;
#   2. the cdylib and staticlib build (debug);
#   3. every C test in ffi/tests/c, compiled with the system cc
#      (-Wall -Wextra -Werror -std=c11) against the shared AND the static
#      library, runs under valgrind (leak check full, errors and definite
#      leaks fail the run);
#   4. examples/c/quickstart.c builds against both libraries and runs.
# Prints "C tests: N passed, M failed" last; exits non-zero on any failure.
#
# A test counts once: it passes when it passed in both link modes with a
# clean valgrind run. Per-backend tests (BACKEND::test) run once per backend
# of MSS_TEST_BACKENDS (default memory,sqlite). The header check and the
# quickstart count as one test each.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
. scripts/env.sh

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; }
finish() {
  echo "C tests: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

work="$(mktemp -d "${TMPDIR:-/tmp}/mss-ffi-tests.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# ---- cbindgen 0.29.4 -----------------------------------------------------------
if [ "$(cbindgen --version 2>/dev/null)" != "cbindgen 0.29.4" ]; then
  echo "installing cbindgen 0.29.4" >&2
  cargo install cbindgen --version 0.29.4 --locked >&2 || { fail "install cbindgen 0.29.4"; finish; }
fi

# ---- 1. the committed header is up to date --------------------------------------
if ffi/gen-header.sh "$work/mcp_session_store.h" >&2; then
  if diff -u ffi/include/mcp_session_store.h "$work/mcp_session_store.h"; then
    pass "header::committed_header_is_up_to_date"
  else
    fail "header::committed_header_is_up_to_date (run ffi/gen-header.sh and commit the result)"
  fi
else
  fail "header::committed_header_is_up_to_date (cbindgen failed)"
fi

# ---- 2. the libraries -------------------------------------------------------------
# The default features build every backend in; MSS_FFI_FEATURES (e.g.
# "postgres,redis") builds only those server backends instead.
features=()
[ -n "${MSS_FFI_FEATURES:-}" ] && features=(--no-default-features --features "$MSS_FFI_FEATURES")
if ! cargo build -p mcp-session-store-ffi "${features[@]}" >&2; then
  fail "build mcp-session-store-ffi"
  finish
fi
target="${CARGO_TARGET_DIR:-$repo/target}"
libdir="$target/x86_64-unknown-linux-gnu/debug"
[ -f "$libdir/libmcp_session_store.so" ] || libdir="$target/debug"
for lib in libmcp_session_store.so libmcp_session_store.a; do
  [ -f "$libdir/$lib" ] || { fail "build: $libdir/$lib missing"; finish; }
done

version="$(cargo pkgid --offline -p mcp-session-store-ffi | sed 's/.*@//')"
cflags=(-Wall -Wextra -Werror -std=c11 -pthread -g -Iffi/include "-DMSS_CARGO_VERSION=\"$version\"")
link_shared=(-L"$libdir" -lmcp_session_store -Wl,-rpath,"$libdir")
link_static=("$libdir/libmcp_session_store.a" -lpthread -ldl -lm)

# build NAME SOURCE MODE: compile SOURCE to $work/NAME-MODE.
build() {
  local name="$1" src="$2" mode="$3" link
  if [ "$mode" = shared ]; then link=("${link_shared[@]}"); else link=("${link_static[@]}"); fi
  cc "${cflags[@]}" "$src" -o "$work/$name-$mode" "${link[@]}"
}

# ---- 3. the C tests under valgrind ---------------------------------------------------
valgrind_cmd=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite
  --error-exitcode=99 --show-possibly-lost=no)
command -v valgrind >/dev/null || { fail "valgrind is not installed (apt-get install valgrind)"; finish; }

for src in ffi/tests/c/test_*.c; do
  name="$(basename "$src" .c)"
  for mode in shared static; do
    if ! build "$name" "$src" "$mode"; then
      fail "$name ($mode): does not compile"
      continue
    fi
    echo "# running $name ($mode) under valgrind" >&2
    "${valgrind_cmd[@]}" "$work/$name-$mode" >"$work/$name-$mode.out" 2>"$work/$name-$mode.err"
    rc=$?
    sed 's/^/    /' "$work/$name-$mode.err" >&2
    grep -E '^(ok|FAIL) - ' "$work/$name-$mode.out" | sed "s/\$/ [$mode]/" >>"$work/results"
    if ! grep -q '^# .*passed, .*failed' "$work/$name-$mode.out"; then
      fail "$name ($mode): did not finish (exit $rc)"
    elif [ "$rc" -eq 99 ]; then
      fail "$name ($mode): valgrind reported errors or definite leaks"
    elif [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$work/$name-$mode.out"; then
      fail "$name ($mode): exit $rc"
    fi
  done
done

# One verdict per test: ok in both link modes.
if [ -f "$work/results" ]; then
  while read -r test; do
    oks="$(grep -cF "ok - $test [" "$work/results")"
    if [ "$oks" -eq 2 ]; then pass "$test"; else fail "$test"; fi
  done < <(sed -E 's/^(ok|FAIL) - //; s/ \[(shared|static)\]$//' "$work/results" | sort -u)
fi

# ---- 4. the quickstart ----------------------------------------------------------------
quick_ok=true
for mode in shared static; do
  if build quickstart examples/c/quickstart.c "$mode" \
    && "$work/quickstart-$mode" memory:// >"$work/quickstart-$mode.out" \
    && "$work/quickstart-$mode" "sqlite://$work/quickstart.db" >>"$work/quickstart-$mode.out" \
    && grep -q 'session deleted: yes' "$work/quickstart-$mode.out"; then
    :
  else
    quick_ok=false
    cat "$work/quickstart-$mode.out" >&2 2>/dev/null
  fi
done
if $quick_ok; then pass "examples/c/quickstart"; else fail "examples/c/quickstart"; fi

finish
