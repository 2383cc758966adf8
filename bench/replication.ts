// Replication throughput over real sockets on 127.0.0.1, through the public
// API, with N Hello-sized events (default 100k; BENCH_N or the last argument):
//
//   cold: A holds N events; an empty B connects; timed from connect() until
//         B's first catch-up is done (peer.synced) and B holds all of them.
//   live: A and B connected and synced, empty; A emits N (at most 2000 in
//         flight); timed from the command to emit until B's listener has
//         received all N.
//
// A runs in a process of its own (as a hub and its peers would), B in this one.
//
// each over TCP and over WebSocket, on classic-level (default) or
// memory-level. Bytes each way come from B's session stats (frame bytes)
// plus the transport's framing (TCP: 4-byte length; WebSocket: 2-10 byte
// header, +4 mask bytes client to server), against the nodes' own encoded
// size. Baselines from the same run, to judge the numbers on a noisy machine:
//
//   raw-tcp: the same number of frames of the node's size, length-prefixed,
//            over a bare socket pair (one write per frame, and 64 KiB writes).
//   store:   the same nodes added with Log.addMany in 64 KiB batches, no network:
//            the receiver's storage bound for cold catch-up.
//
// With no arguments every scenario runs in its own process (so each peak RSS
// is its own), one JSON line each. One scenario:
//   npx tsx bench/replication.ts <cold|live> <tcp|websocket> [classic|memory] [N]
//   npx tsx bench/replication.ts raw-tcp [N]
//   npx tsx bench/replication.ts store [classic|memory] [N]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import * as net from 'node:net'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { HyperEmitter, nodeSha256, type Db } from '../src/index.js'
import { Log } from '../src/core/log/log.js'
import type { SessionStats } from '../src/sync/session.js'
import type { LogEntry, NodeSignature } from '../src/core/types.js'
import { encodeFrame, FrameDecoder } from '../src/transport/tcp.js'
import { HELLO_SCHEMA, helloMessage, peakRssMb, printJson, signingOptions } from './common.js'

type Emitter = HyperEmitter
const IN_FLIGHT = 2000
/** Nodes frames are built up to 64 KiB (the session's maxBatchBytes default). */
const BATCH_BYTES = 64 * 1024

const dirs: string[] = []
function openDb(kind: string): Db {
  if (kind === 'memory') return new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-bench-'))
  dirs.push(dir)
  return new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' })
}

function logOf(e: Emitter): Log {
  return (e as unknown as { log: Log }).log
}

async function emitN(e: Emitter, n: number, from = 0): Promise<void> {
  for (let i = 0; i < n; i += IN_FLIGHT) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(n, i + IN_FLIGHT); j++) batch.push(e.emit('Hello', helloMessage(from + j)))
    await Promise.all(batch)
  }
}

async function avgNodeBytes(e: Emitter): Promise<number> {
  let total = 0
  let count = 0
  for await (const entry of logOf(e).read()) {
    // Only the Hello events: the EventPeer announce is one node of another size.
    if (entry.seq > 1 || logOf(e).length === 1) {
      total += entry.bytes.byteLength
      count++
    }
  }
  return total / count
}

function connect(e: Emitter, transport: string, port: number) {
  return transport === 'websocket' ? e.connect(`ws://127.0.0.1:${port}/`) : e.connect(port, '127.0.0.1')
}

/** Framing bytes the transport adds to `frames` frames averaging `avg` bytes. */
function framing(transport: string, frames: number, avg: number, masked: boolean): number {
  if (transport === 'tcp') return frames * 4
  const header = avg < 126 ? 2 : avg < 65536 ? 4 : 10
  return frames * (header + (masked ? 4 : 0))
}

function wireReport(transport: string, n: number, nodeBytes: number, stats: SessionStats) {
  const aToB = stats.bytesReceived + framing(transport, stats.framesReceived, stats.bytesReceived / Math.max(1, stats.framesReceived), false)
  const bToA = stats.bytesSent + framing(transport, stats.framesSent, stats.bytesSent / Math.max(1, stats.framesSent), true)
  return {
    avgNodeBytes: round(nodeBytes, 1),
    wireBytesPerEventAtoB: round(aToB / n, 2),
    wireBytesPerEventBtoA: round(bToA / n, 3),
    wireOverNodeAtoB: round(aToB / n / nodeBytes, 3),
    framesAtoB: stats.framesReceived,
    framesBtoA: stats.framesSent,
    nodesBtoA: stats.nodesSent,
  }
}

