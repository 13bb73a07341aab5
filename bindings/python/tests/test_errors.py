"""Every error class, and every kind of bad input: the right exception, never
a crash, and nothing already stored is lost."""

from __future__ import annotations

import builtins
import math
import sqlite3
from pathlib import Path
from typing import Optional

import pytest

import mcp_session_store as mss
from mcp_session_store import (
    AlreadyExistsError,
    BackendError,
    BlockingStore,
    ConflictError,
    CursorExpiredError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    SessionStoreError,
    Store,
    UnavailableError,
    _native,
)

CODES = {
    "NotFoundError": "not_found",
    "AlreadyExistsError": "already_exists",
    "ConflictError": "conflict",
    "InvalidInputError": "invalid_input",
    "LimitExceededError": "limit_exceeded",
    "CursorExpiredError": "cursor_expired",
    "UnavailableError": "unavailable",
    "TimeoutError": "timeout",
    "BackendError": "backend",
    "InternalError": "internal",
}


def test_one_class_per_error_kind_with_stable_code() -> None:
    for name, code in CODES.items():
        cls = getattr(mss, name)
        assert issubclass(cls, SessionStoreError) and cls is not SessionStoreError
        assert cls.code == code
        err = cls("message")
        assert err.code == code and str(err) == "message"
        assert cls.__module__ == "mcp_session_store"
    assert issubclass(SessionStoreError, Exception)
    assert SessionStoreError.code is None


def test_error_classes_come_from_the_core_list_of_kinds() -> None:
    """The native table has one class per core error kind, and the package
    exports each (a kind added to the core without a class fails here)."""
    table = _native.ERROR_CLASSES
    assert sorted(table) == sorted(CODES.values())
    for code, cls in table.items():
        assert cls.code == code
        assert getattr(mss, cls.__name__) is cls and cls.__name__ in mss.__all__
        assert CODES[cls.__name__] == code


def test_timeout_error_is_also_the_builtin() -> None:
    # The package's own class, which is also a builtin TimeoutError.
    assert mss.TimeoutError is not builtins.TimeoutError
    assert issubclass(mss.TimeoutError, builtins.TimeoutError)
    assert issubclass(mss.TimeoutError, SessionStoreError)
    for catch in (builtins.TimeoutError, SessionStoreError, OSError, mss.TimeoutError):
        try:
            raise mss.TimeoutError("the backend did not answer")
        except catch as err:
            assert err.code == "timeout"  # type: ignore[union-attr]
            assert str(err) == "the backend did not answer"


async def test_raised_error_kinds(store: Store) -> None:
    s = await store.create_session("known")
    with pytest.raises(NotFoundError) as nf:
        await store.touch_session("unknown")
    assert nf.value.code == "not_found" and "unknown" in str(nf.value)
    with pytest.raises(AlreadyExistsError):
        await store.create_session("known")
    v = await store.set_state(s.id, "k", 1)
    with pytest.raises(ConflictError) as cf:
        await store.set_state_if_version(s.id, "k", 2, v + 1)
    assert cf.value.code == "conflict"
    with pytest.raises(InvalidInputError):
        await store.create_session("has space")
    assert (await store.get_state(s.id, "k")).value == 1  # the refused CAS wrote nothing


async def test_limits(store_url: str) -> None:
    store = await Store.open(store_url, max_payload_bytes=64, max_sessions=2)
    try:
        s = await store.create_session()
        e = await store.append_event(s.id, "2", {"small": 1})
        await store.set_state(s.id, "k", "v")
        big = {"x": "y" * 100}
        with pytest.raises(LimitExceededError) as le:
            await store.append_event(s.id, "2", big)
        assert le.value.code == "limit_exceeded"
        with pytest.raises(LimitExceededError):
            await store.set_state(s.id, "k", big)
        with pytest.raises(LimitExceededError):
            await store.update_session(s.id, big)
        with pytest.raises(LimitExceededError):
            await store.create_session(metadata=big)
        await store.create_session("second")
        with pytest.raises(LimitExceededError):
            await store.create_session("third")
        # nothing stored was lost
        assert (await store.get_state(s.id, "k")).value == "v"
        assert [x.seq for x in (await store.events_after(s.id, "2")).items] == [e.seq]
        for sid in (s.id, "second"):
            await store.delete_session(sid)
    finally:
        await store.close()


