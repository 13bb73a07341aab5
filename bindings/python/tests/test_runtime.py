"""Where calls run, and the limits and options that come from the core
through the bridge shared by every binding."""

from __future__ import annotations

import importlib.metadata
import re
import threading
from pathlib import Path

import pytest

import mcp_session_store
from mcp_session_store import BlockingStore, InternalError, InvalidInputError, Store, _native


async def test_calls_are_first_polled_on_the_callers_thread(store: Store) -> None:
    """A call is polled once on the caller's thread (it has far more than
    1 MiB of stack left): on `memory://` it ends there, and `update_state`'s
    function runs on the caller's thread. On the other backends a call that
    is still waiting for I/O after that poll finishes on a worker of the
    bridge runtime (the bridge's own tests check where), whichever thread the
    function then runs on."""
    s = await store.create_session()
    seen: list[int] = []

    def bump(current: object) -> int:
        seen.append(threading.get_ident())
        return int(current or 0) + 1  # type: ignore[call-overload]

    assert (await store.update_state(s.id, "n", bump)).value == 1
    assert seen
    if store.backend == "memory":
        assert seen == [threading.get_ident()]


def test_blocking_calls_are_first_polled_on_the_callers_thread(blocking_store: BlockingStore) -> None:
    s = blocking_store.create_session()
    seen: list[int] = []

    def bump(current: object) -> int:
        seen.append(threading.get_ident())
        return int(current or 0) + 1  # type: ignore[call-overload]

    assert blocking_store.update_state(s.id, "n", bump).value == 1
    assert seen
    if blocking_store.backend == "memory":
        assert seen == [threading.get_ident()]


def test_a_blocking_call_from_inside_a_call_never_hangs(blocking_store: BlockingStore) -> None:
    """A blocking call made from inside a store call (here: from the update
    function) that would have to wait on the runtime it runs on is refused
    with `InternalError`, never a hang. One that needs no wait (every call
    on `memory://`) completes."""
    s = blocking_store.create_session()

    def nested(_current: object) -> int:
        return blocking_store.count_sessions()

    if blocking_store.backend == "memory":
        assert blocking_store.update_state(s.id, "n", nested).value == 1
        return
    try:
        value = blocking_store.update_state(s.id, "n", nested).value
    except InternalError as e:
        assert "inside a tokio runtime" in str(e)
    else:
        # The nested count happened to finish within its first poll.
        assert value == 1


def test_limits_come_from_the_core() -> None:
    assert _native.DEFAULT_PAGE_LIMIT == 100
    assert _native.MAX_JSON_DEPTH == 127


async def test_pages_default_to_the_core_page_limit(store: Store) -> None:
    s = await store.create_session()
    for i in range(_native.DEFAULT_PAGE_LIMIT + 1):
        await store.append_event(s.id, "2", i)
    page = await store.events_after(s.id, "2")
    assert len(page) == _native.DEFAULT_PAGE_LIMIT and page.next is not None
    assert len(await store.events_after(s.id, "2", limit=None)) == _native.DEFAULT_PAGE_LIMIT
    rest = await store.events_after(s.id, "2", after_seq=page.items[-1].seq)
    assert [e.data for e in rest.items] == [_native.DEFAULT_PAGE_LIMIT]
    with pytest.raises(InvalidInputError, match="limit"):
        await store.events_after(s.id, "2", limit=0)
    with pytest.raises(InvalidInputError, match="limit"):
        await store.list_sessions(limit=10_001)


async def test_json_depth_is_the_core_limit(store: Store) -> None:
    s = await store.create_session()
    deepest: object = 1
    for _ in range(_native.MAX_JSON_DEPTH):
        deepest = [deepest]
    await store.set_state(s.id, "deepest", deepest)
    assert (await store.get_state(s.id, "deepest")).value == deepest  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError, match="nested deeper than 127"):
        await store.set_state(s.id, "too_deep", [deepest])
    with pytest.raises(InvalidInputError, match="nested deeper than 127"):
        await store.append_event(s.id, "2", {"a": deepest})


async def test_open_options_through_the_shared_parser() -> None:
    store = await Store.open("memory://", ttl=90, poll_interval=0.25, max_sessions=None)
    try:
        assert store.options["ttl"] == 90.0 and store.options["poll_interval"] == 0.25
        assert store.options["max_sessions"] is None
    finally:
        await store.close()
    for kwargs, match in (
        ({"ttl": -1}, "option ttl"),
        ({"max_sessions": -5}, "option max_sessions"),
        ({"max_payload_bytes": 2**70}, "max_payload_bytes"),
    ):
        with pytest.raises(InvalidInputError, match=match):
            BlockingStore.open("memory://", **kwargs)  # type: ignore[arg-type]


def test_package_version_is_the_workspace_version() -> None:
    """maturin takes the version from Cargo.toml, which inherits the
    workspace's: the wheel, `__version__` and the core agree."""
    assert importlib.metadata.version("mcp-session-store") == mcp_session_store.__version__
    root = Path(__file__).resolve().parents[3] / "Cargo.toml"
    if not root.exists():  # pragma: no cover - tests run outside the repository
        pytest.skip("the workspace's Cargo.toml is not beside the tests")
    section = root.read_text().split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    version = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
    assert version is not None and version.group(1) == mcp_session_store.__version__
