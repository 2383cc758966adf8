// One small-workload scenario in this fresh process, through the seed's
// public API only (callbacks, as in 2015), so the very same code drives this
// library's build (dist/) and the 2015 original (bench/original/):
//
//   local: N emits fired together; until a listener has all N.
//   cold:  A holds N events and listens; an empty B is created and connects
//          over TCP; from B's creation until B's listener has all N.
//   live:  A and B connected over TCP; A fires N emits together; until B's
//          listener has all N.
//
// A runs in a process of its own (as a hub and its peers would, and as
// bench/replication.ts does), B in this one; each on an in-memory db
// (memory-level here, memdb there). Plain JavaScript, run by plain `node`: no TypeScript loader
// may slow one side's start. Prints one JSON line.
// Run: node bench/small-run.mjs <ours|original> <local|cold|live> <N>
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const [impl, scenario, nArg] = process.argv.slice(2)
const N = Number(nArg)
/** A lost event would leave a wait hanging: fail instead. */
const TIMEOUT_MS = 120_000
const SCHEMA = 'message Hello {\n  required string from = 1;\n  optional string message = 2;\n}\n'

/** The implementation's constructor and a fresh in-memory db for it. */
async function load() {
  if (impl === 'ours') {
    const { HyperEmitter } = await import('../dist/index.js')
    const { MemoryLevel } = await import('memory-level')
    return { HyperEmitter, db: () => new MemoryLevel() }
  }
  if (impl === 'original') {
    const require = createRequire(new URL('./original/package.json', import.meta.url))
    const memdb = require('memdb')
    return { HyperEmitter: require('hyperemitter'), db: () => memdb() }
  }
  throw new Error(`unknown implementation ${impl}: ours or original`)
}

/** Calls back once `count` calls of the returned function happened, or fails the run after TIMEOUT_MS. */
function countdown(count, what, done) {
  let left = count
  const timer = setTimeout(() => fail(new Error(`timed out waiting for ${what} (${left} of ${count} missing)`)), TIMEOUT_MS)
  return (err) => {
    if (err) fail(err)
    if (--left === 0) {
      clearTimeout(timer)
      done()
    }
  }
}

function fail(err) {
  console.error(err)
  process.exit(1)
}

function emitAll(emitter, cb) {
  const emitted = countdown(N, 'the emit callbacks', cb)
  for (let i = 0; i < N; i++) emitter.emit('Hello', { from: 'Matteo', message: `hello world ${i}` }, emitted)
}

/** Calls back once `emitter`'s listener has N Hello events. */
function receiveAll(emitter, what, cb) {
  const received = countdown(N, what, cb)
  emitter.on('Hello', () => received())
}

function listen(emitter, cb) {
  emitter.listen(0, '127.0.0.1', (err, address) => (err ? fail(err) : cb(address.port)))
}

/** The other side, A, in a process of its own (as a hub and its peers would run): resolves to its port. */
function startHub(role) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), impl, role, String(N)], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.once('exit', (code) => code !== 0 && fail(new Error(`the ${role} process exited with ${code}`)))
  const port = new Promise((resolve) => createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line).port)))
  return { child, port }
}

const scenarios = {
  local({ HyperEmitter, db }, done) {
    const a = HyperEmitter(db(), SCHEMA)
    const start = performance.now()
    receiveAll(a, 'the local listener', () => done(start, [a]))
    emitAll(a, () => {})
  },
  async cold({ HyperEmitter, db }, done) {
    const hub = startHub('hub-cold')
    const port = await hub.port
    const start = performance.now()
    const b = HyperEmitter(db(), SCHEMA)
    receiveAll(b, "the empty peer's listener", () => done(start, [b], hub.child))
    b.connect(port, '127.0.0.1', (err) => err && fail(err))
  },
  async live({ HyperEmitter, db }, done) {
    const hub = startHub('hub-live')
    const port = await hub.port
    const b = HyperEmitter(db(), SCHEMA)
    b.connect(port, '127.0.0.1', (err) => {
      if (err) fail(err)
      // Both sides settled after connecting (A's EventPeer announce has replicated).
      setTimeout(() => {
        const start = performance.now()
        receiveAll(b, "the peer's listener", () => done(start, [b], hub.child))
        hub.child.stdin.write('go\n')
      }, 200)
    })
  },
  // A: holds N events and listens (cold), or listens and emits N on "go" (live); exits when its stdin ends.
  'hub-cold'({ HyperEmitter, db }) {
    const a = HyperEmitter(db(), SCHEMA)
    emitAll(a, () => serve(a))
  },
  'hub-live'({ HyperEmitter, db }) {
    const a = HyperEmitter(db(), SCHEMA)
    serve(a, () => emitAll(a, () => {}))
  },
}

function serve(a, onGo) {
  listen(a, (port) => {
    process.stdout.write(`${JSON.stringify({ port })}\n`)
    const input = createInterface({ input: process.stdin })
    input.on('line', (line) => line === 'go' && onGo?.())
    input.once('close', () => a.close(() => process.exit(0)))
  })
}

const run = scenarios[scenario]
if (!run) fail(new Error(`unknown scenario ${scenario}: ${Object.keys(scenarios).join(', ')}`))
if (!Number.isSafeInteger(N) || N < 1) fail(new Error(`N must be a positive integer, got ${nArg}`))
const implementation = await load()
run(implementation, (start, emitters, hub) => {
  const seconds = (performance.now() - start) / 1000
  process.stdout.write(
    `${JSON.stringify({
      bench: 'small',
      impl,
      scenario,
      events: N,
      seconds: Math.round(seconds * 1000) / 1000,
      eventsPerSecond: Math.round(N / seconds),
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    })}\n`,
  )
  hub?.stdin.end()
  // The original keeps reconnect timers and sockets alive after close: end here.
  const closed = countdown(emitters.length, 'close', () => process.exit(0))
  for (const e of emitters) e.close(closed)
})
