// A resumable MCP server: node:http + the SDK's StreamableHTTPServerTransport,
// with sessions and SSE event logs in mcp-session-store. Clients that lose
// their stream resume with Last-Event-ID, also after this process restarts.
//
//   node examples/node/server.mjs            # sqlite://sessions.db on port 3000
//   STORE_URL=memory:// PORT=0 node examples/node/server.mjs
//
// It prints `listening on PORT` once it accepts connections. SIGTERM or
// SIGINT closes it cleanly.
//
// The package and the SDK are loaded from bindings/node (where
// `npm install` put them); in your own project, import them by name:
//   import { Store } from 'mcp-session-store'
//   import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { createServer } from 'node:http'
import { createRequire } from 'node:module'

const require = createRequire(new URL('../../bindings/node/package.json', import.meta.url))
const { Store } = require('./lib/index.js')
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js')
const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js')
const { isInitializeRequest } = require('@modelcontextprotocol/sdk/types.js')
const { z } = require('zod')

const store = await Store.open(process.env.STORE_URL ?? 'sqlite://sessions.db')

/** One MCP server per session, with a tool that reports progress over time. */
function buildServer() {
  const server = new McpServer({ name: 'resumable-example', version: '1.0.0' }, { capabilities: { logging: {} } })
  server.registerTool(
    'countdown',
    {
      description: 'Sends `count` log notifications, one every `intervalMs`, then returns',
      inputSchema: { count: z.number().int().min(1).max(1000), intervalMs: z.number().int().min(0).max(10_000) },
    },
    async ({ count, intervalMs }, extra) => {
      for (let i = 1; i <= count; i++) {
        await new Promise((r) => setTimeout(r, intervalMs))
        await extra.sendNotification({
          method: 'notifications/message',
          params: { level: 'info', data: { tick: i, of: count } },
        })
      }
      return { content: [{ type: 'text', text: `counted to ${count}` }] }
    },
  )
  return server
}

/** Live transports of this process, by session id. */
const transports = new Map()

function track(transport, sessionId) {
  transports.set(sessionId, transport)
  const previous = transport.onclose
  transport.onclose = () => {
    transports.delete(sessionId)
    previous?.()
  }
}

async function transportFor(req, body) {
  const sessionId = req.headers['mcp-session-id']
  if (typeof sessionId === 'string') {
    const live = transports.get(sessionId)
    if (live) return live
    // Not in this process: a session created before a restart (or by another
    // instance on the same database) is restored from the store.
    const restored = await store.restoreTransport(sessionId)
    if (!restored) return null
    track(restored, sessionId)
    await buildServer().connect(restored)
    return restored
  }
  if (req.method === 'POST' && isInitializeRequest(body)) {
    const transport = new StreamableHTTPServerTransport(
      store.transportOptions({
        onsessioninitialized: (id) => track(transport, id),
      }),
    )
    await buildServer().connect(transport)
    return transport
  }
  return null
}

async function readJson(req) {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8')
  return text ? JSON.parse(text) : undefined
}

function jsonError(res, status, message) {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }))
}

const http = createServer(async (req, res) => {
  try {
    if (new URL(req.url, 'http://x').pathname !== '/mcp') return jsonError(res, 404, 'Not found')
    const body = req.method === 'POST' ? await readJson(req) : undefined
    const transport = await transportFor(req, body)
    if (!transport) return jsonError(res, req.headers['mcp-session-id'] ? 404 : 400, 'Session not found')
    await transport.handleRequest(req, res, body)
  } catch (err) {
    console.error('request failed:', err)
    if (!res.headersSent) jsonError(res, 500, 'Internal error')
  }
})

http.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`listening on ${http.address().port}`)
})

async function shutdown() {
  http.close()
  http.closeAllConnections()
  for (const t of transports.values()) await t.close().catch(() => {})
  await store.close()
  process.exit(0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
