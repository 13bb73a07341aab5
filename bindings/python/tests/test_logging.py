"""The core's `tracing` events reach Python's `logging` (logger
`mcp_session_store`).

One test triggers a real event of the core (a sweeper whose cleanup fails
on a closed store logs a warning); the others emit events from the
test-only native function `_native._emit_log`, which go through the same
layer, to check levels, filtering and threads."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from mcp_session_store import Store, _native

pytestmark = pytest.mark.skipif(not _native.LOG_FORWARDING, reason="another tracing subscriber was set first")


def _wait_for(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    deadline = time.monotonic() + 10
    while True:
        for record in caplog.records:
            if text in record.getMessage():
                return record
        if time.monotonic() > deadline:
            pytest.fail(f"no log record with {text!r}: {caplog.records}")
        time.sleep(0.01)


def test_events_are_forwarded_with_their_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mcp_session_store")
    for level, number in (("error", 40), ("warn", 30), ("info", 20), ("debug", 10)):
        _native._emit_log(level, f"forwarded at {level}")
        record = _wait_for(caplog, f"forwarded at {level}")
        assert record.name == "mcp_session_store" and record.levelno == number
        assert record.tracing_target == "mcp_session_store::python"  # type: ignore[attr-defined]


def test_logger_level_filters(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mcp_session_store")
    _native._emit_log("info", "filtered out")
    _native._emit_log("warn", "let through")
    _wait_for(caplog, "let through")
    assert not any("filtered out" in r.getMessage() for r in caplog.records)


def test_emitting_while_holding_the_gil_does_not_block(caplog: pytest.LogCaptureFixture) -> None:
    """Events emitted from Python threads (which hold the GIL while they
    emit) never wait for the forwarding: all arrive, nothing deadlocks."""
    caplog.set_level(logging.INFO, logger="mcp_session_store")

    def emit(t: int) -> None:
        for i in range(20):
            _native._emit_log("info", f"thread {t} event {i}")

    threads = [threading.Thread(target=emit, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    _wait_for(caplog, "thread 3 event 19")
    _wait_for(caplog, "thread 0 event 19")


def test_unknown_level_is_invalid_input() -> None:
    with pytest.raises(_native.InvalidInputError):
        _native._emit_log("loud", "x")


async def test_a_failing_sweeper_logs_a_warning(caplog: pytest.LogCaptureFixture, store_url: str) -> None:
    store = await Store.open(store_url)
    if store.backend == "memory":
        await store.close()
        pytest.skip("memory:// keeps working after close: its sweeper never fails")
    await store.close()
    caplog.set_level(logging.WARNING, logger="mcp_session_store")
    sweeper = store.spawn_sweeper(0.02)
    try:
        record = await asyncio.to_thread(_wait_for, caplog, "sweeper: cleanup of expired sessions failed")
    finally:
        sweeper.stop()
    assert record.name == "mcp_session_store" and record.levelno == logging.WARNING
    assert record.tracing_target.startswith("mcp_session_store::")  # type: ignore[attr-defined]
    assert "closed" in record.getMessage()
