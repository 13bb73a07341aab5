#!/usr/bin/env bash
# Build the Python package in a virtualenv, check it and run its tests.
#
#   bindings/python/test.sh            (from anywhere)
#
# Needs python3 (>= 3.10 for the mcp SDK) with venv, a Rust toolchain and
# network access to PyPI (maturin, mcp, pytest, ...) and crates.io.
#
# Environment:
#   MSS_PYTHON          interpreter to build the venv from (default python3)
#   MSS_PYTHON_VENV     the venv (default /var/tmp/mcp-session-store-python-venv,
#                       outside the clone, reused between runs)
#   MSS_PYTHON_PROFILE  cargo profile of the wheel: release (default) or dev
#   CARGO_TARGET_DIR    as in scripts/env.sh (a warm target folder is reused)
#   MSS_TEST_BACKENDS, MSS_TEST_POSTGRES_URL, ... select the backends, as for
#                       the Rust conformance suite
#   PYTEST_ARGS         extra pytest arguments
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
. "$root/scripts/env.sh"

python="${MSS_PYTHON:-python3}"
venv="${MSS_PYTHON_VENV:-/var/tmp/mcp-session-store-python-venv}"
profile="${MSS_PYTHON_PROFILE:-release}"

step() { printf '\n== %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  step "creating virtualenv $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip

# The wheel is built by maturin (PEP 517 backend, fetched from PyPI by pip)
# with the chosen cargo profile. Release is the default: it is what users get
# and what bench.py measures; on two cores with a warm target folder a
# rebuild takes seconds, a cold one a few minutes.
step "pip install ./bindings/python[mcp] (cargo profile $profile)"
export MATURIN_PEP517_ARGS="--profile $profile"
# Test tools and the SDK first (the same mcp range as the package's [mcp] extra),
# then the package itself, rebuilt every run.
"$py" -m pip install -q "mcp>=2.3,<2.4" "pytest>=8" "pytest-asyncio>=0.24" "uvicorn>=0.30" "ruff==0.17.6" "mypy>=1.13"
"$py" -m pip install -q --force-reinstall --no-deps "$here"
"$py" -c 'import mcp_session_store as m, importlib.metadata as md; print("mcp_session_store", m.__version__, "/ mcp", md.version("mcp"))'

cd "$here"
step "type stubs match the native module (mypy.stubtest)"
"$py" -m mypy.stubtest mcp_session_store._native

step "mypy --strict on the package"
"$py" -m mypy python/mcp_session_store

step "ruff"
"$py" -m ruff check python tests bench.py "$root/examples/python"
"$py" -m ruff format --check python tests bench.py "$root/examples/python"

step "pytest (backends: ${MSS_TEST_BACKENDS:-memory,sqlite})"
# pytest's last line is its summary: "N passed, M skipped in Xs" (or "N failed").
"$py" -m pytest -p no:cacheprovider -q -rs ${PYTEST_ARGS:-} tests
