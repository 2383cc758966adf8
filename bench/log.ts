// Log throughput on classic-level (temp dir) and memory-level; prints JSON.
// Run: npx tsx bench/log.ts [N]
import crypto from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AbstractLevel } from 'abstract-level'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { Log } from '../src/core/log/log.js'
import type { HashFn } from '../src/core/types.js'

const N = Number(process.argv[2] ?? 100_000)
const AWAITED = 20_000
const nodeHash: HashFn = (d) => crypto.hash('sha256', d, 'buffer')
// ~60-byte Event envelopes, so nodes are ~97 bytes like the guide's model.
const values = Array.from({ length: 1024 }, () => crypto.randomBytes(60))

const dirs: string[] = []
const backends: Record<string, () => AbstractLevel<any, any, any>> = {
  'classic-level': () => {
    const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-bench-'))
    dirs.push(dir)
    return new ClassicLevel(dir)
  },
  'memory-level': () => new MemoryLevel(),
}

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000)

async function run(name: string, hash: HashFn | undefined, hashName: string) {
  const make = backends[name]
  const out: Record<string, unknown> = { backend: name, hash: hashName }

  const db = make()
  const log = new Log(db, { hash })
  await log.open()
  let t0 = performance.now()
  const pending = []
  for (let i = 0; i < N; i++) pending.push(log.append(values[i & 1023]))
  await Promise.all(pending)
  out.appendsFiredTogetherPerSec = rate(N, performance.now() - t0)

  // The same, but at most 2000 in flight (what the guide recommends callers do).
  t0 = performance.now()
  await new Promise<void>((resolve, reject) => {
    let issued = 0
    let settled = 0
    const more = () => {
      while (issued - settled < 2000 && issued < N) {
        issued++
        log.append(values[issued & 1023]).then(() => {
          if (++settled === N) resolve()
          else if (issued - settled < 1000) more()
        }, reject)
      }
    }
    more()
  })
  out.appends2000InFlightPerSec = rate(N, performance.now() - t0)

  t0 = performance.now()
  for (let i = 0; i < AWAITED; i++) await log.append(values[i & 1023])
  out.appendsAwaitedPerSec = rate(AWAITED, performance.now() - t0)

  t0 = performance.now()
  let n = 0
  for await (const e of log.read()) n += e.seq > 0 ? 1 : 0
  out.readPerSec = rate(n, performance.now() - t0)

  // Catch-up: everything into an empty log, 1000 nodes per addMany, as sync would.
  const db2 = make()
  const other = new Log(db2, { hash })
  await other.open()
  t0 = performance.now()
  let chunk: Uint8Array[] = []
  const adds = []
  let sent = 0
  for await (const page of log.readMissingPages(other.clock())) {
    for (const e of page) {
      chunk.push(e.bytes)
      sent++
      if (chunk.length === 1000) {
        adds.push(other.addMany(chunk))
        chunk = []
        // Bound what is in flight, like a sync session would.
        if (adds.length >= 4) await adds.shift()
      }
    }
  }
  adds.push(other.addMany(chunk))
  await Promise.all(adds)
  out.catchUpReadMissingPlusAddManyPerSec = rate(sent, performance.now() - t0)
  out.caughtUp = other.length === log.length

  // The writer-index path: a peer that lacks the last 10% of each writer.
  await other.append(values[0])
  const remote = new Map([...other.clock()].map(([w, s]) => [w, Math.floor(s * 0.9)]))
  t0 = performance.now()
  n = 0
  for await (const page of other.readMissingPages(remote)) for (const e of page) n += e.seq > 0 ? 1 : 0
  out.readMissingIndexPathPerSec = rate(n, performance.now() - t0)

  const mem = process.memoryUsage()
  out.heapUsedMB = Math.round(mem.heapUsed / 1e6)
  await log.close()
  await other.close()
  await db.close()
  await db2.close()
  return out
}

const results = []
for (const b of Object.keys(backends)) {
  results.push(await run(b, nodeHash, 'node:crypto hash'))
  results.push(await run(b, undefined, 'noble (default)'))
}
for (const d of dirs) rmSync(d, { recursive: true, force: true })
console.log(JSON.stringify({ node: process.version, n: N, awaited: AWAITED, results }, null, 2))
