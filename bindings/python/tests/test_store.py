"""Core behaviours through the asyncio API, on every selected backend."""

from __future__ import annotations

import asyncio
import datetime
import threading

import pytest

from mcp_session_store import (
    AlreadyExistsError,
    BlockingStore,
    ConflictError,
    CursorExpiredError,
    Event,
    InvalidInputError,
    NotFoundError,
    Page,
    Session,
    StateEntry,
    Store,
    format_event_id,
    parse_event_id,
)


async def test_session_lifecycle(store: Store) -> None:
    s = await store.create_session(metadata={"user": "ada", "n": 1})
    assert isinstance(s, Session)
    assert len(s.id) == 36 and s.version >= 1 and s.last_seq == 0
    assert s.expires_at > s.created_at
    assert s.metadata == {"user": "ada", "n": 1}
    assert "Session(id=" in repr(s) and s.id in repr(s)

    got = await store.get_session(s.id)
    assert got == s
    updated = await store.update_session(s.id, {"n": 2, "extra": [1, 2]})
    assert updated.metadata == {"user": "ada", "n": 2, "extra": [1, 2]}
    assert updated.version > s.version
    touched = await store.touch_session(s.id)
    assert touched.version == updated.version
    assert await store.count_sessions() == 1

    with pytest.raises(AlreadyExistsError):
        await store.create_session(s.id)
    assert await store.delete_session(s.id) is True
    assert await store.delete_session(s.id) is False
    assert await store.get_session(s.id) is None
    with pytest.raises(NotFoundError):
        await store.update_session(s.id, {"a": 1})


async def test_list_sessions_pages(store: Store) -> None:
    ids = sorted([(await store.create_session(f"sess-{i:02}")).id for i in range(5)])
    first = await store.list_sessions(limit=2)
    assert isinstance(first, Page) and len(first) == 2
    assert [x.id for x in first.items] == ids[:2] and first.next is not None
    seen = [x.id for x in first.items]
    page = first
    while page.next is not None:
        page = await store.list_sessions(after=page.next, limit=2)
        seen += [x.id for x in page.items]
    assert seen == ids
    assert "Page(" in repr(first)


async def test_state_versions_and_cas(store: Store) -> None:
    s = await store.create_session()
    v1 = await store.set_state(s.id, "user", {"name": "ada", "tags": ["x", None, 1.5, True]})
    entry = await store.get_state(s.id, "user")
    assert isinstance(entry, StateEntry)
    assert entry.value == {"name": "ada", "tags": ["x", None, 1.5, True]} and entry.version == v1
    assert "StateEntry(key=" in repr(entry)
    assert await store.get_state(s.id, "missing") is None

    with pytest.raises(ConflictError):
        await store.set_state_if_version(s.id, "user", 1, v1 + 100)
    with pytest.raises(ConflictError):
        await store.set_state_if_version(s.id, "user", 1, None)  # only if absent
    v2 = await store.set_state_if_version(s.id, "user", "new", v1)
    assert v2 > v1
    assert (await store.get_state(s.id, "user")).value == "new"
    assert await store.set_state_if_version(s.id, "fresh", 0, None) > v2

    await store.set_state(s.id, "a", None)
    assert await store.state_keys(s.id) == ["a", "fresh", "user"]
    assert [e.key for e in await store.state_all(s.id)] == ["a", "fresh", "user"]
    assert (await store.get_state(s.id, "a")).value is None
    assert await store.delete_state(s.id, "a") is True
    assert await store.delete_state(s.id, "a") is False
    with pytest.raises(NotFoundError):
        await store.get_state("no-such-session", "k")


async def test_update_state_concurrent_increments(store: Store) -> None:
    s = await store.create_session()

    def incr(current: object) -> int:
        return (current if isinstance(current, int) else 0) + 1

    await asyncio.gather(*(store.update_state(s.id, "n", incr) for _ in range(40)))
    assert (await store.get_state(s.id, "n")).value == 40


