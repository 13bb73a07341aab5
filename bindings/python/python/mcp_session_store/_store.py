"""`Store` (asyncio) and `BlockingStore` (scripts): thin typed fronts over the native store."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any, Callable, Optional, Union

from . import _native
from ._native import CleanupStats, Event, InvalidInputError, Page, Session, StateEntry, SweeperStats

Duration = Union[int, float, datetime.timedelta]
"""A duration: seconds as `int`/`float`, or a `datetime.timedelta`."""

JSON = Any
"""Any JSON-encodable value: None, bool, int, float, str, list, tuple, dict with str keys."""


def _seconds(value: Optional[Duration], name: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be seconds (int or float) or a datetime.timedelta, not {type(value).__name__}"
        )
    if value != value or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative number of seconds, not {value!r}")
    return float(value)


def _count(value: Optional[int], name: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise InvalidInputError(f"{name} must not be negative, not {value}")
    return value


def _int(value: int, name: str) -> int:
    checked = _count(value, name)
    if checked is None:
        raise TypeError(f"{name} must be an int, not None")
    return checked


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _duration_type(value: Optional[Duration], name: str) -> Optional[float]:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(
            f"{name} must be seconds (int or float) or a datetime.timedelta, not {type(value).__name__}"
        )
    return value


def _int_type(value: Optional[int], name: str) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _open_options(
    ttl: Optional[Duration],
    max_events_per_session: Optional[int],
    max_payload_bytes: Optional[int],
    max_sessions: Optional[int],
    poll_interval: Optional[Duration],
) -> dict[str, Any]:
    """The options of `open`, with their Python types checked (`TypeError`);
    the native parser shared by every binding checks the values."""
    return {
        "ttl": _duration_type(ttl, "ttl"),
        "max_events_per_session": _int_type(max_events_per_session, "max_events_per_session"),
        "max_payload_bytes": _int_type(max_payload_bytes, "max_payload_bytes"),
        "max_sessions": _int_type(max_sessions, "max_sessions"),
        "poll_interval": _duration_type(poll_interval, "poll_interval"),
    }


class _Common:
    _native: _native.NativeStore

    @property
    def backend(self) -> str:
        """The backend's name: `"memory"`, `"sqlite"`, …"""
        return self._native.backend_name

    @property
    def options(self) -> dict[str, Any]:
        """The options in force (durations in seconds)."""
        ttl, max_events, max_payload, max_sessions, poll = self._native.options()
        return {
            "ttl": ttl,
            "max_events_per_session": max_events,
            "max_payload_bytes": max_payload,
            "max_sessions": max_sessions,
            "poll_interval": poll,
        }

    def spawn_sweeper(self, interval: Duration) -> Sweeper:
        """Run `cleanup_expired` every `interval` in the background, on the
        library's own threads, until `Sweeper.stop()` or until the returned
        handle is garbage-collected (keep a reference to it). Also a context
        manager that stops it on exit."""
        interval_s = _seconds(interval, "interval")
        if interval_s is None:
            raise TypeError("interval must be seconds (int or float) or a datetime.timedelta, not None")
        return Sweeper(self._native.spawn_sweeper(interval_s))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r})"


class Sweeper:
    """A background expiry sweeper from `spawn_sweeper`. It stops on
    `stop()`, at the end of a `with` block, or when garbage-collected."""

    def __init__(self, native: _native.NativeSweeper) -> None:
        self._native = native

    @property
    def stats(self) -> SweeperStats:
        """Completed runs, sessions removed over all runs, failed runs, and
        whether it still runs."""
        return self._native.stats()

    @property
    def running(self) -> bool:
        """False once stopped."""
        return self._native.running

    def stop(self) -> bool:
        """Stop the sweeper (a run already under way may still complete);
        False if it was already stopped."""
        return self._native.stop()

    def __enter__(self) -> Sweeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sweeper({self.stats!r})"


class Subscription:
    """Async iterator over one stream of a session: the events after the
    cursor, then each new one as it is appended. Ends (raises `NotFoundError`)
    when the session is deleted or expires; `close()` stops it."""

    def __init__(self, native: _native.NativeSubscription) -> None:
        self._native = native

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event: Optional[Event] = await self._native.next()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._native.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class BlockingSubscription:
    """`Subscription` for `BlockingStore`: a plain iterator."""

    def __init__(self, native: _native.NativeSubscription) -> None:
        self._native = native

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        event: Optional[Event] = self._native.next()
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        self._native.close()


