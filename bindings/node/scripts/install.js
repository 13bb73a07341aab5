// Builds the native addon when the package is installed from source
// (`npm install ./bindings/node`). Skipped when a built addon is already
// present, unless MSS_NODE_BUILD=1.
'use strict'
const { existsSync } = require('node:fs')
const { dirname, join } = require('node:path')
const { spawnSync } = require('node:child_process')

const root = join(__dirname, '..')
const addon = join(root, `mcp-session-store.${process.platform}-${process.arch}-gnu.node`)
if (existsSync(addon) && process.env.MSS_NODE_BUILD !== '1') process.exit(0)

let cli
try {
  // The package's `exports` hide dist/: find it from its package.json.
  const manifest = require.resolve('@napi-rs/cli/package.json', { paths: [root] })
  cli = join(dirname(manifest), require(manifest).bin.napi)
} catch {
  console.error('mcp-session-store: @napi-rs/cli is not installed; cannot build the addon')
  process.exit(1)
}
const args = [cli, 'build', '--platform', '--release', '--js', 'index.js', '--dts', 'index.d.ts']
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