async def test_update_state_function_error_propagates_and_writes_nothing(store: Store) -> None:
    s = await store.create_session()
    await store.set_state(s.id, "n", 5)

    def boom(_current: object) -> int:
        raise KeyError("from the update function")

    with pytest.raises(KeyError, match="from the update function"):
        await store.update_state(s.id, "n", boom)
    with pytest.raises(InvalidInputError, match=r"\$\.bad"):
        await store.update_state(s.id, "n", lambda _c: {"bad": object()})
    with pytest.raises(TypeError):
        await store.update_state(s.id, "n", 42)  # type: ignore[arg-type]
    assert (await store.get_state(s.id, "n")).value == 5


async def test_events_replay_scoped_to_stream(store: Store) -> None:
    s = await store.create_session()
    a1 = await store.append_event(s.id, "2", {"n": 1})
    g1 = await store.append_event(s.id, "_GET_stream", {"g": 1}, event_type="message", retry_ms=500)
    a2 = await store.append_event(s.id, "2", {"n": 2})
    p = await store.append_priming(s.id, "2")
    a3 = await store.append_event_json(s.id, "2", '{"n": 3}')
    assert isinstance(a1, Event)
    assert [a1.seq, g1.seq, a2.seq, p.seq, a3.seq] == [1, 2, 3, 4, 5]
    assert g1.event_type == "message" and g1.retry_ms == 500
    assert p.is_priming and p.data is None and p.data_json is None
    assert a3.data == {"n": 3}
    assert "Event(seq=1" in repr(a1)

    page = await store.replay(s.id, a1.wire_id)
    assert [e.seq for e in page.items] == [3, 4, 5]
    assert [e.data for e in page.items] == [{"n": 2}, None, {"n": 3}]
    assert [e.seq for e in (await store.events_after(s.id, "_GET_stream")).items] == [2]
    assert [e.seq for e in (await store.events_after(s.id, "2", 0, limit=2)).items] == [1, 3]

    assert parse_event_id(a2.wire_id, s.id) == ("2", 3)
    assert format_event_id(s.id, "2", 3) == a2.wire_id
    assert (await store.get_session(s.id)).last_seq == 5


async def test_foreign_and_tampered_event_ids_replay_nothing(store: Store) -> None:
    a = await store.create_session()
    b = await store.create_session()
    ea = await store.append_event(a.id, "2", {"secret": "a"})
    await store.append_event(a.id, "2", {"secret": "a2"})
    await store.append_event(b.id, "2", {"secret": "b"})
    with pytest.raises(InvalidInputError, match="does not belong"):
        await store.replay(b.id, ea.wire_id)
    seq, stream, _tag = ea.wire_id.split(".")
    with pytest.raises(InvalidInputError):
        await store.replay(a.id, f"{seq}.{stream}.{'0' * 16}")
    with pytest.raises(InvalidInputError, match="malformed"):
        await store.replay(a.id, "not-an-id")


async def test_trimming_reports_cursor_expired(store_url: str) -> None:
    store = await Store.open(store_url, max_events_per_session=3)
    try:
        s = await store.create_session()
        first = await store.append_event(s.id, "2", 1)
        for i in range(2, 6):
            await store.append_event(s.id, "2", i)
        with pytest.raises(CursorExpiredError) as info:
            await store.replay(s.id, first.wire_id)
        assert info.value.code == "cursor_expired"
        # From the start is also before what was kept; from seq 2 on is complete.
        with pytest.raises(CursorExpiredError):
            await store.events_after(s.id, "2")
        assert [e.data for e in (await store.events_after(s.id, "2", 2)).items] == [3, 4, 5]
        await store.delete_session(s.id)
    finally:
        await store.close()


async def test_subscribe_replays_then_follows(store: Store) -> None:
    s = await store.create_session()
    await store.append_event(s.id, "_GET_stream", {"n": 1})
    await store.append_event(s.id, "other", {"x": 1})
    sub = await store.subscribe(s.id, "_GET_stream")
    got: list[int] = []

    async def reader() -> None:
        async for event in sub:
            got.append(event.data["n"])
            if len(got) == 4:
                return

    task = asyncio.create_task(reader())
    for n in (2, 3, 4):
        await store.append_event(s.id, "_GET_stream", {"n": n})
    await asyncio.wait_for(task, 30)
    assert got == [1, 2, 3, 4]
    sub.close()


