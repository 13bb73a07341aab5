"""SessionEventStore against the SDK's own types, on every selected backend."""

from __future__ import annotations

import pytest
from mcp.server.streamable_http import EventMessage, EventStore
from mcp_types import (
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
)

from mcp_session_store import Store
from mcp_session_store.mcp import SessionEventStore, SessionStoreManager


def progress(n: int) -> JSONRPCNotification:
    return JSONRPCNotification(
        jsonrpc="2.0", method="notifications/progress", params={"progressToken": "t", "progress": n}
    )


async def replay(view: SessionEventStore, cursor: str) -> tuple[str | None, list[EventMessage]]:
    sent: list[EventMessage] = []

    async def send(message: EventMessage) -> None:
        sent.append(message)

    stream = await view.replay_events_after(cursor, send)
    return stream, sent


def test_implements_the_sdk_interface() -> None:
    assert issubclass(SessionEventStore, EventStore)
    assert not SessionEventStore.__abstractmethods__


async def test_round_trip_of_every_message_type_skipping_priming(store: Store) -> None:
    view = SessionEventStore(store, "session-a", metadata={"client": "test"})
    messages: list[JSONRPCMessage] = [
        JSONRPCRequest(
            jsonrpc="2.0", id=2, method="tools/call", params={"name": "x", "arguments": {"a": [1]}}
        ),
        progress(1),
        JSONRPCResponse(jsonrpc="2.0", id=2, result={"content": [], "isError": False}),
        JSONRPCError(jsonrpc="2.0", id="2", error=ErrorData(code=-32000, message="boom", data={"why": "x"})),
    ]
    priming = await view.store_event("2", None)
    ids = [await view.store_event("2", m) for m in messages]
    later_priming = await view.store_event("2", None)
    assert len(set([priming, *ids, later_priming])) == 6
    session = await store.get_session("session-a")
    assert session is not None and session.metadata == {"client": "test"}

    stream, sent = await replay(view, priming)
    assert stream == "2"
    assert [m.message for m in sent] == messages
    assert [type(m.message) for m in sent] == [type(m) for m in messages]
    assert [m.event_id for m in sent] == ids
    # a priming id is a valid cursor; the priming event itself is never sent
    assert await replay(view, later_priming) == ("2", [])
    stream, sent = await replay(view, ids[1])
    assert [m.event_id for m in sent] == ids[2:]


async def test_two_sessions_sharing_request_ids_never_mix(store: Store) -> None:
    a = SessionEventStore(store, "session-a")
    b = SessionEventStore(store, "session-b")
    a_start = await a.store_event("2", None)
    b_start = await b.store_event("2", None)
    a_get = await a.store_event("_GET_stream", progress(100))
    b_get = await b.store_event("_GET_stream", progress(200))
    for n in range(1, 4):
        await a.store_event("2", progress(n))
        await b.store_event("2", progress(10 + n))
    await a.store_event("_GET_stream", progress(101))
    await b.store_event("_GET_stream", progress(201))

    _, a_sent = await replay(a, a_start)
    _, b_sent = await replay(b, b_start)
    assert [m.message.params["progress"] for m in a_sent] == [1, 2, 3]
    assert [m.message.params["progress"] for m in b_sent] == [11, 12, 13]
    assert [m.message.params["progress"] for m in (await replay(a, a_get))[1]] == [101]
    assert [m.message.params["progress"] for m in (await replay(b, b_get))[1]] == [201]
    # each other's cursors replay nothing and are reported as unusable
    assert await replay(a, b_start) == (None, [])
    assert await replay(b, a_get) == (None, [])
    assert await a.check_cursor(b_start) is not None
    assert await a.check_cursor(a_start) is None
    for bad in ("", "garbage", "1.Mg.0000000000000000"):
        assert await replay(a, bad) == (None, [])
        assert (await a.check_cursor(bad) or "").startswith("invalid_input")


async def test_replay_of_a_deleted_session_is_none(store: Store) -> None:
    view = SessionEventStore(store, "gone")
    cursor = await view.store_event("2", None)
    await view.store_event("2", progress(1))
    await store.delete_session("gone")
    assert await replay(view, cursor) == (None, [])
    assert (await view.check_cursor(cursor) or "").startswith("not_found")


def test_manager_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        SessionStoreManager(object(), 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SessionStoreManager(object(), "memory://", max_sessions=0)