/** Line-delimited JSON to and from the hub process. */
class HubProcess {
  private readonly child: ChildProcess
  private readonly lines: Record<string, any>[] = []
  private waiting: (() => void) | undefined

  constructor(args: string[]) {
    // BENCH_PROFILE_DIR=dir: also profile the hub (node --cpu-prof), for the sending side's hot spots.
    const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : []
    this.child = spawn(process.execPath, [...profile, '--import', 'tsx', fileURLToPath(import.meta.url), 'hub', ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      if (!line.startsWith('{')) return
      this.lines.push(JSON.parse(line))
      this.waiting?.()
    })
  }

  /** The next message carrying `key`. */
  async next(key: string): Promise<Record<string, any>> {
    for (;;) {
      const i = this.lines.findIndex((l) => key in l)
      if (i >= 0) return this.lines.splice(i, 1)[0]
      if (this.child.exitCode !== null) throw new Error(`hub exited (${this.child.exitCode}) before sending ${key}`)
      await new Promise<void>((resolve) => {
        this.waiting = resolve
        setTimeout(resolve, 200)
      })
    }
  }

  send(command: string): void {
    this.child.stdin!.write(`${command}\n`)
  }

  /** Ask for the hub's peak RSS and CPU time since it was ready, and wait for it to exit. */
  async finish(): Promise<{ peakRssMb: number; cpuMs: number }> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.send('exit')
    const { peakRssMb, cpuMs } = await this.next('peakRssMb')
    this.child.stdin!.end()
    await exited
    return { peakRssMb, cpuMs }
  }
}

/**
 * With BENCH_PROFILE_DIR set, a CPU profile of this process from now until
 * the returned function is called (the measured window only, without start-up).
 */
async function profileWindow(name: string): Promise<() => Promise<void>> {
  const dir = process.env.BENCH_PROFILE_DIR
  if (!dir) return async () => {}
  const inspector = await import('node:inspector/promises')
  const { writeFileSync } = await import('node:fs')
  const session = new inspector.Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 200 })
  await session.post('Profiler.start')
  return async () => {
    const { profile } = await session.post('Profiler.stop')
    writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile))
    session.disconnect()
  }
}