async def test_subscribe_ends_with_not_found_on_delete(store: Store) -> None:
    s = await store.create_session()
    sub = await store.subscribe(s.id, "2")

    async def drain() -> None:
        async for _ in sub:
            pass

    task = asyncio.create_task(drain())
    await asyncio.sleep(0)
    await store.delete_session(s.id)
    with pytest.raises(NotFoundError):
        await asyncio.wait_for(task, 30)
    with pytest.raises(NotFoundError):
        await store.subscribe(s.id, "2")


async def test_expiry_invisible_and_cleanup(store: Store) -> None:
    # Room for the three writes on a server backend before it expires.
    short = await store.create_session(ttl=datetime.timedelta(milliseconds=500))
    await store.set_state(short.id, "k", 1)
    await store.append_event(short.id, "2", {"n": 1})
    long = await store.create_session(ttl=3600)
    await asyncio.sleep(0.7)
    assert await store.get_session(short.id) is None
    assert await store.get_session(long.id) is not None
    stats = await store.cleanup_expired()
    assert stats.sessions == 1 and stats.events >= 1
    assert "CleanupStats(sessions=1" in repr(stats)


async def test_open_options_seconds_and_timedelta(store_url: str) -> None:
    store = await Store.open(
        store_url,
        ttl=datetime.timedelta(minutes=5),
        max_events_per_session=50,
        max_payload_bytes=4096,
        max_sessions=10,
        poll_interval=0.05,
    )
    try:
        assert store.options == {
            "ttl": 300.0,
            "max_events_per_session": 50,
            "max_payload_bytes": 4096,
            "max_sessions": 10,
            "poll_interval": 0.05,
        }
        s = await store.create_session()
        assert s.ttl_ms == 300_000
        await store.delete_session(s.id)
    finally:
        await store.close()


def test_blocking_store(blocking_store: BlockingStore) -> None:
    s = blocking_store.create_session(metadata={"k": "v"})
    e = blocking_store.append_event(s.id, "2", {"n": 1})
    blocking_store.append_event(s.id, "2", {"n": 2})
    assert [x.data for x in blocking_store.replay(s.id, e.wire_id).items] == [{"n": 2}]
    assert blocking_store.set_state(s.id, "k", [1]) > 0
    assert blocking_store.update_state(s.id, "c", lambda c: (c or 0) + 1).value == 1
    sub = blocking_store.subscribe(s.id, "2")
    assert [next(sub).seq, next(sub).seq] == [e.seq, e.seq + 1]
    sub.close()
    assert blocking_store.backend in ("memory", "sqlite", "postgres", "redis", "dynamodb")


def test_blocking_store_releases_the_gil(blocking_store: BlockingStore) -> None:
    """Threads calling the blocking store all make progress together."""
    s = blocking_store.create_session()
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(25):
                blocking_store.append_event(s.id, f"t{t}", {"i": i})
                blocking_store.update_state(s.id, "count", lambda c: (c or 0) + 1)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert blocking_store.get_state(s.id, "count").value == 100
    assert blocking_store.get_session(s.id).last_seq == 100


async def test_async_and_blocking_share_one_store(store: Store) -> None:
    s = await store.create_session()
    blocking = store.blocking()
    await asyncio.to_thread(blocking.set_state, s.id, "from_thread", True)
    assert (await store.get_state(s.id, "from_thread")).value is True
    assert blocking.asyncio().backend == store.backend


async def test_cancelling_a_waiting_subscriber_leaves_the_store_usable(store: Store) -> None:
    s = await store.create_session()
    sub = await store.subscribe(s.id, "2")
    waiting = asyncio.create_task(sub.__anext__())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    sub.close()
    event = await store.append_event(s.id, "2", {"after": "cancel"})
    again = await store.subscribe(s.id, "2")
    got = await asyncio.wait_for(again.__anext__(), 30)
    assert got.seq == event.seq and got.data == {"after": "cancel"}
    again.close()