async def test_cursor_expired(store_url: str) -> None:
    store = await Store.open(store_url, max_events_per_session=2)
    try:
        s = await store.create_session()
        first = await store.append_event(s.id, "2", 1)
        for i in range(3):
            await store.append_event(s.id, "2", i)
        with pytest.raises(CursorExpiredError):
            await store.replay(s.id, first.wire_id)
        await store.delete_session(s.id)
    finally:
        await store.close()


def test_unavailable_backend(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError) as info:
        BlockingStore.open(f"sqlite://{tmp_path / 'no-such-dir' / 'x.db'}")
    assert info.value.code == "unavailable"
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"garbage" * 1000)
    with pytest.raises(UnavailableError):
        BlockingStore.open(f"sqlite://{not_a_db}")


def test_backend_error_keeps_the_store_usable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = BlockingStore.open(f"sqlite://{path}")
    s = store.create_session("a")
    store.append_event(s.id, "2", {"n": 1})
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE mss_state")
    with pytest.raises(BackendError) as info:
        store.set_state("a", "k", 1)
    assert info.value.code == "backend"
    assert store.get_session("a") is not None
    assert [e.data for e in store.events_after("a", "2").items] == [{"n": 1}]
    store.close()


@pytest.mark.parametrize(
    "url, match",
    [
        ("foo://x", "unknown store scheme"),
        ("memory://?bogus=1", "unknown option"),
        ("memory://?ttl=abc", "invalid duration"),
        ("memory://somewhere", "takes no path"),
        ("not a url", None),
        ("", None),
    ],
)
async def test_invalid_urls(url: str, match: Optional[str]) -> None:
    with pytest.raises(InvalidInputError, match=match):
        await Store.open(url)
    with pytest.raises(InvalidInputError, match=match):
        BlockingStore.open(url)


async def test_invalid_options() -> None:
    for kwargs in (
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": math.nan},
        {"max_events_per_session": 0},
        {"max_payload_bytes": 0},
        {"max_sessions": 0},
        {"poll_interval": 0},
        {"max_sessions": -5},
    ):
        with pytest.raises(InvalidInputError):
            await Store.open("memory://", **kwargs)  # type: ignore[arg-type]


