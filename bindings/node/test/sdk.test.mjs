// The EventStore adapter and transport options, against the SDK's contract.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { mss, require, BACKEND_NAMES, openFresh } from './helpers.mjs'

const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js')

const note = (n) => ({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: n } })

for (const backend of BACKEND_NAMES) {
  describe(`${backend}: SessionEventStore`, () => {
    test('priming events resolve as cursors but are never replayed; only the cursor stream replays', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      const es = store.eventStore(id)
      const prime = await es.storeEvent('req-1', {})
      const ids = []
      for (let i = 1; i <= 3; i++) {
        ids.push(await es.storeEvent('req-1', note(i)))
        await es.storeEvent('_GET_stream', note(100 + i))
      }
      await es.storeEvent('req-1', {}) // a later priming event in the middle
      ids.push(await es.storeEvent('req-1', note(4)))
      for (const x of [prime, ...ids]) assert.match(x, /^[0-9A-Za-z._-]+$/)

      assert.equal(await es.getStreamIdForEventId(prime), 'req-1')
      const sent = []
      const stream = await es.replayEventsAfter(prime, { send: async (eid, msg) => sent.push([eid, msg]) })
      assert.equal(stream, 'req-1')
      assert.deepEqual(sent.map(([, m]) => m.params.data), [1, 2, 3, 4])
      assert.deepEqual(sent.map(([e]) => e), ids)

      const fromSecond = []
      await es.replayEventsAfter(ids[1], { send: async (_e, m) => fromSecond.push(m.params.data) })
      assert.deepEqual(fromSecond, [3, 4])
    })

    test('unknown, altered and foreign ids are rejected', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const a = store.eventStore((await store.createSession()).id)
      const b = store.eventStore((await store.createSession()).id)
      const aId = await a.storeEvent('_GET_stream', note('a'))
      await b.storeEvent('_GET_stream', note('b'))
      assert.equal(await b.getStreamIdForEventId(aId), undefined, 'foreign')
      assert.equal(await a.getStreamIdForEventId(aId.replace(/^\d+/, '7')), undefined, 'altered')
      assert.equal(await a.getStreamIdForEventId(mss.formatEventId(a.sessionId, '_GET_stream', 99)), undefined, 'never handed out')
      for (const junk of ['', 'x', '1.2.3', 42, null, undefined]) {
        assert.equal(await a.getStreamIdForEventId(junk), undefined)
      }
      const sent = []
      await assert.rejects(b.replayEventsAfter(aId, { send: async (...x) => sent.push(x) }))
      assert.deepEqual(sent, [], "B never sees A's events")
      assert.equal(await store.eventStore('gone-session').getStreamIdForEventId(aId), undefined)
    })

    test('an id older than what trimming kept is rejected, not replayed with a gap', async (t) => {
      const store = await openFresh(t, backend, { maxEventsPerSession: 3 })
      if (!store) return
      const es = store.eventStore((await store.createSession()).id)
      const old = await es.storeEvent('s', note(1))
      const ids = []
      for (let i = 2; i <= 5; i++) ids.push(await es.storeEvent('s', note(i)))
      assert.equal(await es.getStreamIdForEventId(old), undefined)
      await assert.rejects(es.replayEventsAfter(old, { send: async () => {} }), { code: 'cursor_expired' })
      assert.equal(await es.getStreamIdForEventId(ids[1]), 's')
    })

    test('a replay longer than one page (the store pages by 100) sends every event', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      const es = store.eventStore(id)
      const start = await es.storeEvent('_GET_stream', {})
      const ids = []
      for (let i = 1; i <= 250; i++) {
        ids.push(await es.storeEvent('_GET_stream', note(i)))
        if (i % 50 === 0) await es.storeEvent('req-9', note(-i)) // another stream, interleaved
      }
      // One read of the store is one page: 100 events, and more to follow.
      const first = await store.eventsAfter(id, start)
      assert.equal(first.items.length, 100)
      assert.equal(first.next, first.items[99].id)
      const sent = []
      const stream = await es.replayEventsAfter(start, { send: async (eid, m) => sent.push([eid, m.params.data]) })
      assert.equal(stream, '_GET_stream')
      assert.deepEqual(sent.map(([, n]) => n), Array.from({ length: 250 }, (_, i) => i + 1))
      assert.deepEqual(sent.map(([eid]) => eid), ids)
      const fromMiddle = []
      await es.replayEventsAfter(ids[149], { send: async (_e, m) => fromMiddle.push(m.params.data) })
      assert.deepEqual(fromMiddle, Array.from({ length: 100 }, (_, i) => i + 151))
      // The store's own iterator pages the same way.
      let n = 0
      for await (const e of store.events(id, start)) {
        n++
        assert.equal(e.data.params.data, n)
      }
      assert.equal(n, 250)
    })

    test('events stored while a replay is in flight are delivered by that replay', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      const es = store.eventStore(id)
      const start = await es.storeEvent('_GET_stream', note(0))
      for (let i = 1; i <= 50; i++) await es.storeEvent('_GET_stream', note(i))
      // Start the replay, then store more while it reads (the SDK's live
      // send is not attached until the replay resolves).
      const sent = []
      let late
      const replay = es.replayEventsAfter(start, {
        send: async (_e, m) => {
          sent.push(m.params.data)
          if (m.params.data === 1) late = Promise.all([51, 52, 53].map((n) => es.storeEvent('_GET_stream', note(n))))
        },
      })
      const lateIds = []
      // Also store while no send is running.
      const extra = es.storeEvent('_GET_stream', note(54)).then((x) => lateIds.push(x))
      await replay
      await late
      await extra
      const all = new Set(sent)
      for (let n = 1; n <= 54; n++) assert.ok(all.has(n), `event ${n} was replayed`)
      assert.equal(sent.length, all.size, 'no duplicates')
      const ordered = sent.filter((n) => n <= 50)
      assert.deepEqual(ordered, [...ordered].sort((x, y) => x - y))
    })
  })
}

