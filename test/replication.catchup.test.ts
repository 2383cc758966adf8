/**
 * Catch-up costs what is missing, not what is held: with 10k events in
 * common and 10 missing, a reconnecting peer receives 10 nodes and a handful
 * of control frames over a real socket. Counted from both sessions' stats
 * (frames and bytes as handed to and taken from the channel).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { MemoryLevel } from 'memory-level'
import { HyperEmitter, type Db } from '../src/index.js'
import type { Log } from '../src/core/log/log.js'
import { within } from './session-helpers.js'
import { nextStatus } from './helpers/watch.js'

const SCHEMA = 'message Hello { required string from = 1; optional string message = 2; }'
const HOST = '127.0.0.1'
const COMMON = 10_000
const MISSING = 10

type Emitter = HyperEmitter
const open: Emitter[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

function make(db: Db | null = null): Emitter {
  const e = HyperEmitter(db, SCHEMA, { reconnectTimeout: 50 })
  e.status.on('error', () => {})
  open.push(e)
  return e
}

function logOf(e: Emitter): Log {
  return (e as unknown as { log: Log }).log
}


async function emitMany(e: Emitter, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i += 2000) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(n, i + 2000); j++) batch.push(e.emit('Hello', { from: tag, message: `hello world ${j}` }))
    await Promise.all(batch)
  }
}

describe.each([
  { name: 'tcp', connect: (e: Emitter, port: number) => e.connect(port, HOST) },
  { name: 'websocket', connect: (e: Emitter, port: number) => e.connect(`ws://${HOST}:${port}/`) },
])('catch-up over $name is O(missing)', ({ connect }) => {
  it(`${COMMON} events in common and ${MISSING} missing: ${MISSING} nodes and a few control frames cross the wire`, async () => {
    const a = make()
    const { port } = await a.listen(0, HOST)
    await emitMany(a, COMMON, 'a')

    // b holds everything a has, then goes away (its db stays: it was passed in).
    const dbB = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    const b = make(dbB)
    const first = await connect(b, port)
    await within(first.synced, 20_000, 'first catch-up')
    expect(logOf(b).length).toBe(logOf(a).length)
    const common = logOf(a).length
    await b.close()

    await emitMany(a, MISSING, 'missed')
    // Node sizes of the missing events, as stored (and sent).
    const missingBytes: number[] = []
    for await (const entry of logOf(a).read({ since: common })) missingBytes.push(entry.bytes.byteLength)
    expect(missingBytes).toHaveLength(MISSING)

    // b back on the same db: it reconnects to a by itself.
    const hubSide = nextStatus(a, 'peer:synced', (i) => i.direction === 'incoming')
    const b2 = make(dbB)
    const info = await nextStatus(b2, 'peer:synced', (i) => i.direction === 'outgoing')
    const served = await hubSide
    expect(logOf(b2).length).toBe(common + MISSING)

    // What b2 received: exactly the missing nodes...
    expect(info.nodesReceived).toBe(MISSING)
    expect(info.nodesSent).toBe(0)
    expect(served.nodesSent).toBe(MISSING)
    expect(served.nodesReceived).toBe(0)
    // ...in a handful of frames: Handshake, Clock, one Nodes frame, Synced (and perhaps a Ping/Ack).
    expect(info.framesReceived).toBeLessThanOrEqual(6)
    expect(served.framesSent).toBeLessThanOrEqual(6)
    // Bytes: the missing nodes plus a small constant (challenge, key proof,
    // clocks, one signature with its key, tags), nowhere near the 10k held.
    const nodeBytes = missingBytes.reduce((s, n) => s + n, 0)
    expect(info.bytesReceived).toBeGreaterThanOrEqual(nodeBytes)
    expect(info.bytesReceived).toBeLessThanOrEqual(nodeBytes + 600)
    // Going the other way: our handshake and key proof, our clock (2 writers), Synced and an Ack.
    expect(info.bytesSent).toBeLessThanOrEqual(450)

    // For scale, a peer holding nothing pulls the whole log.
    const cold = make()
    const coldInfo = nextStatus(cold, 'peer:synced')
    const progress: number[] = []
    cold.status.on('peer:progress', (p: any) => progress.push(p.received))
    await connect(cold, port)
    expect((await coldInfo).nodesReceived).toBe(common + MISSING)
    // 'peer:progress' tracked the catch-up as it was stored, frame by frame, up to the whole log.
    expect(progress.length).toBeGreaterThan(1)
    expect(progress[progress.length - 1]).toBe(common + MISSING)
    expect(progress.every((n, i) => i === 0 || n >= progress[i - 1])).toBe(true)
  })
})