/** The other process: A, holding N events (cold) or emitting them on command (live). */
async function hub(mode: string, dbKind: string, n: number): Promise<void> {
  const a = HyperEmitter(openDb(dbKind), HELLO_SCHEMA, signingOptions())
  const { port } = await a.listen(0, '127.0.0.1')
  let fillPerSecond: number | undefined
  if (mode === 'cold') {
    const start = performance.now()
    await emitN(a, n)
    fillPerSecond = Math.round(n / ((performance.now() - start) / 1000))
  }
  const send = (m: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(m)}\n`)
  send({ ready: true, port, avgNodeBytes: mode === 'cold' ? await avgNodeBytes(a) : undefined, fillPerSecond })
  const cpuAtReady = process.cpuUsage()
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'emit') {
      const stopProfile = await profileWindow(`live-${dbKind}-hub`)
      const start = performance.now()
      await emitN(a, n)
      await stopProfile()
      const emitPerSecond = Math.round(n / ((performance.now() - start) / 1000))
      send({ emitted: true, emitPerSecond, avgNodeBytes: await avgNodeBytes(a) })
    } else if (line === 'exit') {
      const cpu = process.cpuUsage(cpuAtReady)
      send({ peakRssMb: peakRssMb(), cpuMs: (cpu.user + cpu.system) / 1000 })
      break
    }
  }
  process.stdin.destroy()
  await a.close()
}

async function cold(transport: string, dbKind: string, n: number): Promise<void> {
  const a = new HubProcess(['cold', dbKind, String(n)])
  const ready = await a.next('ready')
  const b = HyperEmitter(openDb(dbKind), HELLO_SCHEMA, { discover: false, ...signingOptions() })
  await b.ready()
  const stopProfile = await profileWindow(`cold-${transport}-${dbKind}-receiver`)
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  const peer = await connect(b, transport, ready.port)
  const session = peer.session!
  await peer.synced
  const seconds = (performance.now() - start) / 1000
  await stopProfile()
  // Every Hello plus A's EventPeer announce.
  if (logOf(b).length !== n + 1) throw new Error(`B holds ${logOf(b).length} of ${n + 1}`)
  const cpu = process.cpuUsage(cpuStart)
  const hub = await a.finish()
  await b.close()
  printJson({
    bench: 'replication',
    scenario: 'cold',
    transport,
    db: dbKind,
    events: n,
    seconds: round(seconds, 3),
    eventsPerSecond: Math.round(n / seconds),
    sourceAppendsPerSecond: ready.fillPerSecond,
    ...wireReport(transport, n, ready.avgNodeBytes, session.stats),
    // CPU time per event on each side: steadier than wall time on a shared machine.
    receiverCpuUsPerEvent: round(((cpu.user + cpu.system) / n), 2),
    hubCpuUsPerEvent: round((hub.cpuMs * 1000) / n, 2),
    peakRssMb: peakRssMb(),
    hubPeakRssMb: hub.peakRssMb,
  })
}

async function live(transport: string, dbKind: string, n: number): Promise<void> {
  const a = new HubProcess(['live', dbKind, String(n)])
  const ready = await a.next('ready')
  const b = HyperEmitter(openDb(dbKind), HELLO_SCHEMA, { discover: false, ...signingOptions() })
  const peer = await connect(b, transport, ready.port)
  await peer.synced
  const session = peer.session!
  const before = { ...session.stats }
  const cpuStart = process.cpuUsage()
  let received = 0
  let all!: () => void
  const done = new Promise<void>((resolve) => (all = resolve))
  b.on('Hello', () => {
    if (++received === n) all()
  })
  const stopProfile = await profileWindow(`live-${transport}-${dbKind}-receiver`)
  const start = performance.now()
  a.send('emit')
  await done
  const seconds = (performance.now() - start) / 1000
  await stopProfile()
  const { emitPerSecond, avgNodeBytes: nodeBytes } = await a.next('emitted')
  const stats = session.stats
  const delta: SessionStats = {
    nodesSent: stats.nodesSent - before.nodesSent,
    nodesReceived: stats.nodesReceived - before.nodesReceived,
    framesSent: stats.framesSent - before.framesSent,
    framesReceived: stats.framesReceived - before.framesReceived,
    bytesSent: stats.bytesSent - before.bytesSent,
    bytesReceived: stats.bytesReceived - before.bytesReceived,
  }
  const cpu = process.cpuUsage(cpuStart)
  const hub = await a.finish()
  await b.close()
  printJson({
    bench: 'replication',
    scenario: 'live',
    transport,
    db: dbKind,
    events: n,
    seconds: round(seconds, 3),
    eventsPerSecond: Math.round(n / seconds),
    hubEmitPerSecond: emitPerSecond,
    ...wireReport(transport, n, nodeBytes, delta),
    // CPU time per event on each side: steadier than wall time on a shared machine.
    receiverCpuUsPerEvent: round(((cpu.user + cpu.system) / n), 2),
    hubCpuUsPerEvent: round((hub.cpuMs * 1000) / n, 2),
    peakRssMb: peakRssMb(),
    hubPeakRssMb: hub.peakRssMb,
  })
}

/** Node size of one Hello event, as the log stores and sends it. */
async function helloNodeSize(): Promise<number> {
  const e = HyperEmitter(null, HELLO_SCHEMA, signingOptions())
  await emitN(e, 3, 50_000)
  const size = Math.round(await avgNodeBytes(e))
  await e.close()
  return size
}

async function rawTcp(n: number): Promise<void> {
  const size = await helloNodeSize()
  const frame = new Uint8Array(size).fill(7)
  const result: Record<string, unknown> = { bench: 'replication', scenario: 'baseline-raw-tcp', events: n, frameBytes: size }
  for (const mode of ['write-per-frame', 'batched-64k'] as const) {
    const server = net.createServer()
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
    await new Promise((resolve) => client.once('connect', resolve))
    const receiver = await accepted
    client.setNoDelay(true)
    let got = 0
    const decoder = new FrameDecoder()
    const done = new Promise<void>((resolve) =>
      receiver.on('data', (chunk) =>
        decoder.decode(chunk, () => {
          if (++got === n) resolve()
        }),
      ),
    )
    const start = performance.now()
    if (mode === 'write-per-frame') {
      for (let i = 0; i < n; i++) {
        if (!client.write(encodeFrame(frame))) await new Promise((resolve) => client.once('drain', resolve))
      }
    } else {
      const per = Math.floor(BATCH_BYTES / (size + 4))
      for (let i = 0; i < n; i += per) {
        const count = Math.min(per, n - i)
        const buf = Buffer.allocUnsafe(count * (size + 4))
        for (let j = 0; j < count; j++) buf.set(encodeFrame(frame), j * (size + 4))
        if (!client.write(buf)) await new Promise((resolve) => client.once('drain', resolve))
      }
    }
    await done
    const seconds = (performance.now() - start) / 1000
    result[mode] = { seconds: round(seconds, 3), framesPerSecond: Math.round(n / seconds) }
    client.destroy()
    receiver.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
  printJson({ ...result, peakRssMb: peakRssMb() })
}

async function store(dbKind: string, n: number): Promise<void> {
  const source = HyperEmitter(null, HELLO_SCHEMA, signingOptions())
  await emitN(source, n)
  const entries: LogEntry[] = []
  for await (const entry of logOf(source).read()) entries.push(entry)
  // As many nodes as one Nodes frame of the session carries, each batch with
  // the writer's signature a session would send beside it (signed before the
  // clock starts: this measures the receiver's verify and store).
  const per = Math.floor(BATCH_BYTES / (entries[entries.length - 1].bytes.byteLength + 2))
  const batches: { nodes: Uint8Array[]; signatures: NodeSignature[] }[] = []
  for (let i = 0; i < entries.length; i += per) {
    const slice = entries.slice(i, i + per)
    batches.push({ nodes: slice.map((e) => e.bytes), signatures: await logOf(source).signaturesFor(slice) })
  }
  await source.close()
  const db = openDb(dbKind)
  // The same hash the Node emitter uses (node:crypto), so only the session and network differ.
  const log = new Log(db, { hash: nodeSha256, ...signingOptions() })
  await log.open()
  const start = performance.now()
  for (const { nodes, signatures } of batches) await log.addMany(nodes, undefined, { signatures })
  const seconds = (performance.now() - start) / 1000
  if (log.length !== n) throw new Error(`stored ${log.length} of ${n}`)
  printJson({
    bench: 'replication',
    scenario: 'baseline-store',
    db: dbKind,
    events: n,
    nodesPerBatch: per,
    seconds: round(seconds, 3),
    eventsPerSecond: Math.round(n / seconds),
    peakRssMb: peakRssMb(),
  })
  await log.close()
  await db.close()
}

function round(x: number, digits: number): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const envN = process.env.BENCH_N
  const last = args.length > 0 && /^\d+$/.test(args[args.length - 1]) ? Number(args.pop()) : undefined
  const n = last ?? Number(envN ?? 100_000)
  const [scenario, ...rest] = args
  if (scenario === undefined) {
    // Everything, each in a fresh process; baselines first and last, so drift in load shows.
    const self = fileURLToPath(import.meta.url)
    const runs = [
      ['raw-tcp'],
      ['store', 'classic'],
      ['cold', 'tcp', 'classic'],
      ['cold', 'websocket', 'classic'],
      ['live', 'tcp', 'classic'],
      ['live', 'websocket', 'classic'],
      ['cold', 'tcp', 'memory'],
      ['cold', 'websocket', 'memory'],
      ['live', 'tcp', 'memory'],
      ['live', 'websocket', 'memory'],
      ['store', 'memory'],
      ['raw-tcp'],
    ]
    for (const run of runs) {
      const load = loadavg()[0]
      const out = execFileSync(process.execPath, ['--import', 'tsx', self, ...run, String(n)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 10 * 60_000,
      })
      for (const line of out.split('\n')) {
        if (!line.startsWith('{')) continue
        printJson({ ...JSON.parse(line), loadAverage1m: round(load, 2) })
      }
    }
    return
  }
  if (scenario === 'cold') await cold(rest[0] ?? 'tcp', rest[1] ?? 'classic', n)
  else if (scenario === 'live') await live(rest[0] ?? 'tcp', rest[1] ?? 'classic', n)
  else if (scenario === 'hub') await hub(rest[0], rest[1], n)
  else if (scenario === 'raw-tcp') await rawTcp(n)
  else if (scenario === 'store') await store(rest[0] ?? 'classic', n)
  else throw new Error(`unknown scenario ${scenario}`)
}

main()
  .then(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
  .catch((err) => {
    console.error(err)
    process.exit(1)
  })
