import * as net from 'node:net'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import type { FrameChannel } from '../src/transport/channel.js'
import { HubServer } from '../src/node/hub-server.js'
import { connectTcp, encodeFrame, FrameDecoder } from '../src/transport/tcp.js'

const MAX = 1024

/** Cut `bytes` at the given (unsorted, possibly repeated) offsets. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.byteLength + 1)))].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let from = 0
  for (const p of points) {
    chunks.push(bytes.subarray(from, p))
    from = p
  }
  chunks.push(bytes.subarray(from))
  return chunks
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

/** The obvious decoder, on the whole stream at once: what the incremental one must agree with. */
function reference(stream: Uint8Array, max: number): { frames: Uint8Array[]; oversize: boolean; rest: number } {
  const frames: Uint8Array[] = []
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength)
  let at = 0
  while (stream.byteLength - at >= 4) {
    const len = view.getUint32(at)
    if (len > max) return { frames, oversize: true, rest: 0 }
    if (stream.byteLength - at - 4 < len) break
    frames.push(stream.slice(at + 4, at + 4 + len))
    at += 4 + len
  }
  return { frames, oversize: false, rest: stream.byteLength - at }
}

/** Feed chunks through a decoder the way the channel does; never lets anything but a coded error escape. */
function run(chunks: Uint8Array[], max: number): { frames: Uint8Array[]; error?: unknown; decoder: FrameDecoder } {
  const decoder = new FrameDecoder(max)
  const frames: Uint8Array[] = []
  for (const chunk of chunks) {
    try {
      decoder.decode(chunk, (f) => frames.push(f))
    } catch (error) {
      return { frames, error, decoder }
    }
  }
  return { frames, decoder }
}

const frameArb = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 65, maxLength: MAX }) },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(MAX).fill(7)) },
  { weight: 1, arbitrary: fc.constant(new Uint8Array(0)) },
)
const cutsArb = fc.array(fc.nat(), { maxLength: 40 })

describe('FrameDecoder (fuzzed)', () => {
  it('decodes frames split at arbitrary chunk boundaries identically', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 30 }), cutsArb, (frames, cuts) => {
        const stream = concat(frames.map(encodeFrame))
        const { frames: got, error, decoder } = run(split(stream, cuts), MAX)
        expect(error).toBeUndefined()
        expect(got).toEqual(frames)
        expect(decoder.partial).toBe(false)
        for (const f of got) expect(f.constructor).toBe(Uint8Array)
      }),
      { numRuns: 300 },
    )
  })

  it('decodes one byte at a time and all at once alike', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 8 }), (frames) => {
        const stream = concat(frames.map(encodeFrame))
        const bytewise = run(Array.from(stream, (b) => Uint8Array.of(b)), MAX)
        const whole = run([Buffer.from(stream)], MAX)
        expect(bytewise.frames).toEqual(frames)
        expect(whole.frames).toEqual(frames)
      }),
      { numRuns: 100 },
    )
  })

  it('agrees with a whole-stream reference decoder on random bytes, and never yields a frame over the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), fc.integer({ min: 0, max: 2048 }), (chunks, max) => {
        const stream = concat(chunks)
        const { frames, error, decoder } = run(chunks, max)
        const expected = reference(stream, max)
        expect(frames).toEqual(expected.frames)
        for (const f of frames) expect(f.byteLength).toBeLessThanOrEqual(max)
        if (expected.oversize) {
          expect(isHyperEmitterError(error, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
          // Refused from the header alone: nothing of the body is held.
          expect(decoder.pendingBytes).toBe(0)
          // A failed decoder stays failed, with a fresh error each time.
          let again: unknown
          try {
            decoder.push(new Uint8Array(1))
          } catch (e) {
            again = e
          }
          expect(isHyperEmitterError(again, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
          expect(again).not.toBe(error)
        } else {
          expect(error).toBeUndefined()
          expect(decoder.pendingBytes).toBe(expected.rest)
          expect(decoder.partial).toBe(expected.rest > 0)
        }
      }),
      { numRuns: 1000 },
    )
  })

  it('refuses an oversize length before buffering its body, wherever it falls, keeping the frames before it', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 10 }),
        fc.integer({ min: MAX + 1, max: 0xffffffff }),
        cutsArb,
        (frames, badLength, cuts) => {
          const bad = new Uint8Array(4)
          new DataView(bad.buffer).setUint32(0, badLength)
          // A few body bytes follow, as a hostile peer would stream them.
          const stream = concat([...frames.map(encodeFrame), bad, new Uint8Array(16)])
          const { frames: got, error, decoder } = run(split(stream, cuts), MAX)
          expect(got).toEqual(frames)
          expect(isHyperEmitterError(error, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
          expect((error as { details?: { size?: number } }).details?.size).toBe(badLength)
          expect(decoder.pendingBytes).toBe(0)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('a truncated stream yields a prefix of its frames and reports the partial frame', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 10 }), fc.nat(), cutsArb, (frames, cutAt, cuts) => {
        const stream = concat(frames.map(encodeFrame))
        const truncated = stream.subarray(0, cutAt % (stream.byteLength + 1))
        const { frames: got, error, decoder } = run(split(truncated, cuts), MAX)
        expect(error).toBeUndefined()
        expect(got).toEqual(frames.slice(0, got.length))
        const consumed = concat(got.map(encodeFrame)).byteLength
        expect(decoder.partial).toBe(consumed < truncated.byteLength)
        expect(decoder.pendingBytes).toBe(truncated.byteLength - consumed)
      }),
      { numRuns: 300 },
    )
  })

  it('rejects a maxFrameSize the 32-bit prefix cannot express', () => {
    expect(() => new FrameDecoder(2 ** 32)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    expect(() => new FrameDecoder(-1)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
  })
})

