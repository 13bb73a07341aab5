// Shared by the tests: the backends to run on, chosen by the same
// environment variables as the Rust conformance suite.
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'

export const require = createRequire(import.meta.url)
export const mss = require('../lib/index.js')

const rand = () => `mss_t_${randomBytes(6).toString('hex')}`
const withParam = (url, param) => `${url}${url.includes('?') ? '&' : '?'}${param}`

/**
 * One entry per backend: how to open a fresh, namespaced store and clean up.
 * Adding a backend is one entry here.
 */
export const BACKENDS = {
  memory: () => ({ url: 'memory://', cleanup() {} }),
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'mss-node-'))
    return { url: `sqlite://${join(dir, 'test.db')}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
  },
  postgres: () => ({
    url: withParam(process.env.MSS_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test', `schema=${rand()}`),
    cleanup() {},
  }),
  redis: () => ({
    url: withParam(process.env.MSS_TEST_REDIS_URL || 'redis://127.0.0.1:6379', `key_prefix=${rand()}:`),
    cleanup() {},
  }),
  dynamodb: () => ({
    url: `dynamodb://${rand()}?endpoint=${encodeURIComponent(
      process.env.MSS_TEST_DYNAMODB_ENDPOINT || 'http://127.0.0.1:8000',
    )}&region=us-east-1&create_table=true`,
    cleanup() {},
  }),
}

export const BACKEND_NAMES = (process.env.MSS_TEST_BACKENDS || 'memory,sqlite')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)

for (const name of BACKEND_NAMES) {
  if (!BACKENDS[name]) throw new Error(`MSS_TEST_BACKENDS names an unknown backend ${JSON.stringify(name)}`)
}

/** Open a fresh store on `backend`; `t.skip`s when the addon lacks its cargo feature. */
export async function openFresh(t, backend, options) {
  const target = BACKENDS[backend]()
  let store
  try {
    store = await mss.Store.open(target.url, options)
  } catch (err) {
    target.cleanup()
    if (err instanceof mss.InvalidInputError && /cargo feature/.test(err.message)) {
      t.skip(`${backend}: not compiled into this addon (${err.message})`)
      return null
    }
    throw err
  }
  t.after(async () => {
    await store.close().catch(() => {})
    target.cleanup()
  })
  return store
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
