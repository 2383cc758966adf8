// Raw abstract-level put rates measured in the same run as the emitter
// numbers, so those can be judged on a shared, noisy machine.
// Run: npx tsx bench/baseline.ts <memory|classic> [N]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { printJson } from './common.js'

const [dbKind = 'memory', nArg] = process.argv.slice(2)
const N = Number(nArg ?? 100_000)
const VALUE = new Uint8Array(100).fill(1)

function key(i: number): Uint8Array {
  const k = new Uint8Array(8)
  new DataView(k.buffer).setUint32(4, i)
  return k
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-baseline-'))
  // Both backends, seen through the few methods used here.
  const db: Pick<MemoryLevel<Uint8Array, Uint8Array>, 'open' | 'put' | 'batch' | 'close'> =
    dbKind === 'classic'
      ? new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' })
      : new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })
  await db.open()
  const singles = Math.min(N, 20_000)
  let start = performance.now()
  for (let i = 0; i < singles; i++) await db.put(key(i), VALUE)
  const singlePerSecond = Math.round(singles / ((performance.now() - start) / 1000))
  start = performance.now()
  for (let i = 0; i < N; i += 1000) {
    const ops = []
    for (let j = i; j < Math.min(N, i + 1000); j++) ops.push({ type: 'put' as const, key: key(N + j), value: VALUE })
    await db.batch(ops)
  }
  const batchedPerSecond = Math.round(N / ((performance.now() - start) / 1000))
  await db.close()
  rmSync(dir, { recursive: true, force: true })
  printJson({ bench: 'baseline-db', db: dbKind, singlePutsPerSecond: singlePerSecond, batchedPutsPerSecond: batchedPerSecond, batchSize: 1000 })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
