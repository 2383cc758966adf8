import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import type { FrameChannel, FrameChannelOptions } from '../src/transport/channel.js'
import { createMemoryPair } from '../src/transport/memory.js'
import { connectTcp, createTcpChannel } from '../src/transport/tcp.js'
import { connectWebSocket } from '../src/transport/websocket.js'
import { HubServer } from '../src/node/hub-server.js'

/** A connected pair: `a` dialled `b`. cleanup() releases everything the factory made. */
interface Pair {
  a: FrameChannel
  b: FrameChannel
  cleanup: () => Promise<void>
}

type Factory = (optsA: FrameChannelOptions, optsB: FrameChannelOptions) => Promise<Pair>

const MAX = 64 * 1024
const HWM = 64 * 1024
const OPTS: FrameChannelOptions = { maxFrameSize: MAX, highWaterMark: HWM }

/** Resolve with the next value passed to `register`'s callback, or reject after `ms`. */
function once<T>(register: (cb: (value: T) => void) => void, what: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
    register((value) => {
      clearTimeout(timer)
      resolve(value)
    })
  })
}

const memory: Factory = async (optsA, optsB) => {
  const [a, b] = createMemoryPair(optsA, optsB)
  return { a, b, cleanup: async () => {} }
}

/** A bare net.Server whose accepted socket becomes `b`. */
const tcp: Factory = async (optsA, optsB) => {
  const server = net.createServer()
  const accepted = new Promise<net.Socket>((resolve) => {
    server.once('connection', resolve)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  const a = await connectTcp(port, '127.0.0.1', optsA)
  const b = createTcpChannel(await accepted, optsB)
  return {
    a,
    b,
    cleanup: async () => {
      a.close()
      b.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Through the hub: the hub only makes a TCP channel once the peer's first byte arrives, so a hello frame is sent and swallowed here. */
const tcpHub: Factory = async (optsA, optsB) => {
  let onChannel!: (c: FrameChannel) => void
  const channel = new Promise<FrameChannel>((resolve) => (onChannel = resolve))
  const hub = new HubServer({ ...optsB, onChannel: (c, info) => (info.authenticated(), onChannel(c)) })
  const { port } = await hub.listen(0, '127.0.0.1')
  const a = await connectTcp(port, '127.0.0.1', optsA)
  a.send(new Uint8Array([0x68, 0x69]))
  const b = await channel
  await once<Uint8Array>((cb) => b.on('frame', function hello(f) {
    b.off('frame', hello)
    cb(f)
  }), 'hello frame')
  return { a, b, cleanup: () => hub.close() }
}

const websocket: Factory = async (optsA, optsB) => {
  let onChannel!: (c: FrameChannel) => void
  const channel = new Promise<FrameChannel>((resolve) => (onChannel = resolve))
  const hub = new HubServer({ ...optsB, onChannel: (c, info) => (info.authenticated(), onChannel(c)) })
  const { port } = await hub.listen(0, '127.0.0.1')
  const a = await connectWebSocket(`ws://127.0.0.1:${port}/`, optsA)
  const b = await channel
  return {
    a,
    b,
    cleanup: async () => {
      a.close()
      await hub.close()
    },
  }
}

/** Collect `n` frames from `channel`; rejects if it closes first or nothing completes within `ms`. */
function collect(channel: FrameChannel, n: number, ms = 20_000): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = []
  return new Promise((resolve, reject) => {
    if (n === 0) return resolve(frames)
    const timer = setTimeout(() => {
      done()
      reject(new Error(`timed out with ${frames.length}/${n} frames`))
    }, ms)
    const onFrame = (frame: Uint8Array) => {
      frames.push(frame)
      if (frames.length === n) {
        done()
        resolve(frames)
      }
    }
    const onClose = (err?: Error) => {
      done()
      reject(new Error(`closed after ${frames.length}/${n} frames: ${err?.message ?? 'clean'}`))
    }
    const done = () => {
      clearTimeout(timer)
      channel.off('frame', onFrame)
      channel.off('close', onClose)
    }
    channel.on('frame', onFrame)
    channel.on('close', onClose)
  })
}

/** Wait until `channel` can take more (immediately when it already can). */
function drained(channel: FrameChannel): Promise<void> {
  return once<void>((cb) => channel.on('drain', function d() {
    channel.off('drain', d)
    cb()
  }), 'drain')
}

/** Send all frames, waiting for 'drain' whenever send() says stop. */
async function sendAll(channel: FrameChannel, frames: Uint8Array[]): Promise<void> {
  for (const frame of frames) {
    if (!channel.send(frame)) await drained(channel)
  }
}

function numbered(i: number, size = 8): Uint8Array {
  const f = new Uint8Array(size)
  new DataView(f.buffer).setUint32(0, i)
  return f
}

function pattern(size: number, seed: number): Uint8Array {
  const f = new Uint8Array(size)
  for (let i = 0; i < size; i++) f[i] = (i * 31 + seed) & 0xff
  return f
}

/** Let pending I/O and timers run (for "fires only once" checks after the fact). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50))

const factories: Array<[string, Factory]> = [
  ['memory', memory],
  ['tcp', tcp],
  ['tcp via hub', tcpHub],
  ['websocket via hub', websocket],
]

describe.each(factories)('FrameChannel conformance: %s', (_name, factory) => {
  let pair: Pair | undefined
  const open = async (optsA: FrameChannelOptions = OPTS, optsB: FrameChannelOptions = OPTS) => {
    pair = await factory(optsA, optsB)
    return pair
  }
  afterEach(async () => {
    await pair?.cleanup()
    pair = undefined
  })

  it('delivers frames in order and intact: empty, odd sizes, exactly maxFrameSize', async () => {
    const { a, b } = await open()
    expect(a.maxFrameSize).toBe(MAX)
    const sizes = [0, 1, 3, 4, 5, 100, 4095, 16 * 1024, 16 * 1024 + 1, 65535, MAX, 0, 7]
    const frames = sizes.map((size, i) => pattern(size, i))
    const got = collect(b, frames.length)
    await sendAll(a, frames)
    const received = await got
    expect(received.map((f) => f.byteLength)).toEqual(sizes)
    received.forEach((f, i) => expect(f).toEqual(frames[i]))
    for (const f of received) expect(f).toBeInstanceOf(Uint8Array)
  })

  it('delivers 10k small frames in order', async () => {
    const { a, b } = await open()
    const n = 10_000
    const got = collect(b, n)
    const frames = Array.from({ length: n }, (_, i) => numbered(i, 100))
    await sendAll(a, frames)
    const received = await got
    received.forEach((f, i) => {
      expect(f.byteLength).toBe(100)
      expect(new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(0)).toBe(i)
    })
  })

  it('carries frames both ways at once', async () => {
    const { a, b } = await open()
    const n = 2000
    const atB = collect(b, n)
    const atA = collect(a, n)
    await Promise.all([
      sendAll(a, Array.from({ length: n }, (_, i) => numbered(i))),
      sendAll(b, Array.from({ length: n }, (_, i) => numbered(n + i))),
    ])
    const [fromA, fromB] = await Promise.all([atB, atA])
    expect(fromA.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(0))).toEqual(
      Array.from({ length: n }, (_, i) => i),
    )
    expect(fromB.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(0))).toEqual(
      Array.from({ length: n }, (_, i) => n + i),
    )
  })

  it('does not let the sender reuse-and-corrupt a frame after send()', async () => {
    const { a, b } = await open()
    const got = collect(b, 3)
    const buf = new Uint8Array(32).fill(1)
    a.send(buf)
    buf.fill(2)
    a.send(buf)
    const big = new Uint8Array(20 * 1024).fill(3)
    a.send(big)
    big.fill(4)
    const [f1, f2, f3] = await got
    expect(f1.every((x) => x === 1)).toBe(true)
    expect(f2.every((x) => x === 2)).toBe(true)
    expect(f3.every((x) => x === 3)).toBe(true)
  })

  it('throws FRAME_TOO_LARGE for an oversize send and stays usable', async () => {
    const { a, b } = await open()
    let err: unknown
    try {
      a.send(new Uint8Array(MAX + 1))
    } catch (e) {
      err = e
    }
    expect(isHyperEmitterError(err, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
    expect(a.closed).toBe(false)
    const got = collect(b, 1)
    a.send(pattern(10, 9))
    expect((await got)[0]).toEqual(pattern(10, 9))
  })

  it('throws INVALID_ARGUMENT for a frame that is not a Uint8Array', async () => {
    const { a } = await open()
    expect(() => a.send('nope' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
  })

  it('closes the receiver with FRAME_TOO_LARGE when a peer with a bigger limit sends an oversize frame', async () => {
    const { a, b } = await open({ maxFrameSize: 2 * MAX, highWaterMark: HWM }, OPTS)
    const closedB = once<Error | undefined>((cb) => b.on('close', cb), 'close on b')
    const closedA = once<Error | undefined>((cb) => a.on('close', cb), 'close on a')
    // A valid frame first: it must still arrive before the refusal.
    const first = collect(b, 1)
    a.send(pattern(10, 1))
    await first
    a.send(new Uint8Array(MAX + 1))
    const errB = await closedB
    expect(isHyperEmitterError(errB, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
    await closedA
    expect(a.closed).toBe(true)
    expect(b.closed).toBe(true)
  })

  it('applies backpressure: a paused receiver makes send() return false, resume delivers all and fires drain', async () => {
    const { a, b } = await open()
    const frameSize = 8 * 1024
    let received = 0
    let order = true
    b.on('frame', (f) => {
      if (new DataView(f.buffer, f.byteOffset).getUint32(0) !== received) order = false
      received++
    })
    b.pause()
    let sent = 0
    let lastResult = true
    // Keep sending while 'drain' still comes; the kernel's socket buffers absorb
    // some megabytes before the sender's own buffer fills. Bounded in bytes.
    const limitBytes = 256 * 1024 * 1024
    for (let round = 0; round < 10_000 && sent * frameSize < limitBytes; round++) {
      while (sent * frameSize < limitBytes) {
        lastResult = a.send(numbered(sent++, frameSize))
        if (!lastResult) break
      }
      const outcome = await Promise.race([drained(a).then(() => 'drain'), new Promise((r) => setTimeout(r, 100, 'stuck'))])
      if (outcome === 'stuck') break
    }
    expect(lastResult).toBe(false)
    expect(a.bufferedAmount).toBeGreaterThan(0)
    expect(received).toBe(0)

    const drain = drained(a)
    const all = once<void>((cb) => b.on('frame', () => received === sent && cb()), 'all frames')
    b.resume()
    await Promise.all([drain, all])
    expect(received).toBe(sent)
    expect(order).toBe(true)
    expect(a.bufferedAmount).toBeLessThan(HWM)
  })

  it('holds frames while paused and delivers them after resume, in order', async () => {
    const { a, b } = await open()
    const n = 500
    const got: number[] = []
    b.on('frame', (f) => {
      got.push(new DataView(f.buffer, f.byteOffset).getUint32(0))
      // Pause in the middle of a burst: the rest must wait, in order.
      if (got.length === 100) {
        b.pause()
        setTimeout(() => b.resume(), 20)
      }
    })
    const all = once<void>((cb) => b.on('frame', () => got.length === n && cb()), 'all frames')
    await sendAll(a, Array.from({ length: n }, (_, i) => numbered(i)))
    await all
    expect(got).toEqual(Array.from({ length: n }, (_, i) => i))
  })

  it('holds frames that arrive before any frame listener, and delivers them once one is attached', async () => {
    const { a, b } = await open()
    // b speaks first, as a hub's session does right after accepting.
    b.send(numbered(0))
    b.send(numbered(1))
    await settle()
    const got = collect(a, 3)
    b.send(numbered(2))
    const frames = await got
    expect(frames.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(0))).toEqual([0, 1, 2])
  })

  it('close() on one side fires close exactly once on both sides, cleanly', async () => {
    const { a, b } = await open()
    const calls = { a: [] as Array<Error | undefined>, b: [] as Array<Error | undefined> }
    a.on('close', (err) => calls.a.push(err))
    const closedB = once<Error | undefined>((cb) => b.on('close', (err) => {
      calls.b.push(err)
      cb(err)
    }), 'close on b')
    a.close()
    a.close()
    expect(a.closed).toBe(true)
    await closedB
    await settle()
    expect(calls.a).toEqual([undefined])
    expect(calls.b).toEqual([undefined])
    expect(b.closed).toBe(true)
  })

  it('closing with an error reports it locally, once', async () => {
    const { a, b } = await open()
    const calls: Array<Error | undefined> = []
    a.on('close', (err) => calls.push(err))
    const closedB = once<Error | undefined>((cb) => b.on('close', cb), 'close on b')
    const boom = new Error('boom')
    a.close(boom)
    await closedB
    await settle()
    expect(calls).toEqual([boom])
  })

  it('frames sent just before a clean close still arrive', async () => {
    const { a, b } = await open()
    const got = collect(b, 3)
    const closedB = once<Error | undefined>((cb) => b.on('close', cb), 'close on b')
    a.send(numbered(0))
    a.send(numbered(1))
    a.send(numbered(2))
    a.close()
    const frames = await got
    expect(frames.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(0))).toEqual([0, 1, 2])
    expect(await closedB).toBeUndefined()
  })

  it('a clean close from the peer waits behind frames held for a paused receiver, until resume()', async () => {
    const { a, b } = await open()
    const events: string[] = []
    b.on('frame', (f) => events.push(`frame ${new DataView(f.buffer, f.byteOffset).getUint32(0)}`))
    const closedB = once<Error | undefined>((cb) => b.on('close', (err) => {
      events.push(`close ${err?.message ?? 'clean'}`)
      cb(err)
    }), 'close on b')
    b.pause()
    for (let i = 0; i < 3; i++) a.send(numbered(i))
    a.close()
    await settle()
    expect(events).toEqual([])
    expect(b.closed).toBe(false)
    b.resume()
    await closedB
    expect(events).toEqual(['frame 0', 'frame 1', 'frame 2', 'close clean'])
  })

  it('send after close throws CLOSED, on both sides', async () => {
    const { a, b } = await open()
    const closedB = once<Error | undefined>((cb) => b.on('close', cb), 'close on b')
    a.close()
    expect(() => a.send(new Uint8Array(1))).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
    await closedB
    expect(() => b.send(new Uint8Array(1))).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
    // pause/resume/close after close are harmless no-ops.
    a.pause()
    a.resume()
    a.close()
  })

  it('a frame listener that throws closes the channel with that error instead of escaping', async () => {
    const { a, b } = await open()
    const failure = new Error('listener bug')
    b.on('frame', () => {
      throw failure
    })
    const closedB = once<Error | undefined>((cb) => b.on('close', cb), 'close on b')
    a.send(new Uint8Array(4))
    expect(await closedB).toBe(failure)
  })
})
