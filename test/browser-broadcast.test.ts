// The BroadcastChannel frame channel (src/transport/broadcast.ts), run in
// Node, which has BroadcastChannel too (Web Locks it has not: the life-lock
// watch is exercised by the Playwright tab tests).
import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { Log } from '../src/core/log/log.js'
import { SyncSession } from '../src/sync/session.js'
import { connectBroadcast, listenBroadcast } from '../src/transport/broadcast.js'
import type { FrameChannel } from '../src/transport/channel.js'
import { until } from './session-helpers.js'

const cleanups: Array<() => void | Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

let counter = 0
function rendezvous(): string {
  return `test-${process.pid}-${Date.now()}-${counter++}`
}

function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (e) => {
        clearTimeout(timer)
        reject(e)
      },
    )
  })
}

/** A connected pair: `client` dialed `host`. */
async function pair(options: { client?: object; host?: object } = {}): Promise<{ client: FrameChannel; host: FrameChannel }> {
  const name = rendezvous()
  let accepted!: (c: FrameChannel) => void
  const hostChannel = new Promise<FrameChannel>((resolve) => (accepted = resolve))
  const stop = listenBroadcast(name, (c) => accepted(c), options.host)
  cleanups.push(stop)
  const client = await connectBroadcast(name, { timeout: 2000, ...options.client })
  const host = await within(hostChannel, 'the host side')
  cleanups.push(() => {
    client.close()
    host.close()
  })
  return { client, host }
}

function collect(channel: FrameChannel): Uint8Array[] {
  const frames: Uint8Array[] = []
  channel.on('frame', (f) => void frames.push(f))
  return frames
}


function closed(channel: FrameChannel): Promise<Error | undefined> {
  return new Promise((resolve) => channel.on('close', (err) => resolve(err)))
}

