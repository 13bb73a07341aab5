// Every error and bad-input path: the right class and code, never a crash,
// and nothing stored is lost.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mss, require, BACKEND_NAMES, openFresh } from './helpers.mjs'

const native = require('../index.js')
const { fromNative } = require('../lib/errors.js')

const isCode = (code, cls) => (e) => {
  assert.ok(e instanceof cls, `expected ${cls.name}, got ${e && e.constructor.name}: ${e && e.message}`)
  assert.equal(e.code, code)
  assert.ok(e.message.length > 0)
  assert.doesNotMatch(e.message, new RegExp(`^${code}:`), 'the code prefix is stripped from the message')
  return true
}
const invalid = isCode('invalid_input', mss.InvalidInputError)

test('error classes: one per code of the native errorKinds(), all SessionStoreError', () => {
  const table = native.errorKinds()
  const kinds = table.map((k) => k.code)
  assert.ok(kinds.length >= 10, 'the core has at least ten kinds')
  assert.deepEqual(mss.ERROR_CODES, kinds, 'ERROR_CODES is the core\'s list, in its order')
  // The hand-written type declarations name the same codes and classes.
  const dts = readFileSync(new URL('../lib/index.d.ts', import.meta.url), 'utf8')
  const union = /export type ErrorCode =([^;]*?)\n\n/.exec(dts)[1]
  assert.deepEqual([...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]), kinds, 'ErrorCode in lib/index.d.ts')
  const exported = Object.keys(mss).filter((k) => /Error$/.test(k) && k !== 'SessionStoreError')
  assert.equal(exported.length, kinds.length, `one exported class per kind: ${exported}`)
  for (const { code, className: name } of table) {
    assert.equal(name, code.replace(/(^|_)([a-z])/g, (_m, _s, c) => c.toUpperCase()) + 'Error')
    const cls = mss[name]
    assert.equal(typeof cls, 'function', `${name} is exported for ${code}`)
    assert.match(dts, new RegExp(`export class ${name} extends SessionStoreError \\{\\n  readonly code: '${code}'`), `${name} in lib/index.d.ts`)
    const e = new cls('m')
    assert.equal(e.code, code)
    assert.ok(e instanceof mss.SessionStoreError && e instanceof Error)
    assert.equal(e.name, name)
    // A native error message with the code prefix becomes this class.
    const mapped = fromNative(new Error(`${code}: from the native layer`))
    assert.ok(mapped instanceof cls, `${code}: prefix maps to ${name}`)
    assert.equal(mapped.message, 'from the native layer')
  }
  // The public names stay: the classes applications catch by name.
  for (const name of [
    'NotFoundError', 'AlreadyExistsError', 'ConflictError', 'InvalidInputError', 'LimitExceededError',
    'CursorExpiredError', 'UnavailableError', 'TimeoutError', 'BackendError', 'InternalError',
  ]) {
    assert.ok(exported.includes(name), name)
  }
})

test('the package version is the workspace version (the core\'s)', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  assert.equal(pkg.version, mss.coreVersion())
  const cargo = readFileSync(new URL('../../../Cargo.toml', import.meta.url), 'utf8')
  const workspace = /^\[workspace\.package\][^[]*?^version\s*=\s*"([^"]+)"/ms.exec(cargo)
  assert.equal(pkg.version, workspace[1], 'version in [workspace.package] of the root Cargo.toml')
})

test('JSON nesting: the core\'s limit of 127 levels, deeper is invalid_input', async (t) => {
  const store = await openFresh(t, 'memory')
  const { id } = await store.createSession()
  const nest = (levels, leaf) => {
    let v = leaf
    for (let i = 0; i < levels; i++) v = i % 2 ? { a: v } : [v]
    return v
  }
  await store.setState(id, 'deep', nest(127, 1))
  assert.deepEqual((await store.getState(id, 'deep')).value, nest(127, 1))
  for (const levels of [128, 1000]) {
    await assert.rejects(store.setState(id, 'deeper', nest(levels, 1)), (e) => {
      invalid(e)
      assert.match(e.message, /nested deeper than 127 levels/)
      return true
    })
  }
  assert.equal(await store.getState(id, 'deeper'), null)
})

