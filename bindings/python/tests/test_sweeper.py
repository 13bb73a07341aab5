"""The background expiry sweeper of `Store.spawn_sweeper` and
`BlockingStore.spawn_sweeper`, on every selected backend."""

from __future__ import annotations

import asyncio
import datetime
import time

import pytest

from mcp_session_store import BlockingStore, InvalidInputError, Store, Sweeper, SweeperStats

# Generous bounds: a server backend under a loaded CI machine is slow.
WAIT = 30.0


async def _until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


async def test_sweeper_removes_expired_sessions(store: Store) -> None:
    short = await store.create_session(ttl=datetime.timedelta(milliseconds=200))
    await store.append_event(short.id, "2", {"n": 1})
    long = await store.create_session(ttl=3600)
    sweeper = store.spawn_sweeper(0.05)
    try:
        assert isinstance(sweeper, Sweeper) and sweeper.running
        await _until(lambda: sweeper.stats.sessions_removed >= 1, "the sweeper removed the session")
        stats = sweeper.stats
        assert isinstance(stats, SweeperStats)
        assert stats.runs >= 1 and stats.errors == 0 and stats.running
        assert "SweeperStats(runs=" in repr(stats)
        # The sweeper deleted it: nothing is left for a manual cleanup.
        assert (await store.cleanup_expired()).sessions == 0
        assert await store.get_session(long.id) is not None
    finally:
        sweeper.stop()


async def test_stopped_sweeper_runs_no_more(store: Store) -> None:
    sweeper = store.spawn_sweeper(datetime.timedelta(milliseconds=20))
    await _until(lambda: sweeper.stats.runs >= 2, "the sweeper ran twice")
    assert sweeper.stop() is True
    assert not sweeper.running and not sweeper.stats.running
    # A run being polled on a worker at that moment may still complete.
    await asyncio.sleep(0.1)
    runs = sweeper.stats.runs
    await asyncio.sleep(0.3)
    assert sweeper.stats.runs == runs
    assert sweeper.stop() is False


def test_blocking_sweeper_as_context_manager(blocking_store: BlockingStore) -> None:
    blocking_store.create_session(ttl=datetime.timedelta(milliseconds=100))
    with blocking_store.spawn_sweeper(0.05) as sweeper:
        deadline = time.monotonic() + WAIT
        while sweeper.stats.sessions_removed < 1:
            assert time.monotonic() < deadline, "the sweeper removed nothing"
            time.sleep(0.02)
        assert "Sweeper(" in repr(sweeper)
    assert not sweeper.running


def test_sweeper_interval_is_checked(blocking_store: BlockingStore) -> None:
    with pytest.raises(InvalidInputError):
        blocking_store.spawn_sweeper(0)
    with pytest.raises(InvalidInputError):
        blocking_store.spawn_sweeper(-1)
    with pytest.raises(TypeError):
        blocking_store.spawn_sweeper("1s")  # type: ignore[arg-type]


async def test_sweeper_on_a_closed_store_counts_errors(store_url: str) -> None:
    store = await Store.open(store_url)
    await store.close()
    sweeper = store.spawn_sweeper(0.02)
    try:
        if store.backend == "memory":
            # memory:// keeps working after close: runs succeed.
            await _until(lambda: sweeper.stats.runs >= 2, "the sweeper ran twice")
            assert sweeper.stats.errors == 0
        else:
            # A failed run is counted and the sweeper goes on.
            await _until(lambda: sweeper.stats.errors >= 2, "two failed runs were counted")
        assert sweeper.running
    finally:
        sweeper.stop()