describe('BroadcastChannel frame channel', () => {
  it('carries frames both ways, in order and intact', async () => {
    const { client, host } = await pair()
    const atHost = collect(host)
    const atClient = collect(client)
    const sizes = [0, 1, 7, 1000, 65_536, 300_000]
    for (const size of sizes) client.send(new Uint8Array(size).map((_, i) => (i * 7 + size) & 255))
    for (let i = 0; i < 1000; i++) host.send(Uint8Array.of(i & 255, i >> 8))
    await until(() => atHost.length === sizes.length && atClient.length === 1000, 10_000, 'all frames')
    expect(atHost.map((f) => f.byteLength)).toEqual(sizes)
    for (const f of atHost) expect(f.every((b, i) => b === ((i * 7 + f.byteLength) & 255))).toBe(true)
    expect(atClient.map((f) => f[0] | (f[1] << 8))).toEqual(Array.from({ length: 1000 }, (_, i) => i))
    expect(client.kind).toBe('broadcast')
  })

  it('sends exactly the bytes of a view, and a buffer reused after send() does not change what arrives', async () => {
    const { client, host } = await pair()
    const atHost = collect(host)
    const big = new Uint8Array(64 * 1024).fill(9)
    client.send(big.subarray(10, 14))
    const reused = Uint8Array.of(1, 2, 3)
    client.send(reused)
    reused.fill(0)
    await until(() => atHost.length === 2, 10_000, 'two frames')
    expect(atHost[0].buffer.byteLength).toBe(4)
    expect([...atHost[0]]).toEqual([9, 9, 9, 9])
    expect([...atHost[1]]).toEqual([1, 2, 3])
  })

  it('keeps two clients of one host apart', async () => {
    const name = rendezvous()
    const accepted: FrameChannel[] = []
    cleanups.push(listenBroadcast(name, (c) => void accepted.push(c)))
    const one = await connectBroadcast(name)
    const two = await connectBroadcast(name)
    await until(() => accepted.length === 2, 10_000, 'two host channels')
    cleanups.push(() => [one, two, ...accepted].forEach((c) => c.close()))
    const got = accepted.map(collect)
    one.send(Uint8Array.of(1))
    two.send(Uint8Array.of(2))
    await until(() => got[0].length + got[1].length === 2, 10_000, 'both frames')
    expect(got.map((frames) => frames.map((f) => f[0]))).toEqual([[1], [2]])
  })

  it('rejects CONNECTION_FAILED when nobody listens', async () => {
    const started = Date.now()
    const err = await connectBroadcast(rendezvous(), { timeout: 200 }).catch((e) => e)
    expect(isHyperEmitterError(err, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('holds frames while paused or before a listener exists, and delivers them in order on resume', async () => {
    const { client, host } = await pair()
    for (let i = 0; i < 5; i++) client.send(Uint8Array.of(i))
    await new Promise((r) => setTimeout(r, 50))
    const got = collect(host)
    await until(() => got.length === 5, 10_000, 'frames held for the listener')
    host.pause()
    for (let i = 5; i < 10; i++) client.send(Uint8Array.of(i))
    // Frames sent before a pause that are already delivered stay delivered; none arrive while paused.
    await new Promise((r) => setTimeout(r, 50))
    expect(got.length).toBe(5)
    host.resume()
    await until(() => got.length === 10, 10_000, 'frames after resume')
    expect(got.map((f) => f[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  })

  it('closes with LIMIT_EXCEEDED when a paused receiver would hold more than maxQueuedBytes', async () => {
    const { client, host } = await pair({ host: { maxQueuedBytes: 10_000 } })
    collect(host)
    host.pause()
    const hostClosed = closed(host)
    const clientClosed = closed(client)
    for (let i = 0; i < 20; i++) client.send(new Uint8Array(1000))
    const err = await within(hostClosed, 'host close')
    expect(isHyperEmitterError(err, ErrorCodes.LIMIT_EXCEEDED)).toBe(true)
    // The other side learns why.
    expect(isHyperEmitterError(await within(clientClosed, 'client close'), ErrorCodes.LIMIT_EXCEEDED)).toBe(true)
  })

  it('refuses oversize frames: FRAME_TOO_LARGE on send, and on arrival from a peer with a bigger limit', async () => {
    const { client, host } = await pair({ client: { maxFrameSize: 100_000 }, host: { maxFrameSize: 1000 } })
    collect(host)
    expect(() => host.send(new Uint8Array(1001))).toThrow(expect.objectContaining({ code: ErrorCodes.FRAME_TOO_LARGE }))
    const hostClosed = closed(host)
    client.send(new Uint8Array(5000))
    expect(isHyperEmitterError(await within(hostClosed, 'host close'), ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
  })

  it('a clean close reaches the other side once, after the frames sent before it', async () => {
    const { client, host } = await pair()
    const got = collect(host)
    const hostCloses: Array<Error | undefined> = []
    host.on('close', (err) => void hostCloses.push(err))
    for (let i = 0; i < 3; i++) client.send(Uint8Array.of(i))
    client.close()
    client.close()
    await until(() => hostCloses.length === 1, 10_000, 'host close')
    expect(hostCloses).toEqual([undefined])
    expect(got.map((f) => f[0])).toEqual([0, 1, 2])
    expect(() => client.send(Uint8Array.of(1))).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
    expect(() => host.send(Uint8Array.of(1))).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
  })

  it("the other side's close waits behind frames held before any listener existed, and fires once they are out, paused or not", async () => {
    const { client, host } = await pair()
    const events: string[] = []
    host.on('close', (err) => void events.push(`close ${err?.message ?? 'clean'}`))
    client.send(Uint8Array.of(1))
    client.send(Uint8Array.of(2))
    client.close()
    await new Promise((r) => setTimeout(r, 50))
    expect(events).toEqual([])
    expect(host.closed).toBe(false)
    host.on('frame', (f) => {
      events.push(`frame ${f[0]}`)
      if (f[0] === 2) host.pause()
    })
    await until(() => events.length === 3, 10_000, 'both frames and the close')
    expect(events).toEqual(['frame 1', 'frame 2', 'close clean'])
  })

  it('a SyncSession replicates two logs over it, catch-up and live, both ways', async () => {
    const { client, host } = await pair()
    const a = new Log(new MemoryLevel())
    const b = new Log(new MemoryLevel())
    await a.open()
    await b.open()
    for (let i = 0; i < 500; i++) void a.append(Uint8Array.of(1, i & 255))
    for (let i = 0; i < 300; i++) void b.append(Uint8Array.of(2, i & 255))
    const sa = new SyncSession(a, client)
    const sb = new SyncSession(b, host)
    sa.start()
    sb.start()
    await within(Promise.all([sa.synced, sb.synced]), 'first catch-up')
    expect(a.length).toBe(800)
    expect(b.length).toBe(800)
    await a.append(Uint8Array.of(3))
    await b.append(Uint8Array.of(4))
    await until(() => a.length === 802 && b.length === 802, 10_000, 'live nodes')
    expect(a.clock()).toEqual(b.clock())
    sa.close()
    await a.close()
    await b.close()
  })
})
