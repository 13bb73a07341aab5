// Core behaviours through the binding, on every backend in MSS_TEST_BACKENDS.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { mss, BACKEND_NAMES, openFresh, sleep } from './helpers.mjs'

for (const backend of BACKEND_NAMES) {
  describe(backend, () => {
    test('sessions: create, get, update, touch, list, count, delete', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      assert.equal(store.backend, backend)
      const s = await store.createSession({ metadata: { user: 'ada', n: 1 } })
      assert.match(s.id, /^[0-9a-f-]{36}$/)
      assert.deepEqual(s.metadata, { user: 'ada', n: 1 })
      assert.equal(typeof s.createdAt, 'number')
      assert.ok(s.expiresAt > s.createdAt)
      assert.equal(s.lastSeq, 0)

      const named = await store.createSession({ id: 'named-1', ttlMs: 60_000 })
      assert.equal(named.id, 'named-1')
      assert.equal(named.ttlMs, 60_000)
      await assert.rejects(store.createSession({ id: 'named-1' }), (e) => {
        assert.ok(e instanceof mss.AlreadyExistsError)
        assert.ok(e instanceof mss.SessionStoreError)
        assert.ok(e instanceof Error)
        assert.equal(e.code, 'already_exists')
        return true
      })

      const updated = await store.updateSession(s.id, { n: 2, extra: [1, 2] })
      assert.deepEqual(updated.metadata, { user: 'ada', n: 2, extra: [1, 2] })
      assert.ok(updated.version > s.version)
      const touched = await store.touchSession(s.id)
      assert.equal(touched.version, updated.version)
      assert.deepEqual((await store.getSession(s.id)).metadata, updated.metadata)

      assert.equal(await store.countSessions(), 2)
      const page = await store.listSessions({ limit: 1 })
      assert.equal(page.items.length, 1)
      assert.ok(page.next)
      const all = []
      for await (const x of store.sessions({ pageSize: 1 })) all.push(x.id)
      assert.deepEqual(all, [s.id, 'named-1'].sort())

      assert.equal(await store.deleteSession(s.id), true)
      assert.equal(await store.deleteSession(s.id), false)
      assert.equal(await store.getSession(s.id), null)
      await assert.rejects(store.touchSession(s.id), { code: 'not_found', name: 'NotFoundError' })
    })

    test('state: per key, versions, compare-and-set, values round-trip as JS values', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      const value = { s: 'ünïcødé', n: -1.5, big: 2 ** 53, t: true, nul: null, arr: [1, 'two', { three: 3 }] }
      const v1 = await store.setState(id, 'k', value)
      assert.equal(typeof v1, 'number')
      const got = await store.getState(id, 'k')
      assert.deepEqual(got, { key: 'k', value, version: v1 })
      for (const scalar of [0, 'text', false, null, [], {}]) {
        await store.setState(id, 'scalar', scalar)
        assert.deepEqual((await store.getState(id, 'scalar')).value, scalar)
      }
      assert.equal(await store.getState(id, 'missing'), null)

      // Dates use toJSON; undefined properties are left out, as JSON.stringify does.
      await store.setState(id, 'date', { at: new Date(0), gone: undefined, fn() {} })
      assert.deepEqual((await store.getState(id, 'date')).value, { at: '1970-01-01T00:00:00.000Z' })

      await assert.rejects(store.setStateIfVersion(id, 'k', 1, v1 + 1000), {
        name: 'ConflictError',
        code: 'conflict',
      })
      assert.deepEqual((await store.getState(id, 'k')).value, value, 'a lost CAS writes nothing')
      const v2 = await store.setStateIfVersion(id, 'k', 2, v1)
      assert.ok(v2 > v1)
      await assert.rejects(store.setStateIfVersion(id, 'k', 3, null), { code: 'conflict' })
      await store.setStateIfVersion(id, 'fresh', 'x', null)

      assert.deepEqual(await store.stateKeys(id), ['date', 'fresh', 'k', 'scalar'])
      assert.deepEqual(
        (await store.stateAll(id)).map((e) => e.key),
        ['date', 'fresh', 'k', 'scalar'],
      )
      assert.equal(await store.deleteState(id, 'fresh'), true)
      assert.equal(await store.deleteState(id, 'fresh'), false)
      await assert.rejects(store.getState('no-such-session', 'k'), { code: 'not_found' })
    })

    test('updateState: concurrent increments on one shared store are never lost', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      const tasks = Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 25; i++) await store.updateState(id, 'counter', (n) => (n ?? 0) + 1)
      })
      await Promise.all(tasks)
      assert.equal((await store.getState(id, 'counter')).value, 200)
      await assert.rejects(store.updateState(id, 'counter', () => undefined), TypeError)
    })

    test('events: seq order, stream scoping, priming, pagination, async iterator', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      const prime = await store.appendPrimingEvent(id, '2', { retryMs: 1000 })
      assert.equal(prime.priming, true)
      assert.equal(prime.data, undefined)
      assert.equal(prime.retryMs, 1000)
      const appended = []
      for (let i = 1; i <= 5; i++) {
        appended.push(await store.appendEvent(id, '2', { n: i }))
        await store.appendEvent(id, '_GET_stream', { other: i }, { eventType: 'message' })
      }
      const seqs = appended.map((e) => e.seq)
      assert.deepEqual([...seqs].sort((a, b) => a - b), seqs)
      assert.match(appended[0].id, /^[0-9]+\.[A-Za-z0-9_-]+\.[0-9a-f]{16}$/)

      // After the priming id: exactly stream "2"'s events, in order.
      const page = await store.replay(id, prime.id)
      assert.deepEqual(page.items.map((e) => e.data), [1, 2, 3, 4, 5].map((n) => ({ n })))
      assert.ok(page.items.every((e) => e.streamId === '2' && e.sessionId === id))

      const after2 = await store.eventsAfter(id, appended[1].id, { limit: 2 })
      assert.deepEqual(after2.items.map((e) => e.data.n), [3, 4])
      assert.equal(after2.next, after2.items[1].id)
      const rest = await store.eventsAfter(id, after2.next)
      assert.deepEqual(rest.items.map((e) => e.data.n), [5])

      const get = await store.eventsAfter(id, { streamId: '_GET_stream' })
      assert.equal(get.items.length, 5)
      assert.ok(get.items.every((e) => e.eventType === 'message'))

      const iterated = []
      for await (const e of store.events(id, { streamId: '2', seq: 0 }, { pageSize: 2 })) iterated.push(e.seq)
      assert.deepEqual(iterated, [prime.seq, ...seqs])

      assert.equal((await store.getSession(id)).lastSeq, Math.max(...get.items.map((e) => e.seq)))
      // Wire ids round-trip, and are bound to the session.
      assert.deepEqual(mss.parseEventId(appended[0].id, id), { streamId: '2', seq: appended[0].seq })
      assert.equal(mss.formatEventId(id, '2', appended[0].seq), appended[0].id)
    })

    test('events: trimming reports an expired cursor instead of skipping', async (t) => {
      const store = await openFresh(t, backend, { maxEventsPerSession: 3 })
      if (!store) return
      const { id } = await store.createSession()
      const first = await store.appendEvent(id, 's', 1)
      for (let i = 2; i <= 6; i++) await store.appendEvent(id, 's', i)
      await assert.rejects(store.replay(id, first.id), { name: 'CursorExpiredError', code: 'cursor_expired' })
      const kept = await store.eventsAfter(id, { streamId: 's', seq: 3 })
      assert.deepEqual(kept.items.map((e) => e.data), [4, 5, 6])
    })

    test('subscribe: replay then live events, no gap, no duplicate; close ends it', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const { id } = await store.createSession()
      await store.appendEvent(id, 'live', 1)
      await store.appendEvent(id, 'other', 'x')
      const sub = await store.subscribe(id, { streamId: 'live' })
      const seen = []
      const reader = (async () => {
        for await (const e of sub) {
          seen.push(e.data)
          if (seen.length === 4) break
        }
      })()
      for (let i = 2; i <= 4; i++) {
        await store.appendEvent(id, 'live', i)
        await store.appendEvent(id, 'other', 'y')
      }
      await reader
      assert.deepEqual(seen, [1, 2, 3, 4])

      const sub2 = await store.subscribe(id, { streamId: 'live', seq: 0 })
      assert.equal((await sub2.next()).data, 1)
      const pending = (async () => {
        const events = []
        for (let e = await sub2.next(); e !== null; e = await sub2.next()) events.push(e.data)
        return events
      })()
      await sleep(20)
      sub2.close()
      const rest = await pending
      assert.ok(rest.length <= 3)
      assert.equal(await sub2.next(), null)

      await assert.rejects(store.subscribe('nope', { streamId: 'live' }), { code: 'not_found' })

      // Deleting the session ends a waiting subscription with NotFoundError.
      const lastLive = (await store.eventsAfter(id, { streamId: 'live' })).items.at(-1)
      const sub3 = await store.subscribe(id, lastLive.id)
      const waiting = assert.rejects(sub3.next(), { name: 'NotFoundError', code: 'not_found' })
      await sleep(10)
      await store.deleteSession(id)
      await waiting
      assert.equal(await sub3.next(), null)
    })

    test('expiry: expired sessions are invisible and cleaned up; sweeper runs', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const short = await store.createSession({ ttlMs: 1 })
      const long = await store.createSession()
      await store.appendEvent(long.id, 's', 1)
      await sleep(20)
      assert.equal(await store.getSession(short.id), null)
      await assert.rejects(store.appendEvent(short.id, 's', 1), { code: 'not_found' })
      assert.ok(await store.getSession(long.id))
      const removed = await store.cleanupExpired()
      assert.equal(removed.sessions, 1)
      assert.equal(removed.events, 0)
      assert.equal((await store.eventsAfter(long.id, { streamId: 's' })).items.length, 1)
      const sweeper = await store.startSweeper(10)
      await store.createSession({ ttlMs: 5 })
      for (let i = 0; i < 1000 && sweeper.stats.sessionsRemoved === 0; i++) await sleep(10)
      assert.ok(sweeper.stats.runs >= 1)
      assert.ok(sweeper.stats.sessionsRemoved >= 1)
      assert.equal(sweeper.stats.running, true)
      sweeper.stop()
      assert.equal(sweeper.stats.running, false)
    })

    test('one store shared by many concurrent requests', async (t) => {
      const store = await openFresh(t, backend)
      if (!store) return
      const sessions = await Promise.all(Array.from({ length: 10 }, () => store.createSession()))
      await Promise.all(
        sessions.flatMap((s) =>
          Array.from({ length: 20 }, (_, i) => store.appendEvent(s.id, 'p', { i })),
        ),
      )
      for (const s of sessions) {
        const page = await store.eventsAfter(s.id, { streamId: 'p' })
        assert.equal(page.items.length, 20)
        const seqs = page.items.map((e) => e.seq)
        assert.equal(new Set(seqs).size, 20)
        assert.deepEqual([...seqs].sort((a, b) => a - b), seqs)
        assert.deepEqual(new Set(page.items.map((e) => e.data.i)), new Set([...Array(20).keys()]))
      }
    })
  })
}

test('sqlite: two store handles on one file (as two processes would) see the same data', async (t) => {
  if (!BACKEND_NAMES.includes('sqlite')) return t.skip('sqlite not selected')
  const a = await openFresh(t, 'sqlite', { pollIntervalMs: 5 })
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { tmpdir } = await import('node:os')
  const dir = mkdtempSync(join(tmpdir(), 'mss-node-shared-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const url = `sqlite://${join(dir, 'shared.db')}?poll_interval=5ms`
  const one = await mss.Store.open(url)
  const two = await mss.Store.open(url)
  t.after(async () => {
    await one.close()
    await two.close()
  })
  assert.ok(a)
  const { id } = await one.createSession()
  const sub = await two.subscribe(id, { streamId: 's' })
  for (let i = 1; i <= 5; i++) await one.appendEvent(id, 's', i)
  const got = []
  for await (const e of sub) {
    got.push(e.data)
    if (got.length === 5) break
  }
  assert.deepEqual(got, [1, 2, 3, 4, 5])
  assert.deepEqual((await two.getSession(id)).id, id)
})
