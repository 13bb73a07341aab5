"""Backends under test come from the same environment variables as the Rust
conformance suite: MSS_TEST_BACKENDS (default "memory,sqlite") and
MSS_TEST_POSTGRES_URL / MSS_TEST_REDIS_URL / MSS_TEST_DYNAMODB_ENDPOINT."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Callable

import pytest

from mcp_session_store import BlockingStore, InvalidInputError, Store

try:
    import mcp.server.streamable_http  # noqa: F401
except ImportError:  # the mcp SDK needs Python >= 3.10: test the store alone
    collect_ignore = ["test_mcp_adapter.py", "test_e2e_sdk.py"]


def _with_option(url: str, option: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{option}"


def _namespace() -> str:
    return f"mss_t_{secrets.token_hex(6)}"


# One entry per backend: name -> function(tmp_path) giving a fresh store URL.
# Adding a backend is one entry here.
BACKENDS: dict[str, Callable[[Path], str]] = {
    "memory": lambda _tmp: "memory://",
    "sqlite": lambda tmp: f"sqlite://{tmp / 'store.db'}",
    "postgres": lambda _tmp: _with_option(
        os.environ.get("MSS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"),
        f"schema={_namespace()}",
    ),
    "redis": lambda _tmp: _with_option(
        os.environ.get("MSS_TEST_REDIS_URL", "redis://127.0.0.1:6379"), f"key_prefix={_namespace()}:"
    ),
    "dynamodb": lambda _tmp: (
        f"dynamodb://{_namespace()}?endpoint={os.environ.get('MSS_TEST_DYNAMODB_ENDPOINT', 'http://127.0.0.1:8000')}"
        "&region=us-east-1&create_table=true"
    ),
}


def selected_backends() -> list[str]:
    names = [n.strip() for n in os.environ.get("MSS_TEST_BACKENDS", "memory,sqlite").split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise pytest.UsageError(
            f"MSS_TEST_BACKENDS names unknown backends {unknown}; known: {sorted(BACKENDS)}"
        )
    return names


def _skip_if_not_compiled(err: InvalidInputError) -> None:
    if "cargo feature" in str(err):
        pytest.skip(f"backend not compiled into this build: {err}")


@pytest.fixture(params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_compiled: dict[str, bool] = {}


def _is_compiled(backend: str) -> bool:
    """Whether the wheel has the backend's cargo feature: the scheme is
    checked before anything else, so a probe URL with an unknown option never
    reaches a server."""
    if backend not in _compiled:
        scheme = BACKENDS[backend](Path("/nonexistent")).split("://", 1)[0]
        try:
            BlockingStore.open(f"{scheme}://mss-probe?mss_probe_unknown_option=1").close()
            _compiled[backend] = True
        except InvalidInputError as err:
            _compiled[backend] = "cargo feature" not in str(err)
        except Exception:
            _compiled[backend] = True
    return _compiled[backend]


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> str:
    if not _is_compiled(backend):
        pytest.skip(
            f"backend {backend} is not compiled into this build (needs the `{backend}` cargo feature)"
        )
    return BACKENDS[backend](tmp_path)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    try:
        s = await Store.open(store_url)
    except InvalidInputError as err:
        _skip_if_not_compiled(err)
        raise
    try:
        yield s
    finally:
        page = await s.list_sessions(limit=10000)
        for session in page.items:
            await s.delete_session(session.id)
        await s.close()


@pytest.fixture
def blocking_store(store_url: str) -> Iterator[BlockingStore]:
    try:
        s = BlockingStore.open(store_url)
    except InvalidInputError as err:
        _skip_if_not_compiled(err)
        raise
    try:
        yield s
    finally:
        for session in s.list_sessions(limit=10000).items:
            s.delete_session(session.id)
        s.close()
