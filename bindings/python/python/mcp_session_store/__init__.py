"""mcp-session-store: sessions, per-key state and resumable SSE event logs for
MCP servers, on memory, SQLite and more — one Rust core behind an asyncio API.

    store = await Store.open("sqlite://sessions.db", ttl=1800)
    session = await store.create_session(metadata={"user": "ada"})
    event = await store.append_event(session.id, "_GET_stream", {"n": 1})
    missed = await store.replay(session.id, event.wire_id)

`BlockingStore` is the same API without `await`. The adapter for the official
`mcp` SDK is `mcp_session_store.mcp`.
"""

from __future__ import annotations

from ._native import (
    CORE_VERSION,
    AlreadyExistsError,
    BackendError,
    CleanupStats,
    ConflictError,
    CursorExpiredError,
    Event,
    InternalError,
    InvalidInputError,
    LimitExceededError,
    NotFoundError,
    Page,
    Session,
    SessionStoreError,
    StateEntry,
    SweeperStats,
    TimeoutError,
    UnavailableError,
    encode_json,
    format_event_id,
    parse_event_id,
)
from ._store import BlockingStore, BlockingSubscription, Duration, Store, Subscription, Sweeper

__version__ = CORE_VERSION

__all__ = [
    "AlreadyExistsError",
    "BackendError",
    "BlockingStore",
    "BlockingSubscription",
    "CleanupStats",
    "ConflictError",
    "CursorExpiredError",
    "Duration",
    "Event",
    "InternalError",
    "InvalidInputError",
    "LimitExceededError",
    "NotFoundError",
    "Page",
    "Session",
    "SessionStoreError",
    "StateEntry",
    "Store",
    "Subscription",
    "Sweeper",
    "SweeperStats",
    "TimeoutError",
    "UnavailableError",
    "__version__",
    "encode_json",
    "format_event_id",
    "parse_event_id",
]
