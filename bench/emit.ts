// Local emit throughput: events per second from the first emit until a local
// listener has received all N, on one db, awaited one by one or fired
// together. One scenario per process so peak RSS is its own.
// Run: npx tsx bench/emit.ts <memory|classic> <awaited|together> [N]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { HyperEmitter } from '../src/index.js'
import { HELLO_SCHEMA, helloMessage, peakRssMb, printJson } from './common.js'

const [dbKind = 'memory', mode = 'together', nArg] = process.argv.slice(2)
const N = Number(nArg ?? 100_000)

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-bench-'))
  const db =
    dbKind === 'classic'
      ? new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' })
      : new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
  const emitter = HyperEmitter(db, HELLO_SCHEMA)
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
    const pending: Promise<void>[] = new Array(N)
    for (let i = 0; i < N; i++) pending[i] = emitter.emit('Hello', helloMessage(i))
    await Promise.all(pending)
  }
  await all
  const seconds = (performance.now() - start) / 1000

  await emitter.close()
  await db.close()
  rmSync(dir, { recursive: true, force: true })
  printJson({
    bench: 'emit',
    db: dbKind,
    mode,
    events: N,
    seconds: round(seconds),
    eventsPerSecond: Math.round(N / seconds),
    peakRssMb: peakRssMb(),
  })
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