class Store(_Common):
    """An asyncio store handle. Open it with `await Store.open(url, **options)`.

    Every method is a coroutine; the I/O runs on the library's own threads and
    never blocks the event loop. A handle is cheap to share between tasks.
    """

    def __init__(self, native: _native.NativeStore) -> None:
        if not isinstance(native, _native.NativeStore) or native.blocking:
            raise TypeError("use `await Store.open(url)` to get a Store")
        self._native = native

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        ttl: Optional[Duration] = None,
        max_events_per_session: Optional[int] = None,
        max_payload_bytes: Optional[int] = None,
        max_sessions: Optional[int] = None,
        poll_interval: Optional[Duration] = None,
    ) -> Store:
        """Open `memory://`, `sqlite://PATH`, … Options left as `None` keep the
        defaults (or the URL's query parameters, which win)."""
        args = _open_options(ttl, max_events_per_session, max_payload_bytes, max_sessions, poll_interval)
        native = await _native.NativeStore.open(_str(url, "url"), False, **args)
        return cls(native)

    def blocking(self) -> BlockingStore:
        """The same store (same connections) as a `BlockingStore`."""
        return BlockingStore(self._native.with_blocking(True))

    async def close(self) -> None:
        """Finish pending writes and release the backend's connections."""
        await self._native.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # sessions
    async def create_session(
        self,
        id: Optional[str] = None,
        *,
        metadata: Optional[dict[str, JSON]] = None,
        ttl: Optional[Duration] = None,
    ) -> Session:
        """Create a session (a UUID v4 id unless `id` is given); a live id is `AlreadyExistsError`."""
        return await self._native.create_session(id, metadata, _seconds(ttl, "ttl"))

    async def get_session(self, id: str) -> Optional[Session]:
        """The live session, or None."""
        return await self._native.get_session(id)

    async def update_session(self, id: str, patch: dict[str, JSON]) -> Session:
        """Shallow-merge `patch` into the metadata and renew the TTL."""
        return await self._native.update_session(id, patch)

    async def touch_session(self, id: str) -> Session:
        """Renew the session's TTL."""
        return await self._native.touch_session(id)

    async def delete_session(self, id: str) -> bool:
        """Delete the session with its state and events; True if it was live."""
        return await self._native.delete_session(id)

    async def list_sessions(self, after: Optional[str] = None, limit: Optional[int] = None) -> Page[Session]:
        """Live sessions in id order, `limit` a page (default 100); pass
        `page.next` as `after` to continue."""
        return await self._native.list_sessions(after, _count(limit, "limit"))

    async def count_sessions(self) -> int:
        return await self._native.count_sessions()

    # state
    async def get_state(self, id: str, key: str) -> Optional[StateEntry]:
        return await self._native.get_state(id, key)

    async def set_state(self, id: str, key: str, value: JSON) -> int:
        """Set one key; returns its new version."""
        return await self._native.set_state(id, key, value)

    async def set_state_if_version(self, id: str, key: str, value: JSON, expected: Optional[int]) -> int:
        """Compare-and-set: write only if the key is at version `expected`
        (`None`: only if absent); otherwise `ConflictError`."""
        return await self._native.set_state_if_version(id, key, value, _count(expected, "expected"))

    async def update_state(self, id: str, key: str, fn: Callable[[Optional[JSON]], JSON]) -> StateEntry:
        """Atomically replace the key's value with `fn(current or None)`,
        retried on conflict (`fn` may run several times; keep it pure)."""
        return await self._native.update_state(id, key, fn)

    async def delete_state(self, id: str, key: str) -> bool:
        return await self._native.delete_state(id, key)

    async def state_keys(self, id: str) -> list[str]:
        return await self._native.state_keys(id)

    async def state_all(self, id: str) -> list[StateEntry]:
        return await self._native.state_all(id)

    # events
    async def append_event(
        self,
        id: str,
        stream_id: str,
        data: JSON,
        *,
        event_type: Optional[str] = None,
        retry_ms: Optional[int] = None,
    ) -> Event:
        """Append `data` on `stream_id`; returns the event with its `seq` and `wire_id`."""
        return await self._native.append_event(id, stream_id, data, event_type, _count(retry_ms, "retry_ms"))

    async def append_event_json(self, id: str, stream_id: str, data_json: str) -> Event:
        """Append JSON text as is (validated, not re-encoded)."""
        return await self._native.append_event_json(id, stream_id, data_json)

    async def append_priming(self, id: str, stream_id: str) -> Event:
        """Append a priming event: an id that is a valid cursor, with no data."""
        return await self._native.append_priming(id, stream_id)

    async def events_after(
        self, id: str, stream_id: str, after_seq: int = 0, limit: Optional[int] = None
    ) -> Page[Event]:
        """Events of `stream_id` after `after_seq` (0 = from the start), oldest
        first, `limit` a page (default 100)."""
        return await self._native.events_after(
            id, stream_id, _int(after_seq, "after_seq"), _count(limit, "limit")
        )

    async def replay(self, id: str, last_event_id: str, limit: Optional[int] = None) -> Page[Event]:
        """Events after a wire id (`Last-Event-ID`) on its own stream, `limit`
        a page (default 100); a foreign or altered id is `InvalidInputError`."""
        return await self._native.replay(id, last_event_id, _count(limit, "limit"))

    async def subscribe(self, id: str, stream_id: str, after_seq: int = 0) -> Subscription:
        """Follow a stream: `async for event in await store.subscribe(...)`."""
        native = await self._native.subscribe(id, stream_id, _int(after_seq, "after_seq"))
        return Subscription(native)

    async def cleanup_expired(self) -> CleanupStats:
        """Delete every expired session with its state and events."""
        return await self._native.cleanup_expired()


