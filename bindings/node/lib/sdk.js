'use strict'

/**
 * Wiring for `StreamableHTTPServerTransport` of `@modelcontextprotocol/sdk`.
 *
 * `transportOptions(store)` gives the options of ONE transport (one session):
 * the session id is minted up front, so the event store can be scoped to it
 * before the SDK asks for it.
 *
 * `restoreTransport(store, sessionId)` rebuilds a transport for a session the
 * store knows (after a server restart the SDK alone answers 404 "Session not
 * found": it has no public way to reopen a known session).
 */

const native = require('../index.js')

function transportOptions(store, options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
  const sessionId = options.sessionId ?? native.newSessionId()
  if (typeof sessionId !== 'string') throw new TypeError('options.sessionId must be a string')
  const { onsessioninitialized, onsessionclosed, metadata, ttlMs, sessionId: _ignored, ...rest } = options
  return {
    ...rest,
    sessionIdGenerator: () => sessionId,
    eventStore: store.eventStore(sessionId),
    onsessioninitialized: async (id) => {
      await store.createSession({ id, metadata, ttlMs })
      if (onsessioninitialized) await onsessioninitialized(id)
    },
    onsessionclosed: async (id) => {
      await store.deleteSession(id)
      if (onsessionclosed) await onsessionclosed(id)
    },
  }
}

function loadTransportClass(options) {
  if (options.Transport) return options.Transport
  // The SDK is a peer dependency: load it from the application.
  return require('@modelcontextprotocol/sdk/server/streamableHttp.js').StreamableHTTPServerTransport
}

/**
 * A `StreamableHTTPServerTransport` for `sessionId` if the store holds that
 * session (live, not expired), already initialized; `null` otherwise. Connect
 * your `McpServer` to it as for a new one. `options` are the transport's own
 * options plus `Transport` (the class to build, default the SDK's).
 *
 * The SDK (1.x) has no public API to start a transport for a known session;
 * this sets its session id and initialized flag, and fails loudly if the
 * installed SDK no longer has them.
 */
async function restoreTransport(store, sessionId, options = {}) {
  if (typeof sessionId !== 'string') throw new TypeError('sessionId must be a string')
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
  let session
  try {
    session = await store.getSession(sessionId)
  } catch (err) {
    if (err && err.code === 'invalid_input') return null
    throw err
  }
  if (!session) return null
  const { Transport: _t, ...rest } = options
  const Transport = loadTransportClass(options)
  const transport = new Transport(transportOptions(store, { ...rest, sessionId }))
  const inner = transport._webStandardTransport ?? transport
  if (!('_initialized' in inner) || !('sessionIdGenerator' in inner)) {
    throw new Error(
      'mcp-session-store: this version of @modelcontextprotocol/sdk cannot restore sessions (transport internals changed)',
    )
  }
  inner.sessionId = sessionId
  inner._initialized = true
  return transport
}

module.exports = { transportOptions, restoreTransport }