describe('live TCP hub fed random bytes (fuzzed)', () => {
  let hub: HubServer
  let port: number
  const received: Uint8Array[] = []
  const closeErrors: unknown[] = []
  let echo: FrameChannel | undefined

  beforeAll(async () => {
    hub = new HubServer({
      maxFrameSize: MAX,
      firstByteTimeout: 2000,
      onRequest: (_req, res) => res.end('ok'),
      onChannel: (channel, info) => {
        info.authenticated()
        channel.on('frame', (f) => {
          received.push(f)
          // Echo, so a well-behaved peer can check the hub is still serving.
          if (!channel.closed) channel.send(f)
        })
        channel.on('close', (err) => closeErrors.push(err))
        echo = channel
      },
    })
    port = (await hub.listen(0, '127.0.0.1')).port
  })
  afterAll(async () => {
    await hub.close()
  })

  /** Write chunks on a fresh raw connection, half-close, and wait (bounded) for the hub to drop it. */
  async function blast(chunks: Uint8Array[]): Promise<void> {
    const socket = net.connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    socket.on('error', () => {})
    socket.on('data', () => {})
    const closed = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.destroy()
        resolve()
      }, 5000)
      socket.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
    })
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    for (const chunk of chunks) {
      if (socket.destroyed) break
      socket.write(chunk)
      await new Promise((r) => setImmediate(r))
    }
    socket.end()
    await closed
  }

  it('never crashes and never delivers a frame over the limit, whatever arrives', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.array(fc.uint8Array({ minLength: 1, maxLength: 200 }), { minLength: 1, maxLength: 8 }),
          // Streams that start like frames (top byte 0), so the TCP path is the one exercised.
          fc
            .tuple(fc.array(frameArb, { maxLength: 5 }), fc.uint8Array({ maxLength: 64 }), cutsArb)
            .map(([frames, junk, cuts]) => split(concat([...frames.map(encodeFrame), junk]), cuts).filter((c) => c.byteLength > 0)),
        ),
        async (chunks) => {
          if (chunks.length === 0) return
          received.length = 0
          await blast(chunks)
          for (const f of received) expect(f.byteLength).toBeLessThanOrEqual(MAX)
        },
      ),
      { numRuns: 60 },
    )
    for (const err of closeErrors) {
      if (err !== undefined) expect(isHyperEmitterError(err)).toBe(true)
    }
    // Still serving: a proper peer gets its frame echoed.
    const client = await connectTcp(port, '127.0.0.1', { maxFrameSize: MAX })
    const back = new Promise<Uint8Array>((resolve) => client.on('frame', resolve))
    client.send(Uint8Array.of(1, 2, 3))
    expect(await back).toEqual(Uint8Array.of(1, 2, 3))
    client.close()
    expect(echo).toBeDefined()
  })

  it('frames written in arbitrary pieces over a socket arrive identically', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 20 }), cutsArb, async (frames, cuts) => {
        received.length = 0
        const stream = concat(frames.map(encodeFrame))
        await blast(split(stream, cuts).filter((c) => c.byteLength > 0))
        expect(received).toEqual(frames)
      }),
      { numRuns: 40 },
    )
  })
})
