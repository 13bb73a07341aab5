// End to end with the real SDK: examples/node/server.mjs (node:http +
// StreamableHTTPServerTransport on a SQLite store) in a child process, a real
// SDK client whose stream is cut mid-way, a server restart, and a resume with
// the last event id.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { mss, require, sleep } from './helpers.mjs'

const { Client } = require('@modelcontextprotocol/sdk/client/index.js')
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js')
const { CallToolResultSchema, LoggingMessageNotificationSchema } = require('@modelcontextprotocol/sdk/types.js')

const SERVER = fileURLToPath(new URL('../../../examples/node/server.mjs', import.meta.url))

/** Start the example server; resolves with its port once it listens. */
async function startServer(t, storeUrl) {
  const child = spawn(process.execPath, [SERVER], {
    env: { ...process.env, STORE_URL: storeUrl, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.after(() => child.exitCode === null && child.kill('SIGKILL'))
  let out = ''
  for await (const chunk of child.stdout) {
    out += chunk
    const m = /listening on (\d+)/.exec(out)
    if (m) return { child, port: Number(m[1]) }
  }
  throw new Error(`server exited before listening: ${out}`)
}

async function stopServer(server) {
  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  assert.equal(code, 0, 'the server shuts down cleanly')
}

/** A TCP relay between client and server, so the test can cut connections. */
async function startRelay(t) {
  const relay = { target: 0, sockets: new Set() }
  const server = createServer((down) => {
    const up = connect(relay.target, '127.0.0.1')
    for (const s of [down, up]) {
      relay.sockets.add(s)
      s.on('close', () => relay.sockets.delete(s))
      s.on('error', () => {})
    }
    down.pipe(up)
    up.pipe(down)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  relay.port = server.address().port
  relay.cut = () => {
    for (const s of relay.sockets) s.destroy()
  }
  t.after(() => {
    relay.cut()
    server.close()
  })
  return relay
}

test('a client cut mid-stream resumes after a server restart and gets exactly the missed notifications', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-e2e-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const storeUrl = `sqlite://${join(dir, 'sessions.db')}`
  const relay = await startRelay(t)
  let server = await startServer(t, storeUrl)
  relay.target = server.port

  const client = new Client({ name: 'e2e', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${relay.port}/mcp`), {
    reconnectionOptions: {
      maxRetries: 0,
      initialReconnectionDelay: 10,
      maxReconnectionDelay: 10,
      reconnectionDelayGrowFactor: 1,
    },
  })
  transport.onerror = () => {}
  const ticks = []
  let cutNow
  const cutReached = new Promise((r) => (cutNow = r))
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    ticks.push(n.params.data.tick)
    if (ticks.length === 3) cutNow()
  })
  await client.connect(transport)
  const sessionId = transport.sessionId
  assert.ok(sessionId)

  const COUNT = 10
  const request = { method: 'tools/call', params: { name: 'countdown', arguments: { count: COUNT, intervalMs: 100 } } }
  let lastToken
  const abortFirst = new AbortController()
  const first = client
    .request(request, CallToolResultSchema, {
      onresumptiontoken: (tok) => (lastToken = tok),
      signal: abortFirst.signal,
      timeout: 60_000,
    })
    .catch((err) => err)

  // Cut the client's connections after the third notification; the server
  // keeps running the tool and storing its notifications and result.
  await cutReached
  relay.cut()
  const tokenAtCut = lastToken
  const seenAtCut = ticks.length
  assert.ok(tokenAtCut, 'the client holds a resumption token')

  // Wait (through our own handle on the same SQLite file) until the server
  // stored the tool's response, then restart the server.
  const observer = await mss.Store.open(storeUrl)
  t.after(() => observer.close())
  for (let i = 0; ; i++) {
    const page = await observer.replay(sessionId, tokenAtCut)
    if (page.items.some((e) => e.data && e.data.result)) break
    assert.ok(i < 1200, 'the server stores the tool result')
    await sleep(25)
  }
  await stopServer(server)
  assert.deepEqual(ticks.slice(0, seenAtCut), [1, 2, 3].slice(0, seenAtCut))
  assert.ok(ticks.length < COUNT, 'the cut happened mid-stream')

  server = await startServer(t, storeUrl)
  relay.target = server.port

  // Resume with the last event id the client saw.
  const result = await client.request(request, CallToolResultSchema, {
    resumptionToken: lastToken,
    onresumptiontoken: (tok) => (lastToken = tok),
    timeout: 30_000,
  })
  assert.deepEqual(result.content, [{ type: 'text', text: `counted to ${COUNT}` }])
  assert.deepEqual(
    ticks,
    Array.from({ length: COUNT }, (_, i) => i + 1),
    'every notification exactly once, in order',
  )
  relay.cut()
  abortFirst.abort() // its answer came on the resumed request
  await first
  await client.close().catch(() => {})
  await stopServer(server)
})

test('sessions stay apart over HTTP: a foreign Last-Event-ID is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mss-e2e-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const server = await startServer(t, `sqlite://${join(dir, 'sessions.db')}`)
  const url = new URL(`http://127.0.0.1:${server.port}/mcp`)

  async function session() {
    const client = new Client({ name: 'iso', version: '1.0.0' })
    const transport = new StreamableHTTPClientTransport(url)
    transport.onerror = () => {}
    const ticks = []
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => ticks.push(n.params.data))
    await client.connect(transport)
    let token
    await client.request(
      { method: 'tools/call', params: { name: 'countdown', arguments: { count: 3, intervalMs: 1 } } },
      CallToolResultSchema,
      { onresumptiontoken: (tok) => (token = tok) },
    )
    return { client, transport, ticks, token }
  }
  const a = await session()
  const b = await session()
  assert.deepEqual(a.ticks.map((d) => d.tick), [1, 2, 3])
  assert.deepEqual(b.ticks.map((d) => d.tick), [1, 2, 3])
  assert.notEqual(a.transport.sessionId, b.transport.sessionId)

  // B presents A's event id: 400, nothing of A's replayed.
  const res = await fetch(url, {
    headers: {
      accept: 'text/event-stream',
      'mcp-session-id': b.transport.sessionId,
      'mcp-protocol-version': b.transport.protocolVersion ?? '2025-11-25',
      'last-event-id': a.token,
    },
  })
  assert.equal(res.status, 400)
  await res.body?.cancel()

  // An unknown session id is 404, also for the restore path.
  const unknown = await fetch(url, {
    headers: { accept: 'text/event-stream', 'mcp-session-id': 'no-such-session', 'last-event-id': a.token },
  })
  assert.equal(unknown.status, 404)
  await unknown.body?.cancel()

  // Closing a session removes it from the store.
  const aId = a.transport.sessionId
  assert.ok(aId)
  await a.transport.terminateSession()
  const observer = await mss.Store.open(`sqlite://${join(dir, 'sessions.db')}`)
  t.after(() => observer.close())
  assert.equal(await observer.getSession(aId), null)
  assert.ok(await observer.getSession(b.transport.sessionId))
  await a.client.close()
  await b.client.close()
  await stopServer(server)
})
