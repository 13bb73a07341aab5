"""End to end with the real `mcp` SDK: a server process on uvicorn over a
SQLite store, a real client cut mid-stream, the server killed and restarted,
and the client resuming with its last event id."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import anyio
import httpx2
import mcp.types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import ClientMessageMetadata

from mcp_session_store import Store, parse_event_id

SERVER = Path(__file__).resolve().parents[3] / "examples" / "python" / "server.py"
STEPS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """examples/python/server.py in a subprocess."""

    def __init__(self, store_url: str, port: int, log: Path) -> None:
        self.store_url, self.port, self.log = store_url, port, log
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--store", self.store_url, "--port", str(self.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = ServerProcess(f"sqlite://{tmp_path / 'sessions.db'}", free_port(), tmp_path / "server.log")
    srv.start()
    yield srv
    srv.kill()


def http_client(
    headers: Optional[dict[str, str]] = None, seen_ids: Optional[list[str]] = None
) -> httpx2.AsyncClient:
    async def capture(response: httpx2.Response) -> None:
        if seen_ids is not None and (sid := response.headers.get("mcp-session-id")):
            seen_ids.append(sid)

    return httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(30, read=120), event_hooks={"response": [capture]}
    )


def countdown_request(steps: int, interval: float) -> types.CallToolRequest:
    return types.CallToolRequest(
        params=types.CallToolRequestParams(
            name="countdown", arguments={"steps": steps, "interval": interval}, _meta={"progressToken": "tok"}
        )
    )


def progress_of(message: Any) -> Optional[float]:
    if getattr(message, "method", None) == "notifications/progress":
        params = message.params
        return float(params["progress"] if isinstance(params, dict) else params.progress)
    return None


async def test_resume_after_cut_and_server_restart(server: ServerProcess, tmp_path: Path) -> None:
    # 1. a real client calls the tool and is cut after 3 progress notifications
    first: list[float] = []
    tokens: list[str] = []
    seen_ids: list[str] = []
    enough = anyio.Event()

    # The cut is defined by the resumption token: the token of message k is
    # reported after message k was handed to the session, before message k+1.
    # Whatever the session handles after the cut is not counted.
    async def on_message(message: Any) -> None:
        if (p := progress_of(message)) is not None:
            first.append(p)

    async def on_token(token: str) -> None:
        if enough.is_set():
            return
        tokens.append(token)
        if len(tokens) - 1 >= 3:  # the priming event + 3 messages
            enough.set()

    async with http_client(seen_ids=seen_ids) as client:
        async with streamable_http_client(server.url, http_client=client, terminate_on_close=False) as (r, w):
            async with ClientSession(r, w, message_handler=on_message) as session:
                init = await session.initialize()
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        await session.send_request(
                            countdown_request(STEPS, 0.4),
                            types.CallToolResult,
                            metadata=ClientMessageMetadata(on_resumption_token_update=on_token),
                        )

                    tg.start_soon(call)
                    with anyio.fail_after(60):
                        await enough.wait()
                    tg.cancel_scope.cancel()  # 2. the connection is cut mid-stream
    session_id = seen_ids[0]
    last_token = tokens[-1]
    first = first[: len(tokens) - 1]
    assert 3 <= len(first) < STEPS and first == [float(i) for i in range(1, len(first) + 1)]
    stream_id, last_seq = parse_event_id(last_token, session_id)

    # The server keeps running the tool; wait until its response is stored.
    store = await Store.open(server.store_url)
    with anyio.fail_after(60):
        while True:
            events = (await store.events_after(session_id, stream_id, 0, 1000)).items
            if any(e.data and "result" in e.data for e in events):
                break
            await anyio.sleep(0.1)
    stored = [
        progress_of(types.jsonrpc_message_adapter.validate_json(e.data_json)) for e in events if e.data_json
    ]
    assert [p for p in stored if p is not None] == [float(i) for i in range(1, STEPS + 1)]

    # 3. the server process is killed and restarted on the same store
    server.kill()
    server.start()

    # 4. the client resumes with its last event id
    second: list[float] = []

    async def on_message_2(message: Any) -> None:
        if (p := progress_of(message)) is not None:
            second.append(p)

    headers = {"mcp-session-id": session_id, "mcp-protocol-version": init.protocol_version}
    async with http_client(headers) as client:
        async with streamable_http_client(server.url, http_client=client, terminate_on_close=True) as (r, w):
            async with ClientSession(r, w, message_handler=on_message_2) as session:
                with anyio.fail_after(60):
                    result = await session.send_request(
                        countdown_request(STEPS, 0.4),
                        types.CallToolResult,
                        metadata=ClientMessageMetadata(resumption_token=last_token),
                    )
    # exactly the missed notifications, once each, in order, then the result
    missed = [
        progress_of(types.jsonrpc_message_adapter.validate_json(e.data_json))
        for e in events
        if e.data_json and e.seq > last_seq
    ]
    assert second == [p for p in missed if p is not None]
    assert second == [float(i) for i in range(len(first) + 1, STEPS + 1)]
    assert first + second == [float(i) for i in range(1, STEPS + 1)]
    assert result.content[0].text == f"counted to {STEPS}"

    # DELETE ends the session, in the store too
    assert await store.get_session(session_id) is not None
    async with http_client(headers) as client:
        r = await client.delete(server.url)
        assert r.status_code == 200
        assert await store.get_session(session_id) is None
        r = await client.get(server.url, headers={"accept": "text/event-stream"})
        assert r.status_code == 404
    await store.close()


async def test_sessions_sharing_request_ids_are_isolated_over_http(server: ServerProcess) -> None:
    """Two sessions both call request id 2; a cursor of one is refused by the other."""
    runs: dict[str, dict[str, Any]] = {}
    for name, steps in (("a", 3), ("b", 5)):
        seen: list[str] = []
        tokens: list[str] = []
        got: list[float] = []

        async def on_token(token: str, tokens: list[str] = tokens) -> None:
            tokens.append(token)

        async def on_message(message: Any, got: list[float] = got) -> None:
            if (p := progress_of(message)) is not None:
                got.append(p)

        async with http_client(seen_ids=seen) as client:
            async with streamable_http_client(server.url, http_client=client, terminate_on_close=False) as (
                r,
                w,
            ):
                async with ClientSession(r, w, message_handler=on_message) as session:
                    init = await session.initialize()
                    await session.send_request(
                        countdown_request(steps, 0.01),
                        types.CallToolResult,
                        metadata=ClientMessageMetadata(on_resumption_token_update=on_token),
                    )
        runs[name] = {"id": seen[0], "tokens": tokens, "got": got, "pv": init.protocol_version}
        assert got == [float(i) for i in range(1, steps + 1)]

    a, b = runs["a"], runs["b"]
    assert a["id"] != b["id"]
    assert parse_event_id(a["tokens"][0], a["id"])[0] == parse_event_id(b["tokens"][0], b["id"])[0] == "2"

    async with httpx2.AsyncClient(timeout=30) as client:
        base = {"accept": "text/event-stream", "mcp-protocol-version": a["pv"]}
        # b's cursor on a's session: refused, nothing of b is replayed
        r = await client.get(
            server.url, headers={**base, "mcp-session-id": a["id"], "last-event-id": b["tokens"][0]}
        )
        assert r.status_code == 400 and "Last-Event-ID" in r.text
        r = await client.get(
            server.url, headers={**base, "mcp-session-id": a["id"], "last-event-id": "bogus"}
        )
        assert r.status_code == 400
        # a session the store does not know is 404, as with the SDK's manager
        r = await client.get(server.url, headers={**base, "mcp-session-id": "never-created"})
        assert r.status_code == 404
        # a's own cursor replays a's events only
        lines: list[str] = []
        async with client.stream(
            "GET", server.url, headers={**base, "mcp-session-id": a["id"], "last-event-id": a["tokens"][0]}
        ) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                lines.append(line)
                if '"result"' in line:
                    break
        data = [json.loads(ln[len("data: ") :]) for ln in lines if ln.startswith("data: {")]
        # a's 3 notifications and a's result ("counted to 3"), nothing of b's 5
        assert [d["params"]["progress"] for d in data[:-1]] == [1, 2, 3]
        assert data[-1]["result"]["content"][0]["text"] == "counted to 3"
        for name, run in runs.items():
            r = await client.delete(
                server.url, headers={"mcp-session-id": run["id"], "mcp-protocol-version": run["pv"]}
            )
            assert r.status_code == 200, name
