// Compiled by `tsc --noEmit` (not run): the package's types fit the SDK's.
import { Store, InvalidInputError, SessionStoreError, type EventInfo } from '../../lib/index.js'
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'

export async function usage(): Promise<void> {
  const store = await Store.open('sqlite://sessions.db', { ttl: '30m', maxEventsPerSession: 1000 })
  const session = await store.createSession({ metadata: { user: 'ada' } })
  const version: number = await store.setState(session.id, 'k', { a: 1 })
  const entry = await store.updateState<number>(session.id, 'n', (n) => (n ?? 0) + 1)
  const n: number = entry.value
  const event: EventInfo = await store.appendEvent(session.id, '_GET_stream', { n, version })
  for await (const e of store.events(session.id, event.id)) console.log(e.seq, e.data)
  const sub = await store.subscribe(session.id, { streamId: '_GET_stream' })
  for await (const e of sub) if (e.priming) break
  const es: EventStore = store.eventStore(session.id)
  const transport = new StreamableHTTPServerTransport(store.transportOptions({ enableJsonResponse: false }))
  const restored: StreamableHTTPServerTransport | null = await store.restoreTransport(session.id)
  try {
    await store.getSession('bad id')
  } catch (err) {
    if (err instanceof InvalidInputError) console.log(err.code satisfies 'invalid_input')
    if (err instanceof SessionStoreError) console.log(err.code)
  }
  console.log(es, transport, restored)
}