async def test_wrong_types_are_type_errors() -> None:
    store = await Store.open("memory://")
    s = await store.create_session()
    calls = [
        lambda: Store.open(42),  # type: ignore[arg-type]
        lambda: Store.open("memory://", ttl="30m"),  # type: ignore[arg-type]
        lambda: Store.open("memory://", ttl=True),  # type: ignore[arg-type]
        lambda: Store.open("memory://", max_sessions=1.5),  # type: ignore[arg-type]
        lambda: store.create_session(123),  # type: ignore[arg-type]
        lambda: store.create_session(metadata=[1, 2]),  # type: ignore[arg-type]
        lambda: store.create_session(ttl="1h"),  # type: ignore[arg-type]
        lambda: store.get_session(None),  # type: ignore[arg-type]
        lambda: store.update_session(s.id, "patch"),  # type: ignore[arg-type]
        lambda: store.set_state(s.id, 1, "v"),  # type: ignore[arg-type]
        lambda: store.append_event(s.id, 2, {}),  # type: ignore[arg-type]
        lambda: store.append_event_json(s.id, "2", {"not": "text"}),  # type: ignore[arg-type]
        lambda: store.list_sessions(limit="10"),  # type: ignore[arg-type]
        lambda: store.events_after(s.id, "2", after_seq="1"),  # type: ignore[arg-type]
        lambda: store.replay(s.id, 5),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(TypeError):
            await call()
    with pytest.raises(TypeError):
        mss.format_event_id(s.id, "2", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Store(object())  # type: ignore[arg-type]
    assert (await store.get_session(s.id)) is not None


class Custom:
    pass


@pytest.mark.parametrize(
    "value, path",
    [
        ({"a": [1, 2, Custom()]}, r"\$\.a\[2\]"),
        ({"a": {"b": {1, 2}}}, r"\$\.a\.b"),
        ({"x": math.nan}, r"NaN.*\$\.x|\$\.x.*NaN"),
        ([math.inf], r"\$\[0\]"),
        ({"b": b"bytes"}, r"\$\.b"),
        ({"big": 2**70}, r"\$\.big"),
        ({"k": {1: "int key"}}, r"int at \$\.k"),
        ({"odd key": [None, "\ud800"]}, r'\$\["odd key"\]\[1\]'),
        (Custom(), r"Custom at \$"),
    ],
)
async def test_unencodable_json_names_the_path(store: Store, value: object, path: str) -> None:
    s = await store.create_session()
    await store.set_state(s.id, "keep", "me")
    with pytest.raises(InvalidInputError, match=path):
        await store.set_state(s.id, "k", value)
    with pytest.raises(InvalidInputError, match=path):
        await store.append_event(s.id, "2", value)
    with pytest.raises(InvalidInputError, match=path):
        mss.encode_json(value)
    assert await store.state_keys(s.id) == ["keep"]
    assert (await store.events_after(s.id, "2")).items == []


async def test_cycles_and_deep_nesting_are_invalid_input(store: Store) -> None:
    s = await store.create_session()
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(InvalidInputError, match="nested deeper"):
        await store.set_state(s.id, "k", cyclic)
    deep: object = 1
    for _ in range(500):
        deep = [deep]
    with pytest.raises(InvalidInputError, match="nested deeper"):
        await store.append_event(s.id, "2", deep)
    ok: object = 1
    for _ in range(100):
        ok = {"a": ok}
    await store.set_state(s.id, "ok", ok)


async def test_invalid_json_text(store: Store) -> None:
    s = await store.create_session()
    for bad in ("", "{", "{'a': 1}", "[1,]", "NaN", "1 2"):
        with pytest.raises(InvalidInputError, match="invalid JSON"):
            await store.append_event_json(s.id, "2", bad)
    assert (await store.events_after(s.id, "2")).items == []


@pytest.mark.parametrize(
    "session_id", ["", " ", "a b", "tab\there", "x" * 256, "é", "line\nbreak", "nul\x00"]
)
async def test_invalid_session_ids(store: Store, session_id: str) -> None:
    with pytest.raises(InvalidInputError):
        await store.create_session(session_id)
    with pytest.raises(InvalidInputError):
        await store.get_session(session_id)


async def test_invalid_keys_streams_limits_and_event_ids(store: Store) -> None:
    s = await store.create_session()
    for bad in ("", "a\nb", "nul\x00", "k" * 256):
        with pytest.raises(InvalidInputError):
            await store.set_state(s.id, bad, 1)
        with pytest.raises(InvalidInputError):
            await store.append_event(s.id, bad, 1)
    with pytest.raises(InvalidInputError):
        await store.append_event(s.id, "2", 1, event_type="bad\ntype")
    for limit in (0, 10_001, -1):
        with pytest.raises(InvalidInputError):
            await store.list_sessions(limit=limit)
    with pytest.raises(InvalidInputError):
        await store.events_after(s.id, "2", after_seq=-1)
    with pytest.raises(InvalidInputError):
        mss.parse_event_id("1.Mg.0000000000000000", s.id)
    with pytest.raises(InvalidInputError):
        mss.format_event_id("bad id", "2", 1)
    with pytest.raises(InvalidInputError):
        await store.create_session(ttl=0)


async def test_closed_sqlite_store_reports_an_error_not_a_crash(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite://{tmp_path / 'c.db'}")
    await store.create_session("a")
    await store.close()
    with pytest.raises(SessionStoreError):
        await store.create_session("b")
    again = await Store.open(f"sqlite://{tmp_path / 'c.db'}")
    assert await again.get_session("a") is not None
    await again.close()
