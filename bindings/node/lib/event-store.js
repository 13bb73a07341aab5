'use strict'

const { parseEventId } = require('./event-id.js')

/**
 * The `EventStore` of `@modelcontextprotocol/sdk`, scoped to one session.
 *
 * The SDK never tells an event store which session an event belongs to, and
 * every session's standalone stream is called `_GET_stream`, so one store
 * object shared by all transports would replay one session's events to
 * another. Give each transport its own view: `store.eventStore(sessionId)`,
 * or `store.transportOptions()`, which does it for you.
 *
 * - `storeEvent(streamId, {})` (the SDK's priming event) stores a priming
 *   event: its id is a valid cursor, but it is never replayed.
 * - Event ids are the store's wire ids (`SEQ.STREAM.TAG`): SSE-safe and bound
 *   to the session, so an id from another session, an altered id or an id
 *   never handed out resolves to `undefined` in `getStreamIdForEventId`
 *   (the SDK answers HTTP 400) and replays nothing; so does an id older than
 *   what `maxEventsPerSession` kept (resuming from it would skip events).
 * - The SDK attaches a resumed connection only once `replayEventsAfter`
 *   resolves; an event stored while the replay reads the log would be neither
 *   replayed nor sent live. This view counts its own in-flight `storeEvent`
 *   calls per stream and, before resolving, waits for them and replays what
 *   they stored (the SDK skips an event it sees twice by its id).
 */
class SessionEventStore {
  constructor(store, sessionId) {
    this.store = store
    this.sessionId = sessionId
    /** @type {Map<string, Set<Promise<unknown>>>} in-flight appends per stream */
    this._pending = new Map()
  }

  async storeEvent(streamId, message) {
    if (typeof streamId !== 'string') throw new TypeError('streamId must be a string')
    const priming =
      message !== null && typeof message === 'object' && !Array.isArray(message) && Object.keys(message).length === 0
    const op = priming
      ? this.store.appendPrimingEvent(this.sessionId, streamId)
      : this.store.appendEvent(this.sessionId, streamId, message)
    let set = this._pending.get(streamId)
    if (!set) this._pending.set(streamId, (set = new Set()))
    set.add(op)
    try {
      const event = await op
      return event.id
    } finally {
      set.delete(op)
      if (set.size === 0 && this._pending.get(streamId) === set) this._pending.delete(streamId)
    }
  }

  /** The stream of an event id this session handed out, else `undefined`. */
  async getStreamIdForEventId(eventId) {
    const pos = this._parse(eventId)
    if (!pos) return undefined
    const session = await this.store.getSession(this.sessionId)
    if (!session || pos.seq > session.lastSeq) return undefined
    try {
      // A cursor that trimming overtook cannot be resumed without a gap.
      await this.store.eventsAfter(this.sessionId, pos, { limit: 1 })
    } catch (err) {
      if (err && (err.code === 'cursor_expired' || err.code === 'not_found')) return undefined
      throw err
    }
    return pos.streamId
  }

  async replayEventsAfter(lastEventId, { send }) {
    const pos = this._parse(lastEventId)
    if (!pos) throw new Error('unknown or foreign event id')
    const streamId = pos.streamId
    let seq = pos.seq
    for (;;) {
      // Pages of the store's default size; `next` is set while more follow.
      const page = await this.store.eventsAfter(this.sessionId, { streamId, seq })
      for (const event of page.items) {
        seq = event.seq
        if (!event.priming) await send(event.id, event.data)
      }
      if (page.next !== undefined && page.next !== null) continue
      const inFlight = this._pending.get(streamId)
      if (!inFlight || inFlight.size === 0) return streamId
      // Appends of this stream still running: let them land, then read again.
      await Promise.allSettled([...inFlight])
    }
  }

  _parse(eventId) {
    if (typeof eventId !== 'string') return null
    try {
      return parseEventId(eventId, this.sessionId)
    } catch {
      return null
    }
  }
}

module.exports = { SessionEventStore }