test('transportOptions: store-minted ids, a scoped event store, sessions recorded and removed', async (t) => {
  const store = await openFresh(t, 'memory')
  const seen = []
  const opts = store.transportOptions({
    metadata: { client: 'x' },
    onsessioninitialized: (id) => seen.push(['init', id]),
    onsessionclosed: (id) => seen.push(['closed', id]),
    enableJsonResponse: false,
  })
  const id = opts.sessionIdGenerator()
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.equal(opts.sessionIdGenerator(), id)
  assert.notEqual(store.transportOptions().sessionIdGenerator(), id)
  assert.ok(opts.eventStore instanceof mss.SessionEventStore)
  assert.equal(opts.eventStore.sessionId, id)
  assert.equal(opts.enableJsonResponse, false)
  await opts.onsessioninitialized(id)
  assert.deepEqual((await store.getSession(id)).metadata, { client: 'x' })
  await opts.onsessionclosed(id)
  assert.equal(await store.getSession(id), null)
  assert.deepEqual(seen, [['init', id], ['closed', id]])
  // It builds a real transport.
  const transport = new StreamableHTTPServerTransport(store.transportOptions())
  assert.equal(transport.sessionId, undefined)
  assert.throws(() => store.transportOptions('x'), TypeError)
})

test('restoreTransport: known sessions only', async (t) => {
  const store = await openFresh(t, 'memory')
  const { id } = await store.createSession()
  const restored = await store.restoreTransport(id)
  assert.ok(restored instanceof StreamableHTTPServerTransport)
  assert.equal(restored.sessionId, id)
  assert.equal(await store.restoreTransport('unknown'), null)
  assert.equal(await store.restoreTransport('not valid'), null)
  await assert.rejects(store.restoreTransport(5), TypeError)
})