test('open: bad URLs, options and unreachable paths', async () => {
  for (const url of ['sessions.db', 'nope://x', 'memory://?tll=5m', 'memory://x', 'memory://?ttl=abc', '']) {
    await assert.rejects(mss.Store.open(url), invalid, url)
  }
  await assert.rejects(mss.Store.open('memory://', { ttlMs: -1 }), invalid)
  await assert.rejects(mss.Store.open('memory://', { ttlMs: 0 }), invalid)
  await assert.rejects(mss.Store.open('memory://', { maxEventsPerSession: 1.5 }), invalid)
  await assert.rejects(mss.Store.open('memory://', { ttl: 'forever' }), invalid)
  await assert.rejects(mss.Store.open('sqlite:///nonexistent-dir-mss/x/y.db'), (e) => {
    assert.ok(e instanceof mss.SessionStoreError)
    assert.ok(['unavailable', 'backend', 'invalid_input'].includes(e.code), e.code)
    return true
  })
  await assert.rejects(mss.Store.open(42), TypeError)
  await assert.rejects(mss.Store.open('memory://', 'ttl=5'), TypeError)
  await assert.rejects(mss.Store.open('memory://', { ttlMs: '10' }), invalid) // a string TTL is a duration: "10" has no unit
  const s = await mss.Store.open('memory://', { ttl: '5m' })
  assert.equal((await s.createSession()).ttlMs, 300_000)
  assert.throws(() => new mss.Store({}), TypeError)
})

test('open options: one parser (names, units, duration strings), URL parameters win', async () => {
  const ttlOf = async (url, options) => (await (await mss.Store.open(url, options)).createSession()).ttlMs
  assert.equal(await ttlOf('memory://', { ttlMs: 90_000 }), 90_000)
  assert.equal(await ttlOf('memory://', { ttl: 90_000 }), 90_000) // a bare number is milliseconds
  assert.equal(await ttlOf('memory://', { ttlMs: '90s' }), 90_000)
  assert.equal(await ttlOf('memory://', { ttlMs: null, maxSessions: undefined }), 30 * 60_000) // absent: the default
  assert.equal(await ttlOf('memory://?ttl=1m', { ttlMs: 90_000 }), 60_000)
  assert.equal(await ttlOf('memory://?ttl=1m', { ttl: '2h' }), 60_000)
  const capped = await mss.Store.open('memory://', { maxSessions: 1, pollIntervalMs: 20, maxEventsPerSession: 2 })
  await capped.createSession()
  await assert.rejects(capped.createSession(), isCode('limit_exceeded', mss.LimitExceededError))
  await assert.rejects(mss.Store.open('memory://', { ttlMs: 1000, ttl: '1s' }), (e) => {
    invalid(e)
    assert.match(e.message, /set the same option/)
    return true
  })
  await assert.rejects(mss.Store.open('memory://', { tll: '5m' }), (e) => {
    invalid(e)
    assert.match(e.message, /unknown option "tll"/)
    return true
  })
  await assert.rejects(mss.Store.open('memory://', { maxSessions: -5 }), invalid)
  await assert.rejects(mss.Store.open('memory://', { maxSessions: '5' }), TypeError)
  await assert.rejects(mss.Store.open('memory://', { pollIntervalMs: '20ms' }), TypeError)
  await assert.rejects(mss.Store.open('memory://', { ttl: true }), TypeError)
})

