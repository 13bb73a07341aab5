// Benchmark W2, W3a and W4 (see the project's BENCH.md) through the Node
// binding, on memory:// and SQLite, plus W3a/W4 on the SDK's own example
// InMemoryEventStore for comparison. One JSON line per workload on stdout.
//
//   node bench.mjs [--sessions N] [--events M] [--concurrency C] [--only W2,W3a,W4] [--stores memory,sqlite,sdk]
//
// Build the addon in release mode first (`npm run build`) to measure.
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { Store } = require('./lib/index.js')

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    events: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '8' },
    only: { type: 'string', default: 'W2,W3a,W4' },
    stores: { type: 'string', default: 'memory,sqlite,sdk' },
    'sdk-replays': { type: 'string', default: '50' },
  },
})
const N = Number(args.sessions)
const M = Number(args.events)
const C = Number(args.concurrency)
const only = new Set(args.only.split(','))
const stores = args.stores.split(',')

const payload = (i) => ({
  jsonrpc: '2.0',
  method: 'notifications/message',
  params: { level: 'info', logger: 'bench', data: { i, text: 'x'.repeat(120) } },
})

function percentile(sorted, p) {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]
}

/** Run `task(i)` for i in 0..count on C workers; returns latencies (µs) and errors. */
async function run(count, task) {
  const lat = new Float64Array(count)
  let next = 0
  let errors = 0
  const start = performance.now()
  await Promise.all(
    Array.from({ length: C }, async () => {
      for (let i = next++; i < count; i = next++) {
        const t0 = performance.now()
        try {
          await task(i)
        } catch (err) {
          if (errors++ === 0) console.error('first error:', err)
        }
        lat[i] = (performance.now() - t0) * 1000
      }
    }),
  )
  const elapsed = (performance.now() - start) / 1000
  return { lat: Array.from(lat).sort((a, b) => a - b), errors, elapsed }
}

function line(workload, backend, r, ops, extra) {
  const o = {
    workload,
    backend,
    binding: 'node',
    sessions: N,
    events_per_session: M,
    concurrency: C,
    ops,
    errors: r.errors,
    elapsed_s: Number(r.elapsed.toFixed(3)),
    ops_per_sec: Number((ops / r.elapsed).toFixed(1)),
    p50_us: Number(percentile(r.lat, 50).toFixed(1)),
    p99_us: Number(percentile(r.lat, 99).toFixed(1)),
    ...extra,
  }
  console.log(JSON.stringify(o))
  return o
}

async function benchStore(backend, url) {
  const store = await Store.open(url, { maxEventsPerSession: Math.max(1000, M) })
  const ids = []
  for (let i = 0; i < N; i++) ids.push((await store.createSession()).id)
  let bad = false

  if (only.has('W2')) {
    let mismatches = 0
    // One op = one set or one get; the latency is per session (10 sets + 10 gets).
    const r = await run(N, async (s) => {
      const id = ids[s]
      for (let k = 0; k < 10; k++) await store.setState(id, `k${k}`, { s, k, v: 'value' })
      for (let k = 0; k < 10; k++) {
        const e = await store.getState(id, `k${k}`)
        if (!e || e.value.s !== s || e.value.k !== k) mismatches++
      }
    })
    const o = line('W2_state_set_get', backend, r, N * 20, { readback_mismatches: mismatches })
    bad ||= o.readback_mismatches > 0 || o.errors > 0
  }

  const firstIds = new Array(N)
  if (only.has('W3a') || only.has('W4')) {
    const perSession = ids.map(() => [])
    const r = await run(N * M, async (i) => {
      // Worker-interleaved appends, each session's events in order.
      const s = i % N
      const e = await store.appendEvent(ids[s], 'req-1', payload(i))
      perSession[s].push(e.seq)
    })
    let lost = 0
    let dups = 0
    let nonIncreasing = 0
    for (let s = 0; s < N; s++) {
      const page = await store.eventsAfter(ids[s], { streamId: 'req-1' }, { limit: Math.max(1, M) })
      lost += M - page.items.length
      const seqs = page.items.map((e) => e.seq)
      dups += seqs.length - new Set(seqs).size
      for (let j = 1; j < seqs.length; j++) if (seqs[j] <= seqs[j - 1]) nonIncreasing++
      firstIds[s] = page.items
    }
    if (only.has('W3a')) {
      const o = line('W3a_event_append', backend, r, N * M, {
        lost_events: lost,
        duplicate_ids: dups,
        non_increasing: nonIncreasing,
      })
      bad ||= lost + dups + nonIncreasing + o.errors > 0
    }
  }

  if (only.has('W4')) {
    let wrong = 0
    let delivered = 0
    const r = await run(N, async (s) => {
      const items = firstIds[s]
      const mid = Math.floor(items.length / 2) - 1
      const page = await store.replay(ids[s], items[mid].id, { limit: M })
      delivered += page.items.length
      const expect = items.slice(mid + 1).map((e) => e.seq)
      if (page.items.map((e) => e.seq).join() !== expect.join()) wrong++
    })
    const o = line('W4_replay', backend, r, N, {
      wrong_replays: wrong,
      events_per_sec: Number((delivered / r.elapsed).toFixed(1)),
    })
    bad ||= wrong + o.errors > 0
  }

  for (const id of ids) await store.deleteSession(id)
  await store.close()
  return bad
}

/** The SDK's own example store (one process-wide map), for comparison. */
async function benchSdkStore() {
  const { InMemoryEventStore } = require('@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js')
  const es = new InMemoryEventStore()
  const perStream = Array.from({ length: N }, () => [])
  let bad = false
  const r = await run(N * M, async (i) => {
    const s = i % N
    perStream[s].push(await es.storeEvent(`s${s}`, payload(i)))
  })
  const ids = perStream.flat()
  if (only.has('W3a')) {
    const dups = ids.length - new Set(ids).size
    const o = line('W3a_event_append', 'sdk-in-memory-example', r, N * M, {
      lost_events: N * M - es.events.size,
      duplicate_ids: dups,
      non_increasing: null,
    })
    bad ||= o.lost_events > 0
  }
  if (only.has('W4')) {
    // Its replay sorts the whole log: run a sample of sessions only.
    const replays = Math.min(N, Number(args['sdk-replays']))
    let wrong = 0
    let delivered = 0
    const r4 = await run(replays, async (s) => {
      const stream = perStream[s]
      const mid = Math.floor(stream.length / 2) - 1
      const got = []
      await es.replayEventsAfter(stream[mid], { send: async (id) => got.push(id) })
      delivered += got.length
      if (got.join() !== stream.slice(mid + 1).join()) wrong++
    })
    line('W4_replay', 'sdk-in-memory-example', r4, replays, {
      wrong_replays: wrong,
      events_per_sec: Number((delivered / r4.elapsed).toFixed(1)),
      note: `sample of ${replays} sessions; wrong_replays counts events replayed out of append order (ids sort by ms timestamp, then random)`,
    })
  }
  return bad
}

let bad = false
for (const name of stores) {
  if (name === 'memory') bad = (await benchStore('memory', 'memory://')) || bad
  else if (name === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'mss-bench-'))
    try {
      bad = (await benchStore('sqlite', `sqlite://${join(dir, 'bench.db')}`)) || bad
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  } else if (name === 'sdk') bad = (await benchSdkStore()) || bad
  else throw new Error(`unknown store ${name}`)
}
process.exitCode = bad ? 1 : 0
