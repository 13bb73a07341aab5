'use strict'

/**
 * The package entry point: `Store` (argument checks, errors, iterators over
 * pages) over the native addon, its `Subscription` and `Sweeper`, wire ids,
 * and the error classes. `event-store.js` and `sdk.js` hold the adapter for
 * `@modelcontextprotocol/sdk`.
 */

const native = require('../index.js')
const errors = require('./errors.js')
const { describe, str, optStr, num, optNum, obj, defined } = require('./args.js')
const { formatEventId, parseEventId, newSessionId, toCursor } = require('./event-id.js')
const { SessionEventStore } = require('./event-store.js')
const sdk = require('./sdk.js')

const { call } = errors
const { ConflictError } = errors.errorClasses

/**
 * The open options, type-checked (a number where a number belongs:
 * `TypeError`); the native layer parses them with the bridge's one options
 * parser (names, units, duration strings, unknown names).
 */
function openOptions(options) {
  const o = obj(options, 'options')
  for (const name of ['ttlMs', 'ttl']) {
    if (typeof o[name] !== 'string') optNum(o[name], `options.${name}`)
  }
  for (const name of ['maxEventsPerSession', 'maxPayloadBytes', 'maxSessions', 'pollIntervalMs']) {
    optNum(o[name], `options.${name}`)
  }
  return o
}

// ---- the store --------------------------------------------------------------

/**
 * A store opened from a URL. One instance is safe to share between all the
 * concurrent requests of a process; every method returns a Promise.
 */
class Store {
  /** @param {never} handle */
  constructor(handle) {
    if (!(handle instanceof native.NativeStore)) {
      throw new TypeError('use `await Store.open(url, options)` to open a store')
    }
    this._native = handle
  }

  /**
   * Open the store at `url` (`memory://`, `sqlite://PATH`, …). URL query
   * parameters win over `options`.
   */
  static async open(url, options) {
    str(url, 'url')
    const o = openOptions(options)
    const handle = await call(() => native.openStore(url, o))
    return new Store(handle)
  }

  /** The backend's name: `"memory"`, `"sqlite"`, … */
  get backend() {
    return this._native.backend
  }

  /** Finish pending writes and release the backend's connections. */
  async close() {
    return call(() => this._native.close())
  }

  // sessions

  async createSession(options) {
    const o = obj(options, 'options')
    return call(() =>
      this._native.createSession(
        optStr(o.id, 'options.id'),
        o.metadata === undefined || o.metadata === null ? undefined : obj(o.metadata, 'options.metadata'),
        optNum(o.ttlMs, 'options.ttlMs'),
      ),
    )
  }

  async getSession(sessionId) {
    return call(() => this._native.getSession(str(sessionId, 'sessionId')))
  }