for (const backend of BACKEND_NAMES) {
  test(`${backend}: bad input is rejected with the right error and stored data survives`, async (t) => {
    const store = await openFresh(t, backend, { maxPayloadBytes: 1000, maxSessions: 3 })
    if (!store) return
    const { id } = await store.createSession({ metadata: { keep: true } })
    await store.setState(id, 'keep', { v: 1 })
    const kept = await store.appendEvent(id, 's', { v: 1 })

    // Wrong JS types: TypeError, synchronously thrown before any I/O.
    for (const bad of [undefined, null, 5, {}, ['x'], Symbol('s')]) {
      await assert.rejects(() => store.getSession(bad), TypeError)
      await assert.rejects(() => store.setState(id, bad, 1), TypeError)
      await assert.rejects(() => store.appendEvent(id, bad, 1), TypeError)
    }
    await assert.rejects(() => store.setState(id, 'k', undefined), TypeError)
    await assert.rejects(() => store.appendEvent(id, 's', undefined), TypeError)
    await assert.rejects(() => store.createSession({ id: 7 }), TypeError)
    await assert.rejects(() => store.createSession({ metadata: [1] }), TypeError)
    await assert.rejects(() => store.createSession('id'), TypeError)
    await assert.rejects(() => store.updateSession(id, null), TypeError)
    await assert.rejects(() => store.updateSession(id, 'x'), TypeError)
    await assert.rejects(() => store.setStateIfVersion(id, 'k', 1, '3'), TypeError)
    await assert.rejects(() => store.eventsAfter(id, 42), TypeError)
    await assert.rejects(() => store.eventsAfter(id, { streamId: 's', seq: '1' }), TypeError)
    await assert.rejects(() => store.listSessions({ limit: '10' }), TypeError)
    await assert.rejects(() => store.appendEvent(id, 's', 1, { retryMs: '5' }), TypeError)
    await assert.rejects(store.startSweeper('1s'), TypeError)
    assert.throws(() => mss.formatEventId(id, 's', '1'), TypeError)

    // Invalid ids, keys, streams and event types.
    for (const badId of ['', 'a b', 'é', 'x'.repeat(256), 'nul\0']) {
      await assert.rejects(store.getSession(badId), invalid)
      await assert.rejects(store.createSession({ id: badId }), invalid)
    }
    for (const badKey of ['', 'line\nbreak', 'k'.repeat(256)]) {
      await assert.rejects(store.setState(id, badKey, 1), invalid)
      await assert.rejects(store.appendEvent(id, badKey, 1), invalid)
      await assert.rejects(store.appendEvent(id, 's', 1, { eventType: badKey }), invalid)
    }
    await assert.rejects(store.listSessions({ limit: 0 }), invalid)
    await assert.rejects(store.listSessions({ limit: 10_001 }), invalid)
    await assert.rejects(store.eventsAfter(id, kept.id, { limit: -1 }), invalid)
    await assert.rejects(store.appendEvent(id, 's', 1, { retryMs: 2 ** 33 }), invalid)
    await assert.rejects(store.createSession({ ttlMs: 0 }), invalid)
    await assert.rejects(store.startSweeper(0), invalid)

    // Values JSON cannot hold: invalid_input, with where.
    const cyclic = { a: 1 }
    cyclic.self = cyclic
    let deep = {}
    for (let i = 0; i < 200; i++) deep = { deep }
    const throwing = { toJSON() { throw new Error('boom') } }
    for (const [what, bad] of [
      ['cycle', cyclic],
      ['NaN', NaN],
      ['Infinity', { x: [1, Infinity] }],
      ['BigInt', { n: 10n }],
      ['deep', deep],
      ['toJSON throws', throwing],
      ['function', () => 1],
      ['symbol', Symbol('x')],
    ]) {
      await assert.rejects(store.setState(id, 'bad', bad), invalid, what)
      await assert.rejects(store.appendEvent(id, 's', bad), invalid, what)
    }
    await assert.rejects(store.setState(id, 'bad', cyclic), /\$\.self/)
    await assert.rejects(store.updateSession(id, { x: NaN }), invalid)
    await assert.rejects(store.createSession({ metadata: { x: 1n } }), invalid)

    // Over the limits.
    const big = 'x'.repeat(2000)
    await assert.rejects(store.setState(id, 'big', big), isCode('limit_exceeded', mss.LimitExceededError))
    await assert.rejects(store.appendEvent(id, 's', { big }), { code: 'limit_exceeded' })
    await assert.rejects(store.updateSession(id, { big }), { code: 'limit_exceeded' })
    await store.createSession()
    await store.createSession()
    await assert.rejects(store.createSession(), { code: 'limit_exceeded' })

    // Unknown sessions.
    const nf = isCode('not_found', mss.NotFoundError)
    await assert.rejects(store.appendEvent('ghost', 's', 1), nf)
    await assert.rejects(store.setState('ghost', 'k', 1), nf)
    await assert.rejects(store.updateSession('ghost', {}), nf)
    await assert.rejects(store.stateKeys('ghost'), nf)

    // Foreign, altered and malformed event ids replay nothing.
    const other = await store.deleteState(id, 'nothing').then(() => store.listSessions({ limit: 10 }))
    const otherId = other.items.map((s) => s.id).find((x) => x !== id)
    const foreign = mss.formatEventId(otherId, 's', kept.seq)
    await assert.rejects(store.replay(id, foreign), invalid)
    await assert.rejects(store.replay(id, kept.id.replace(/^\d+/, '99')), invalid)
    await assert.rejects(store.replay(id, 'garbage'), invalid)
    assert.throws(() => mss.parseEventId(foreign, id), invalid)
    await assert.rejects(store.eventsAfter(id, 'garbage'), invalid)

    // Everything stored before is intact.
    assert.deepEqual((await store.getSession(id)).metadata, { keep: true })
    assert.deepEqual((await store.getState(id, 'keep')).value, { v: 1 })
    assert.equal(await store.getState(id, 'bad'), null)
    const events = await store.eventsAfter(id, { streamId: 's' })
    assert.deepEqual(events.items.map((e) => e.id), [kept.id])
  })
}

test('a closed sqlite store reports errors, it does not crash', async (t) => {
  if (!BACKEND_NAMES.includes('sqlite')) return t.skip('sqlite not selected')
  const store = await openFresh(t, 'sqlite')
  const { id } = await store.createSession()
  await store.close()
  await assert.rejects(store.getSession(id), (e) => e instanceof mss.SessionStoreError)
})
