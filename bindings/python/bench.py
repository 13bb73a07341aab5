"""Binding benchmark: W2, W3a and W4 of the project's benchmark (cli/BENCH.md) through the
Python package, on memory:// and SQLite, printed as one JSON line each.

    python bindings/python/bench.py [--sessions 1000] [--events 100] [--concurrency 8]
                                    [--backends memory,sqlite] [--no-sdk]

`"api": "store"` lines use `mcp_session_store.Store` directly (the W2/W3a/W4
workloads of the Rust `bench`, so the binding's overhead is visible next to
the Rust figures). `"api": "mcp-eventstore"` lines run W3a (`store_event`)
and W4 (`replay_events_after`) through the `mcp` SDK's EventStore interface:
on this package's `SessionEventStore` and on the SDK's own in-memory example
store (`examples/servers/simple-streamablehttp/.../event_store.py` of mcp
2.3.0, reproduced below), which keeps Python objects in a dict and so never
encodes, stores or re-validates a message. W2 has no EventStore equivalent.

Exits non-zero if an error count or correctness counter is not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional
from uuid import uuid4

from mcp_session_store import Store

try:
    from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
    from mcp_types import JSONRPCMessage, JSONRPCNotification

    from mcp_session_store.mcp import SessionEventStore
except ImportError:  # the SDK comparison needs `mcp`
    EventStore = None  # type: ignore[assignment,misc]


def percentile(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return 0.0
    i = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[i] / 1000.0


def line(
    workload: str,
    backend: str,
    api: str,
    args: argparse.Namespace,
    ops: int,
    errors: int,
    elapsed: float,
    lat_ns: list[int],
    **extra: Any,
) -> dict[str, Any]:
    lat_ns.sort()
    out = {
        "workload": workload,
        "backend": backend,
        "api": api,
        "sessions": args.sessions,
        "events_per_session": args.events,
        "concurrency": args.concurrency,
        "ops": ops,
        "errors": errors,
        "elapsed_s": round(elapsed, 4),
        "ops_per_sec": round(ops / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_us": round(percentile(lat_ns, 0.50), 1),
        "p99_us": round(percentile(lat_ns, 0.99), 1),
    }
    out.update(extra)
    print(json.dumps(out), flush=True)
    return out


async def run_tasks(n_items: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> float:
    async def worker(t: int) -> None:
        for i in range(t, n_items, concurrency):
            await work(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(concurrency)))
    return time.perf_counter() - start


def payload(session: int, n: int) -> dict[str, Any]:
    # ~200 bytes of JSON, a progress notification as an MCP server sends it
    return {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {
            "progressToken": f"tok-{session}",
            "progress": n,
            "total": 100,
            "message": f"step {n} of the import of record batch {session}, still going",
        },
    }


# ---- W2 / W3a / W4 on the Store API ----------------------------------------


async def bench_store(url: str, backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    store = await Store.open(url, max_events_per_session=max(1000, args.events * 2))
    results = []
    sessions = [(await store.create_session()).id for _ in range(args.sessions)]

    # W2: per session, set 10 small JSON keys and read each back
    lat: list[int] = []
    errors = mismatches = 0

    async def w2(i: int) -> None:
        nonlocal errors, mismatches
        sid = sessions[i]
        for k in range(10):
            value = {"k": k, "session": i, "tags": ["a", "b"]}
            t0 = time.perf_counter_ns()
            try:
                await store.set_state(sid, f"key{k}", value)
            except Exception:
                errors += 1
            lat.append(time.perf_counter_ns() - t0)
            t0 = time.perf_counter_ns()
            try:
                entry = await store.get_state(sid, f"key{k}")
                if entry is None or entry.value != value:
                    mismatches += 1
            except Exception:
                errors += 1
            lat.append(time.perf_counter_ns() - t0)

    elapsed = await run_tasks(args.sessions, args.concurrency, w2)
    results.append(
        line(
            "W2_state_set_get",
            backend,
            "store",
            args,
            args.sessions * 20,
            errors,
            elapsed,
            lat,
            readback_mismatches=mismatches,
        )
    )

    # W3a: M events per session, C tasks on distinct sessions
    lat = []
    errors = 0
    seqs: dict[int, list[int]] = {i: [] for i in range(args.sessions)}

    async def w3a(i: int) -> None:
        nonlocal errors
        sid = sessions[i]
        for n in range(args.events):
            t0 = time.perf_counter_ns()
            try:
                event = await store.append_event(sid, "2", payload(i, n))
                seqs[i].append(event.seq)
            except Exception:
                errors += 1
            lat.append(time.perf_counter_ns() - t0)

    elapsed = await run_tasks(args.sessions, args.concurrency, w3a)
    lost = dup = non_inc = 0
    for i, sid in enumerate(sessions):
        s = seqs[i]
        dup += len(s) - len(set(s))
        non_inc += sum(1 for a, b in zip(s, s[1:]) if b <= a)
        stored = 0
        after = 0
        while True:
            page = await store.events_after(sid, "2", after, 10_000)
            stored += len(page.items)
            if page.next is None or not page.items:
                break
            after = page.items[-1].seq
        lost += max(0, args.events - stored)
    results.append(
        line(
            "W3a_event_append",
            backend,
            "store",
            args,
            args.sessions * args.events,
            errors,
            elapsed,
            lat,
            lost_events=lost,
            duplicate_ids=dup,
            non_increasing=non_inc,
        )
    )

    # W4: per session, events_after the middle event
    lat = []
    errors = wrong = 0
    replayed = 0
    middle = args.events // 2
    expected = args.events - middle

    async def w4(i: int) -> None:
        nonlocal errors, wrong, replayed
        sid = sessions[i]
        t0 = time.perf_counter_ns()
        try:
            page = await store.events_after(sid, "2", seqs[i][middle - 1] if middle else 0, 10_000)
            replayed += len(page.items)
            if [e.seq for e in page.items] != seqs[i][middle:]:
                wrong += 1
        except Exception:
            errors += 1
        lat.append(time.perf_counter_ns() - t0)

    elapsed = await run_tasks(args.sessions, args.concurrency, w4)
    results.append(
        line(
            "W4_replay",
            backend,
            "store",
            args,
            args.sessions,
            errors,
            elapsed,
            lat,
            wrong_replays=wrong,
            events_per_sec=round(replayed / elapsed, 1),
            events_per_replay=expected,
        )
    )
    for sid in sessions:
        await store.delete_session(sid)
    await store.close()
    return results


# ---- W3a / W4 through the SDK's EventStore interface ------------------------

if EventStore is not None:

    @dataclass
    class EventEntry:
        event_id: str
        stream_id: str
        message: Optional[JSONRPCMessage]

    class InMemoryEventStore(EventStore):
        """The mcp SDK's example store (mcp 2.3.0,
        examples/servers/simple-streamablehttp/mcp_simple_streamablehttp/event_store.py),
        reproduced for comparison; logging left out."""

        def __init__(self, max_events_per_stream: int = 100):
            self.max_events_per_stream = max_events_per_stream
            self.streams: dict[str, deque[EventEntry]] = {}
            self.event_index: dict[str, EventEntry] = {}

        async def store_event(self, stream_id: str, message: Optional[JSONRPCMessage]) -> str:
            event_id = str(uuid4())
            event_entry = EventEntry(event_id=event_id, stream_id=stream_id, message=message)
            if stream_id not in self.streams:
                self.streams[stream_id] = deque(maxlen=self.max_events_per_stream)
            if len(self.streams[stream_id]) == self.max_events_per_stream:
                oldest_event = self.streams[stream_id][0]
                self.event_index.pop(oldest_event.event_id, None)
            self.streams[stream_id].append(event_entry)
            self.event_index[event_id] = event_entry
            return event_id

        async def replay_events_after(
            self, last_event_id: str, send_callback: EventCallback
        ) -> Optional[str]:
            if last_event_id not in self.event_index:
                return None
            last_event = self.event_index[last_event_id]
            stream_id = last_event.stream_id
            stream_events = self.streams.get(last_event.stream_id, deque())
            found_last = False
            for event in stream_events:
                if found_last:
                    if event.message is not None:
                        await send_callback(EventMessage(event.message, event.event_id))
                elif event.event_id == last_event_id:
                    found_last = True
            return stream_id


async def bench_event_store(
    backend: str, args: argparse.Namespace, views: list[Any], stream_ids: list[str]
) -> list[dict[str, Any]]:
    """W3a and W4 through `store_event` / `replay_events_after` of one EventStore per session."""
    results = []
    messages = [
        [JSONRPCNotification.model_validate(payload(i, n)) for n in range(args.events)]
        for i in range(args.sessions)
    ]
    ids: dict[int, list[str]] = {i: [] for i in range(args.sessions)}
    lat: list[int] = []
    errors = 0

    async def w3a(i: int) -> None:
        nonlocal errors
        for n in range(args.events):
            t0 = time.perf_counter_ns()
            try:
                ids[i].append(await views[i].store_event(stream_ids[i], messages[i][n]))
            except Exception:
                errors += 1
            lat.append(time.perf_counter_ns() - t0)

    elapsed = await run_tasks(args.sessions, args.concurrency, w3a)
    dup = sum(len(v) - len(set(v)) for v in ids.values())
    lost = sum(max(0, args.events - len(v)) for v in ids.values())
    results.append(
        line(
            "W3a_event_append",
            backend,
            "mcp-eventstore",
            args,
            args.sessions * args.events,
            errors,
            elapsed,
            lat,
            lost_events=lost,
            duplicate_ids=dup,
            non_increasing=0,
        )
    )

    lat = []
    errors = wrong = replayed = 0
    middle = args.events // 2

    async def w4(i: int) -> None:
        nonlocal errors, wrong, replayed
        got: list[str] = []

        async def send(message: Any) -> None:
            got.append(message.event_id)

        t0 = time.perf_counter_ns()
        try:
            stream = await views[i].replay_events_after(ids[i][middle - 1], send)
            replayed += len(got)
            if stream != stream_ids[i] or got != ids[i][middle:]:
                wrong += 1
        except Exception:
            errors += 1
        lat.append(time.perf_counter_ns() - t0)

    elapsed = await run_tasks(args.sessions, args.concurrency, w4)
    results.append(
        line(
            "W4_replay",
            backend,
            "mcp-eventstore",
            args,
            args.sessions,
            errors,
            elapsed,
            lat,
            wrong_replays=wrong,
            events_per_sec=round(replayed / elapsed, 1),
            events_per_replay=args.events - middle,
        )
    )
    return results


async def bench_sdk_paths(url: Optional[str], backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    if url is None:
        shared = InMemoryEventStore(max_events_per_stream=args.events + 10)
        # The SDK hands one store to every session: distinct stream ids keep them apart here.
        return await bench_event_store(
            backend, args, [shared] * args.sessions, [f"{i}" for i in range(args.sessions)]
        )
    store = await Store.open(url, max_events_per_session=max(1000, args.events * 2))
    views = [SessionEventStore(store, uuid4().hex) for _ in range(args.sessions)]
    results = await bench_event_store(backend, args, views, ["2"] * args.sessions)
    for view in views:
        await store.delete_session(view.session_id)
    await store.close()
    return results


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backends", default="memory,sqlite")
    parser.add_argument("--no-sdk", action="store_true", help="skip the mcp EventStore comparison")
    args = parser.parse_args()
    if args.events < 2 or args.sessions < 1 or args.concurrency < 1:
        parser.error("need --events >= 2, --sessions >= 1, --concurrency >= 1")

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"memory": "memory://", "sqlite": f"sqlite://{os.path.join(tmp, 'bench.db')}"}
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            url = urls.get(backend, backend)
            print(f"# {backend}: store API", file=sys.stderr)
            results += await bench_store(url, backend, args)
            if EventStore is not None and not args.no_sdk:
                print(f"# {backend}: mcp EventStore API", file=sys.stderr)
                results += await bench_sdk_paths(url, backend, args)
        if EventStore is not None and not args.no_sdk:
            print("# mcp SDK example InMemoryEventStore", file=sys.stderr)
            results += await bench_sdk_paths(None, "sdk-example-inmemory", args)

    counters = (
        "errors",
        "readback_mismatches",
        "lost_events",
        "duplicate_ids",
        "non_increasing",
        "wrong_replays",
    )
    bad = [r for r in results if any(r.get(c, 0) for c in counters)]
    for r in bad:
        print(f"FAILED correctness: {r['workload']} {r['backend']} {r['api']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