class BlockingStore(_Common):
    """The blocking twin of `Store`, for scripts and threads. Each call
    releases the GIL while it waits for the backend."""

    def __init__(self, native: _native.NativeStore) -> None:
        if not isinstance(native, _native.NativeStore) or not native.blocking:
            raise TypeError("use `BlockingStore.open(url)` to get a BlockingStore")
        self._native = native

    @classmethod
    def open(
        cls,
        url: str,
        *,
        ttl: Optional[Duration] = None,
        max_events_per_session: Optional[int] = None,
        max_payload_bytes: Optional[int] = None,
        max_sessions: Optional[int] = None,
        poll_interval: Optional[Duration] = None,
    ) -> BlockingStore:
        """Open a store; options as for `Store.open`."""
        args = _open_options(ttl, max_events_per_session, max_payload_bytes, max_sessions, poll_interval)
        return cls(_native.NativeStore.open(_str(url, "url"), True, **args))

    def asyncio(self) -> Store:
        """The same store as an asyncio `Store`."""
        return Store(self._native.with_blocking(False))

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> BlockingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_session(
        self,
        id: Optional[str] = None,
        *,
        metadata: Optional[dict[str, JSON]] = None,
        ttl: Optional[Duration] = None,
    ) -> Session:
        return self._native.create_session(id, metadata, _seconds(ttl, "ttl"))

    def get_session(self, id: str) -> Optional[Session]:
        return self._native.get_session(id)

    def update_session(self, id: str, patch: dict[str, JSON]) -> Session:
        return self._native.update_session(id, patch)

    def touch_session(self, id: str) -> Session:
        return self._native.touch_session(id)

    def delete_session(self, id: str) -> bool:
        return self._native.delete_session(id)

    def list_sessions(self, after: Optional[str] = None, limit: Optional[int] = None) -> Page[Session]:
        return self._native.list_sessions(after, _count(limit, "limit"))

    def count_sessions(self) -> int:
        return self._native.count_sessions()

    def get_state(self, id: str, key: str) -> Optional[StateEntry]:
        return self._native.get_state(id, key)

    def set_state(self, id: str, key: str, value: JSON) -> int:
        return self._native.set_state(id, key, value)

    def set_state_if_version(self, id: str, key: str, value: JSON, expected: Optional[int]) -> int:
        return self._native.set_state_if_version(id, key, value, _count(expected, "expected"))

    def update_state(self, id: str, key: str, fn: Callable[[Optional[JSON]], JSON]) -> StateEntry:
        return self._native.update_state(id, key, fn)

    def delete_state(self, id: str, key: str) -> bool:
        return self._native.delete_state(id, key)

    def state_keys(self, id: str) -> list[str]:
        return self._native.state_keys(id)

    def state_all(self, id: str) -> list[StateEntry]:
        return self._native.state_all(id)

    def append_event(
        self,
        id: str,
        stream_id: str,
        data: JSON,
        *,
        event_type: Optional[str] = None,
        retry_ms: Optional[int] = None,
    ) -> Event:
        return self._native.append_event(id, stream_id, data, event_type, _count(retry_ms, "retry_ms"))

    def append_event_json(self, id: str, stream_id: str, data_json: str) -> Event:
        return self._native.append_event_json(id, stream_id, data_json)

    def append_priming(self, id: str, stream_id: str) -> Event:
        return self._native.append_priming(id, stream_id)

    def events_after(
        self, id: str, stream_id: str, after_seq: int = 0, limit: Optional[int] = None
    ) -> Page[Event]:
        return self._native.events_after(id, stream_id, _int(after_seq, "after_seq"), _count(limit, "limit"))

    def replay(self, id: str, last_event_id: str, limit: Optional[int] = None) -> Page[Event]:
        return self._native.replay(id, last_event_id, _count(limit, "limit"))

    def subscribe(self, id: str, stream_id: str, after_seq: int = 0) -> BlockingSubscription:
        return BlockingSubscription(self._native.subscribe(id, stream_id, _int(after_seq, "after_seq")))

    def cleanup_expired(self) -> CleanupStats:
        return self._native.cleanup_expired()