  async updateSession(sessionId, patch) {
    str(sessionId, 'sessionId')
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
      throw new TypeError(`patch must be an object, got ${describe(patch)}`)
    }
    return call(() => this._native.updateSession(sessionId, patch))
  }

  async touchSession(sessionId) {
    return call(() => this._native.touchSession(str(sessionId, 'sessionId')))
  }

  async deleteSession(sessionId) {
    return call(() => this._native.deleteSession(str(sessionId, 'sessionId')))
  }

  async listSessions(options) {
    const o = obj(options, 'options')
    return call(() => this._native.listSessions(optStr(o.after, 'options.after'), optNum(o.limit, 'options.limit')))
  }

  /** Every live session, page by page. */
  async *sessions(options) {
    const o = obj(options, 'options')
    let after = optStr(o.after, 'options.after')
    const limit = optNum(o.pageSize, 'options.pageSize') ?? 100
    for (;;) {
      const page = await this.listSessions({ after, limit })
      yield* page.items
      if (page.next === undefined || page.next === null) return
      after = page.next
    }
  }

  async countSessions() {
    return call(() => this._native.countSessions())
  }

  // state

  async getState(sessionId, key) {
    return call(() => this._native.getState(str(sessionId, 'sessionId'), str(key, 'key')))
  }

  async setState(sessionId, key, value) {
    return call(() => this._native.setState(str(sessionId, 'sessionId'), str(key, 'key'), defined(value, 'value')))
  }

  async setStateIfVersion(sessionId, key, value, expectedVersion) {
    str(sessionId, 'sessionId')
    str(key, 'key')
    defined(value, 'value')
    if (expectedVersion !== null && typeof expectedVersion !== 'number') {
      throw new TypeError(
        `expectedVersion must be a number, or null for "only if absent", got ${describe(expectedVersion)}`,
      )
    }
    return call(() => this._native.setStateIfVersion(sessionId, key, value, expectedVersion ?? undefined))
  }

  /**
   * Atomically replace a key's value with `await fn(current)` (`undefined`
   * when absent), retrying when another writer got in between. `fn` may run
   * more than once. Returns the new entry.
   */
  async updateState(sessionId, key, fn) {
    str(sessionId, 'sessionId')
    str(key, 'key')
    if (typeof fn !== 'function') throw new TypeError(`fn must be a function, got ${describe(fn)}`)
    for (let attempt = 0; attempt < 1000; attempt++) {
      const current = await this.getState(sessionId, key)
      const value = await fn(current ? current.value : undefined)
      try {
        const version = await this.setStateIfVersion(sessionId, key, value, current ? current.version : null)
        return { key, value, version }
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err
        const ceiling = Math.min(5, 0.02 * 2 ** Math.min(attempt, 8))
        await new Promise((r) => setTimeout(r, Math.random() * ceiling))
      }
    }
    throw new ConflictError(`update of state key ${JSON.stringify(key)} lost 1000 races in a row`)
  }

  async deleteState(sessionId, key) {
    return call(() => this._native.deleteState(str(sessionId, 'sessionId'), str(key, 'key')))
  }

  async stateKeys(sessionId) {
    return call(() => this._native.stateKeys(str(sessionId, 'sessionId')))
  }

  async stateAll(sessionId) {
    return call(() => this._native.stateAll(str(sessionId, 'sessionId')))
  }

  // events

  /** Append `data` (any JSON value) on `streamId`. */
  async appendEvent(sessionId, streamId, data, options) {
    str(sessionId, 'sessionId')
    str(streamId, 'streamId')
    defined(data, 'data')
    const o = obj(options, 'options')
    return call(() =>
      this._native.appendEvent(
        sessionId,
        streamId,
        data,
        optStr(o.eventType, 'options.eventType'),
        optNum(o.retryMs, 'options.retryMs'),
      ),
    )
  }

  /** Append a priming event: an id (a valid cursor) with no data. */
  async appendPrimingEvent(sessionId, streamId, options) {
    str(sessionId, 'sessionId')
    str(streamId, 'streamId')
    const o = obj(options, 'options')
    return call(() =>
      this._native.appendEvent(sessionId, streamId, undefined, undefined, optNum(o.retryMs, 'options.retryMs')),
    )
  }

  /**
   * One page of the cursor's stream after the cursor: a wire id or
   * `{ streamId, seq }` (`seq` 0 or absent: from the start).
   */
  async eventsAfter(sessionId, cursor, options) {
    str(sessionId, 'sessionId')
    const o = obj(options, 'options')
    const limit = optNum(o.limit, 'options.limit')
    const pos = toCursor(sessionId, cursor)
    return call(() => this._native.eventsAfter(sessionId, pos.streamId, pos.seq, limit))
  }

  /** `eventsAfter` for a `Last-Event-ID`. */
  async replay(sessionId, lastEventId, options) {
    str(sessionId, 'sessionId')
    str(lastEventId, 'lastEventId')
    const o = obj(options, 'options')
    return call(() => this._native.replay(sessionId, lastEventId, optNum(o.limit, 'options.limit')))
  }

  /**
   * Every event of the cursor's stream after it, as an async iterator, read
   * in pages of `pageSize` (default: the store's page limit, 100).
   */
  async *events(sessionId, cursor, options) {
    str(sessionId, 'sessionId')
    const o = obj(options, 'options')
    const limit = optNum(o.pageSize, 'options.pageSize')
    let pos = toCursor(sessionId, cursor)
    for (;;) {
      const page = await call(() => this._native.eventsAfter(sessionId, pos.streamId, pos.seq, limit))
      yield* page.items
      if (page.next === undefined || page.next === null || page.items.length === 0) return
      const last = page.items[page.items.length - 1]
      pos = { streamId: last.streamId, seq: last.seq }
    }
  }

  /**
   * Follow one stream: the events after the cursor, then each new one as it
   * is appended. Use it with `for await`; `close()` (or leaving the loop)
   * stops it.
   */
  async subscribe(sessionId, cursor) {
    str(sessionId, 'sessionId')
    const pos = toCursor(sessionId, cursor)
    const handle = await call(() => this._native.subscribe(sessionId, pos.streamId, pos.seq))
    return new Subscription(handle)
  }

  async cleanupExpired() {
    return call(() => this._native.cleanupExpired())
  }

  /** Run `cleanupExpired` every `intervalMs` until `stop()`. */
  async startSweeper(intervalMs) {
    const handle = await call(() => this._native.startSweeper(num(intervalMs, 'intervalMs')))
    return new Sweeper(handle)
  }

  // the @modelcontextprotocol/sdk adapter

  /** An SDK `EventStore` scoped to one session. */
  eventStore(sessionId) {
    return new SessionEventStore(this, str(sessionId, 'sessionId'))
  }

  /** Options for one `StreamableHTTPServerTransport`; see lib/sdk.js. */
  transportOptions(options) {
    return sdk.transportOptions(this, options)
  }

  /** A transport for a session known to the store (after a restart), or null. */
  async restoreTransport(sessionId, options) {
    return sdk.restoreTransport(this, sessionId, options)
  }
}

class Subscription {
  constructor(handle) {
    this._native = handle
    this._done = false
  }

  /** The next event, or `null` once closed. */
  async next() {
    if (this._done) return null
    const event = await call(() => this._native.next())
    if (event === null || event === undefined) {
      this._done = true
      return null
    }
    return event
  }

  close() {
    this._done = true
    this._native.close()
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        const event = await this.next()
        if (event === null) return
        yield event
      }
    } finally {
      this.close()
    }
  }
}

class Sweeper {
  constructor(handle) {
    this._native = handle
  }

  get stats() {
    return this._native.stats()
  }

  stop() {
    this._native.stop()
  }
}

module.exports = {
  Store,
  Subscription,
  Sweeper,
  SessionEventStore,
  formatEventId,
  parseEventId,
  newSessionId,
  coreVersion: native.coreVersion,
  SessionStoreError: errors.SessionStoreError,
  // NotFoundError, AlreadyExistsError, …: one class per code of the core.
  ...errors.errorClasses,
  ERROR_CODES: errors.ERROR_CODES,
}
