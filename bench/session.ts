// Cold catch-up of N Hello-sized events over the in-memory channel pair into
// memory-level, through two SyncSessions; prints JSON.
// Run: npx tsx bench/session.ts [N=100000] [reps=3]
//
// Baseline: the same nodes stored by addMany in frame-sized batches with no
// session in between, so the session's own cost is the difference.
import { MemoryLevel } from 'memory-level'
import { Log } from '../src/core/log/log.js'
import { encodeEnvelope } from '../src/core/codec/envelope.js'
import type { LogEntry, SyncableLog } from '../src/core/types.js'
import { createMemoryPair } from '../src/transport/memory.js'
import { SyncSession } from '../src/sync/session.js'

const N = Number(process.argv[2] ?? 100_000)
const REPS = Number(process.argv[3] ?? 3)

/** The seed README's Hello { from: 'Matteo', message: 'hello world' }, proto-encoded by hand. */
function helloPayload(i: number): Uint8Array {
  const enc = new TextEncoder()
  const from = enc.encode('Matteo')
  const message = enc.encode(`hello world ${i}`)
  return Uint8Array.from([0x0a, from.length, ...from, 0x12, message.length, ...message])
}

async function openLog(): Promise<Log> {
  const log = new Log(new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' }))
  await log.open()
  return log
}

async function buildSource(): Promise<{ log: Log; entries: LogEntry[] }> {
  const log = await openLog()
  // Appends in flight are capped: the guide measured ~2000 as fast and lean.
  for (let i = 0; i < N; i += 2000) {
    const batch = []
    for (let j = i; j < Math.min(N, i + 2000); j++) batch.push(log.append(encodeEnvelope('Hello', helloPayload(j))))
    await Promise.all(batch)
  }
  const entries: LogEntry[] = []
  for await (const page of log.readMissingPages(new Map())) entries.push(...page)
  return { log, entries }
}

async function catchUp(source: Log): Promise<Record<string, number>> {
  const target = await openLog()
  const [ca, cb] = createMemoryPair()
  const a = new SyncSession(source, ca, { live: false, keepAliveInterval: 0 })
  const b = new SyncSession(target, cb, { live: false, keepAliveInterval: 0 })
  const closed = Promise.all([
    new Promise<void>((resolve, reject) => a.once('close', (err?: Error) => (err ? reject(err) : resolve()))),
    new Promise<void>((resolve, reject) => b.once('close', (err?: Error) => (err ? reject(err) : resolve()))),
  ])
  const stop = heapSampler()
  const t0 = performance.now()
  a.start()
  b.start()
  await b.synced
  const ms = performance.now() - t0
  await closed
  const peakHeapGrowthMB = stop()
  if (target.length !== N) throw new Error(`target holds ${target.length} of ${N}`)
  return {
    ms: Math.round(ms),
    eventsPerSec: Math.round((N / ms) * 1000),
    framesAtoB: a.stats.framesSent,
    bytesAtoB: a.stats.bytesSent,
    framesBtoA: b.stats.framesSent,
    bytesBtoA: b.stats.bytesSent,
    peakHeapGrowthMB,
  }
}

function heapSampler(): () => number {
  const before = process.memoryUsage().heapUsed
  let peak = before
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed)
  }, 20)
  return () => {
    clearInterval(timer)
    return +((peak - before) / 2 ** 20).toFixed(1)
  }
}

async function baseline(entries: LogEntry[], perBatch: number): Promise<Record<string, number>> {
  const target = await openLog()
  const stop = heapSampler()
  const t0 = performance.now()
  for (let i = 0; i < entries.length; i += perBatch) {
    await target.addMany(entries.slice(i, i + perBatch).map((e) => e.bytes))
  }
  const ms = performance.now() - t0
  return { ms: Math.round(ms), eventsPerSec: Math.round((entries.length / ms) * 1000), peakHeapGrowthMB: stop() }
}

/** The session and channel alone: a receiving "log" that accepts every node without storing it. */
async function sessionOnly(source: Log): Promise<Record<string, number>> {
  let stored = 0
  // A real log only for its identity: the handshake proves a key.
  const keys = await openLog()
  const sink: SyncableLog = {
    writer: keys.writer,
    writerKey: keys.writerKey,
    sign: (message) => keys.sign(message),
    verifySignature: (publicKey, message, signature) => keys.verifySignature(publicKey, message, signature),
    signaturesFor: async () => [],
    length: 0,
    clock: () => new Map(),
    readMissingPages: async function* () {},
    addMany: async (nodes) => {
      stored += nodes.length
      return []
    },
    onChange: () => () => {},
  }
  const [ca, cb] = createMemoryPair()
  const a = new SyncSession(source, ca, { live: false, keepAliveInterval: 0 })
  const b = new SyncSession(sink, cb, { live: false, keepAliveInterval: 0 })
  const stop = heapSampler()
  const t0 = performance.now()
  a.start()
  b.start()
  await b.synced
  const ms = performance.now() - t0
  if (stored !== N) throw new Error(`sink got ${stored} of ${N}`)
  a.close()
  return { ms: Math.round(ms), eventsPerSec: Math.round((N / ms) * 1000), peakHeapGrowthMB: stop() }
}

const tBuild = performance.now()
const { log: source, entries } = await buildSource()
const buildMs = performance.now() - tBuild
const nodeBytes = entries.reduce((s, e) => s + e.bytes.byteLength, 0)
const valueBytes = entries.reduce((s, e) => s + e.value.byteLength, 0)

const runs: Record<string, number>[] = []
for (let r = 0; r < REPS; r++) runs.push(await catchUp(source))
const perFrame = Math.round(runs[0].framesAtoB > 3 ? N / (runs[0].framesAtoB - 3) : N)
const base: Record<string, number>[] = []
for (let r = 0; r < REPS; r++) base.push(await baseline(entries, perFrame))

const sink: Record<string, number>[] = []
for (let r = 0; r < REPS; r++) sink.push(await sessionOnly(source))

const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]
const best = runs.find((r) => r.eventsPerSec === median(runs.map((x) => x.eventsPerSec)))!

console.log(
  JSON.stringify(
    {
      node: process.version,
      events: N,
      sourceAppendsPerSec: Math.round((N / buildMs) * 1000),
      avgNodeBytes: +(nodeBytes / N).toFixed(1),
      avgValueBytes: +(valueBytes / N).toFixed(1),
      catchUp: {
        medianEventsPerSec: best.eventsPerSec,
        runs,
        wireBytesPerEvent: +((best.bytesAtoB + best.bytesBtoA) / N).toFixed(2),
        wireOverNodeBytes: +((best.bytesAtoB + best.bytesBtoA) / nodeBytes).toFixed(4),
        nodesPerFrame: perFrame,
      },
      sessionOnlyNoStore: { medianEventsPerSec: median(sink.map((b) => b.eventsPerSec)), runs: sink },
      storeOnlyBaseline: { batchNodes: perFrame, medianEventsPerSec: median(base.map((b) => b.eventsPerSec)), runs: base },
    },
    null,
    2,
  ),
)
