"""Adapter for the official `mcp` SDK (tested with mcp 2.3.0).

Two lines make an MCP server resumable across restarts::

    from mcp_session_store.mcp import streamable_http_app
    app = streamable_http_app(server, "sqlite://sessions.db")   # run with uvicorn

- `SessionEventStore` implements `mcp.server.streamable_http.EventStore` for
  ONE session (the SDK calls an event store without a session id, and every
  session has streams "1", "2", … and "_GET_stream").
- `SessionStoreManager` is `StreamableHTTPSessionManager` with the same
  arguments, the event store replaced by a `Store` (or its URL): it gives each
  session its own `SessionEventStore`, records the session in the store,
  deletes it on DELETE, rejects foreign or expired `Last-Event-ID`s with 400,
  and after a server restart restores a session it finds in the store, so the
  client can resume with its last event id.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Optional, Union
from uuid import uuid4

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.connection import Connection
from mcp.server.runner import serve_connection
from mcp.server.streamable_http import (
    LAST_EVENT_ID_HEADER,
    MCP_SESSION_ID_HEADER,
    EventCallback,
    EventMessage,
    EventStore,
    StreamableHTTPServerTransport,
)
from mcp.server.streamable_http_manager import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_IDLE_TIMEOUT,
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp_types import JSONRPCMessage, jsonrpc_message_adapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from . import CursorExpiredError, InvalidInputError, NotFoundError, Store, parse_event_id
from ._native import AlreadyExistsError

logger = logging.getLogger(__name__)

__all__ = ["SessionEventStore", "SessionStoreManager", "streamable_http_app"]

# The manager overrides these hooks of StreamableHTTPSessionManager; fail at
# import, clearly, on an SDK that no longer has them.
for _hook in ("_handle_stateful_request", "_admit_session", "_discard_session"):
    if not hasattr(StreamableHTTPSessionManager, _hook):  # pragma: no cover
        raise ImportError(
            f"mcp_session_store.mcp needs StreamableHTTPSessionManager.{_hook} (mcp 2.3.x); "
            "this mcp version is not supported"
        )

REPLAY_PAGE = 1000


def _encode(message: JSONRPCMessage) -> str:
    return message.model_dump_json(by_alias=True, exclude_unset=True)


class SessionEventStore(EventStore):
    """The SDK's `EventStore` for one session of a `Store`.

    Event ids are the store's wire ids (`SEQ.STREAM.TAG`), bound to this
    session: a cursor of another session, or an altered one, replays nothing.
    Priming events (`message=None`) are stored, so their ids are valid
    cursors, and never replayed. Messages round-trip as the SDK's own
    JSON-RPC types.

    The session is created in the store on the first event if it does not
    exist yet (`metadata` then becomes its metadata).
    """

    def __init__(self, store: Store, session_id: str, *, metadata: Optional[dict[str, Any]] = None) -> None:
        self.store = store
        self.session_id = session_id
        self._metadata = metadata
        self._known = False

    async def ensure_session(self) -> None:
        """Create the session in the store unless it exists."""
        if self._known:
            return
        try:
            await self.store.create_session(self.session_id, metadata=self._metadata)
        except AlreadyExistsError:
            pass
        self._known = True

    async def store_event(self, stream_id: str, message: Optional[JSONRPCMessage]) -> str:
        await self.ensure_session()
        if message is None:
            event = await self.store.append_priming(self.session_id, stream_id)
        else:
            event = await self.store.append_event_json(self.session_id, stream_id, _encode(message))
        return event.wire_id

    async def check_cursor(self, last_event_id: str) -> Optional[str]:
        """Why `last_event_id` cannot be replayed here, or None if it can."""
        try:
            stream_id, seq = parse_event_id(last_event_id, self.session_id)
            await self.store.events_after(self.session_id, stream_id, seq, 1)
        except (InvalidInputError, NotFoundError, CursorExpiredError) as err:
            return f"{err.code}: {err}"
        return None

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> Optional[str]:
        """Send the messages of the cursor's stream after it, in order; return
        that stream's id (None for a cursor that is not this session's)."""
        try:
            stream_id, seq = parse_event_id(last_event_id, self.session_id)
        except InvalidInputError:
            logger.warning(
                "rejected a foreign or malformed Last-Event-ID for session %s", self.session_id[:64]
            )
            return None
        cursor = seq
        while True:
            try:
                page = await self.store.events_after(self.session_id, stream_id, cursor, REPLAY_PAGE)
            except (NotFoundError, CursorExpiredError) as err:
                logger.warning("cannot replay session %s: %s", self.session_id[:64], err)
                return None if cursor == seq else stream_id
            for event in page.items:
                cursor = event.seq
                if event.data_json is None:
                    continue  # priming: a cursor, never a message
                message = jsonrpc_message_adapter.validate_json(event.data_json)
                await send_callback(EventMessage(message, event.wire_id))
            # Loop until a read comes back empty: events stored while the
            # replay was being sent are delivered here too.
            if not page.items:
                return stream_id


class SessionStoreManager(StreamableHTTPSessionManager):
    """`StreamableHTTPSessionManager` backed by a `Store`.

    Same arguments as the SDK's manager, with `store` (a `Store`, or a URL
    opened when `run()` starts) in place of `event_store`. Sessions are
    scoped: each gets its own `SessionEventStore`. `session_metadata` is
    stored with each new session.
    """

    def __init__(
        self,
        app: Any,
        store: Union[Store, str],
        json_response: bool = False,
        stateless: bool = False,
        security_settings: Optional[TransportSecuritySettings] = None,
        retry_interval: Optional[int] = None,
        session_idle_timeout: Optional[float] = DEFAULT_SESSION_IDLE_TIMEOUT,
        max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
        max_sessions: Optional[int] = DEFAULT_MAX_SESSIONS,
        *,
        session_metadata: Optional[dict[str, Any]] = None,
    ) -> None:
        if not isinstance(store, (Store, str)):
            raise TypeError(
                f"store must be a mcp_session_store.Store or a store URL, not {type(store).__name__}"
            )
        super().__init__(
            app,
            event_store=None,
            json_response=json_response,
            stateless=stateless,
            security_settings=security_settings,
            retry_interval=retry_interval,
            session_idle_timeout=session_idle_timeout,
            max_request_body_size=max_request_body_size,
            max_sessions=max_sessions,
        )
        self._store_or_url = store
        self._session_metadata = session_metadata or {}
        self._views: dict[str, SessionEventStore] = {}

    @property
    def store(self) -> Store:
        """The store (once `run()` opened it, when given as a URL)."""
        if not isinstance(self._store_or_url, Store):
            raise RuntimeError("the store is opened by run(): use the manager inside its run() context")
        return self._store_or_url

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        opened = False
        if isinstance(self._store_or_url, str):
            self._store_or_url = await Store.open(self._store_or_url)
            opened = True
        try:
            async with super().run():
                yield
        finally:
            if opened:
                await self.store.close()

    def _view(self, session_id: str) -> SessionEventStore:
        view = self._views.get(session_id)
        if view is None:
            view = SessionEventStore(self.store, session_id, metadata=dict(self._session_metadata))
            self._views[session_id] = view
        return view

    def _transport(self, session_id: str) -> StreamableHTTPServerTransport:
        return StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            event_store=self._view(session_id),
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )

    def _admit_session(self, requestor: Any) -> Optional[StreamableHTTPServerTransport]:
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = uuid4().hex
        transport = self._transport(session_id)
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        logger.info("created session %s", session_id)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        self._views.pop(session_id, None)

    async def _restore(self, session_id: str, protocol_version: Optional[str], requestor: Any) -> bool:
        """Rebuild the transport of a session the store knows (after a restart).
        With auth, the credential of the request that restores it owns it."""
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return False
        try:
            if await self.store.get_session(session_id) is None:
                return False
        except InvalidInputError:
            return False
        transport = self._transport(session_id)
        self._views[session_id]._known = True
        self._server_instances[session_id] = transport
        if requestor is not None:
            self._session_owners[session_id] = requestor

        async def run_server(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            async with transport.connect() as (read_stream, write_stream):
                task_status.started()
                try:
                    idle_scope = transport.idle_scope or anyio.CancelScope()
                    with idle_scope:
                        dispatcher: JSONRPCDispatcher[Any] = JSONRPCDispatcher(
                            read_stream, write_stream, inline_methods=frozenset({"initialize"})
                        )
                        # The handshake happened before the restart: start initialized.
                        connection = Connection.for_loop(
                            dispatcher, session_id=session_id, protocol_version_hint=protocol_version
                        )
                        connection.initialized.set()
                        await serve_connection(
                            self.app, dispatcher, connection=connection, lifespan_state=self._lifespan_state
                        )
                except Exception:
                    logger.exception("restored session %s crashed", session_id)
                finally:
                    await self._discard_session(session_id, transport)

        assert self._task_group is not None
        await self._task_group.start(run_server)
        logger.info("restored session %s from the store", session_id)
        return True

    async def _handle_stateful_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        session_id = request.headers.get(MCP_SESSION_ID_HEADER)
        if session_id is None:
            await super()._handle_stateful_request(scope, receive, send)
            return

        user = scope.get("user")
        requestor = authorization_context(user) if isinstance(user, AuthenticatedUser) else None
        if session_id not in self._server_instances:
            async with self._session_creation_lock:
                if session_id not in self._server_instances:
                    await self._restore(
                        session_id, request.headers.get(MCP_PROTOCOL_VERSION_HEADER), requestor
                    )

        last_event_id = request.headers.get(LAST_EVENT_ID_HEADER)
        owned = self._session_owners.get(session_id) == requestor
        # (a request with another credential gets the SDK's 404, checked by super)
        if request.method == "GET" and last_event_id and owned and session_id in self._server_instances:
            problem = await self._view(session_id).check_cursor(last_event_id)
            if problem is not None:
                body = (
                    '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,'
                    f'"message":"Bad Request: Last-Event-ID cannot be resumed ({_json_escape(problem)})"}}}}'
                )
                await Response(body, status_code=400, media_type="application/json")(scope, receive, send)
                return

        is_delete = request.method == "DELETE"

        async def delete_then_send(message: Message) -> None:
            # The session leaves the store before the client hears it ended.
            if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.store.delete_session(session_id)
                    except Exception:  # the session did end: log, still answer
                        logger.exception("could not delete session %s from the store", session_id[:64])
            await send(message)

        await super()._handle_stateful_request(scope, receive, delete_then_send if is_delete else send)


def _json_escape(text: str) -> str:
    import json

    return json.dumps(text)[1:-1]


def streamable_http_app(
    server: Any,
    store: Union[Store, str],
    *,
    streamable_http_path: str = "/mcp",
    json_response: bool = False,
    retry_interval: Optional[int] = None,
    session_idle_timeout: Optional[float] = DEFAULT_SESSION_IDLE_TIMEOUT,
    max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    max_sessions: Optional[int] = DEFAULT_MAX_SESSIONS,
    transport_security: Optional[TransportSecuritySettings] = None,
    host: str = "127.0.0.1",
    session_metadata: Optional[dict[str, Any]] = None,
) -> Starlette:
    """A Starlette app serving `server` (an `MCPServer`/`FastMCP` or a
    low-level `Server`) over Streamable HTTP with sessions and events in
    `store`. Like the SDK's `streamable_http_app` (same DNS-rebinding default
    for localhost), without the auth options: for auth, build a
    `SessionStoreManager` and mount `StreamableHTTPASGIApp(manager)` yourself."""
    lowlevel = getattr(server, "_lowlevel_server", server)
    if transport_security is None and host in ("127.0.0.1", "localhost", "::1"):
        transport_security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
    manager = SessionStoreManager(
        lowlevel,
        store,
        json_response=json_response,
        security_settings=transport_security,
        retry_interval=retry_interval,
        session_idle_timeout=session_idle_timeout,
        max_request_body_size=max_request_body_size,
        max_sessions=max_sessions,
        session_metadata=session_metadata,
    )
    return Starlette(
        routes=[Route(streamable_http_path, endpoint=StreamableHTTPASGIApp(manager))],
        lifespan=lambda _app: manager.run(),
    )
