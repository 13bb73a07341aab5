'use strict'

/**
 * Wire event ids and session ids: format, parse, mint, and the cursor
 * argument every replay takes (a wire id or `{ streamId, seq }`).
 */

const native = require('../index.js')
const { callSync } = require('./errors.js')
const { describe, str, num, optNum } = require('./args.js')

/** Format the wire id of (`streamId`, `seq`) in `sessionId`. */
function formatEventId(sessionId, streamId, seq) {
  return callSync(() =>
    native.formatEventId(str(sessionId, 'sessionId'), str(streamId, 'streamId'), num(seq, 'seq')),
  )
}

/** Parse a wire id of `sessionId`: `{ streamId, seq }`; foreign or altered ids throw InvalidInputError. */
function parseEventId(wireId, sessionId) {
  return callSync(() => native.parseEventId(str(wireId, 'wireId'), str(sessionId, 'sessionId')))
}

/** A new session id as the store mints them (UUID v4). */
function newSessionId() {
  return native.newSessionId()
}

/** A cursor argument as `{ streamId, seq }`: a wire id (string) of `sessionId` or a position. */
function toCursor(sessionId, cursor) {
  if (typeof cursor === 'string') {
    return callSync(() => native.parseEventId(cursor, sessionId))
  }
  if (cursor && typeof cursor === 'object' && !Array.isArray(cursor)) {
    return { streamId: str(cursor.streamId, 'cursor.streamId'), seq: optNum(cursor.seq, 'cursor.seq') ?? 0 }
  }
  throw new TypeError(`cursor must be a wire event id (string) or { streamId, seq }, got ${describe(cursor)}`)
}

module.exports = { formatEventId, parseEventId, newSessionId, toCursor }
