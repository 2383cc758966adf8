// Local emit throughput: events per second from the first emit until a local
// listener has received all N, on one db, awaited one by one or fired
// together. One scenario per process so peak RSS is its own (taken after
// the first run; a second, warm run follows in the same process).
// Run: npx tsx bench/emit.ts <memory|classic> <awaited|together> [N]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { HyperEmitter } from '../src/index.js'
import { within } from '../test/helpers/within.js'
import { HELLO_SCHEMA, helloMessage, peakRssMb, printJson, signingOptions } from './common.js'

const [dbKind = 'memory', mode = 'together', nArg] = process.argv.slice(2)
const N = Number(nArg ?? 100_000)
/** A lost event would leave the listener waiting forever: fail instead. */
const TIMEOUT_MS = 120_000

async function main(): Promise<void> {
  const seconds = await timeRun()
  const rssAfterFirst = peakRssMb()
  // The same run again in this process, on a fresh db: V8 has optimised the
  // hot paths by now, as in any process that has been up a while. The
  // headline figure stays the first run's, from a fresh process.
  const warmSeconds = await timeRun()
  printJson({
    bench: 'emit',
    db: dbKind,
    mode,
    events: N,
    seconds: round(seconds),
    eventsPerSecond: Math.round(N / seconds),
    warmEventsPerSecond: Math.round(N / warmSeconds),
    peakRssMb: rssAfterFirst,
  })
}

/** One run on a fresh db: seconds from the first emit until the listener has all N events. */
async function timeRun(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-bench-'))
  const db =
    dbKind === 'classic'
      ? new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' })
      : new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
  const emitter = HyperEmitter(db, HELLO_SCHEMA, signingOptions())
  await emitter.ready()
  let received = 0
  let resolveAll!: () => void
  const all = new Promise<void>((resolve) => (resolveAll = resolve))
  emitter.on('Hello', () => {
    if (++received === N) resolveAll()
  })

  const start = performance.now()
  if (mode === 'awaited') {
    for (let i = 0; i < N; i++) await emitter.emit('Hello', helloMessage(i))
  } else {
    // N emits, none waited on but the last. Not Promise.all() over all N:
    // its N reactions measured ~100 ms in a fresh process, harness work
    // inside a window of ~0.6 s. A failed emit still fails the run: its
    // rejection goes unhandled, and Node exits with the error.
    for (let i = 0; i < N - 1; i++) void emitter.emit('Hello', helloMessage(i))
    await emitter.emit('Hello', helloMessage(N - 1))
  }
  await within(all, TIMEOUT_MS, () => `the listener's ${N} events (it got ${received} in ${TIMEOUT_MS / 1000} s)`)
  const seconds = (performance.now() - start) / 1000

  await emitter.close()
  await db.close()
  rmSync(dir, { recursive: true, force: true })
  return seconds
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
