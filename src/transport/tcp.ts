import * as net from 'node:net'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import {
  asError,
  checkOutgoing,
  DEFAULT_MAX_FRAME_SIZE,
  frameTooLarge,
  sendLimits,
  type FrameChannel,
  type FrameChannelOptions,
} from './channel.js'
import { InboxChannel } from './channel-base.js'
import { ownFrame } from './frame-copy.js'

/** Bytes of the big-endian length prefix in front of every TCP frame. */
export const FRAME_HEADER_SIZE = 4

/**
 * Small frames are copied into a shared staging buffer so one socket write
 * carries many of them: per-write overhead, not copying, is what limits a
 * stream of ~100 B frames.
 */
const STAGING_SIZE = 64 * 1024
/** Frames at least this big skip staging and get a write of their own. */
const DIRECT_WRITE_MIN = 16 * 1024
/** How long a cleanly closed socket may take to finish its FIN handshake before it is destroyed. */
const END_TIMEOUT_MS = 2000
/** Frames up to this size get their buffer when their length arrives; larger ones are gathered as their bytes come. */
const EAGER_BODY_MAX = 64 * 1024

/**
 * Incremental decoder for length-prefixed frames (4-byte big-endian length,
 * then that many bytes). Pure: no I/O, so it can be fuzzed directly.
 *
 * A frame that lies wholly inside one chunk goes through ownFrame() (a view
 * when it is most of the chunk, else a copy, small ones into a shared slab);
 * a frame spanning chunks is assembled once into a buffer of its exact size,
 * which for a large frame grows (doubling) with the bytes that arrive: a
 * length prefix alone never makes the decoder take much memory.
 * Frames are plain Uint8Arrays (never Node Buffers, whose slice() does not
 * copy), possibly sharing an ArrayBuffer: never transfer `frame.buffer`.
 */
export class FrameDecoder {
  /** Largest frame length accepted; may be changed between chunks (a hub lowers it until the peer is authenticated). */
  maxFrameSize: number
  private readonly header = new Uint8Array(FRAME_HEADER_SIZE)
  private headerFill = 0
  /** The unfinished frame's bytes so far, in a buffer that may be shorter than the frame. */
  private body: Uint8Array | null = null
  /** Length of the unfinished frame. */
  private bodyLength = 0
  private bodyFill = 0
  private failed = false

  constructor(maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE) {
    checkMaxFrameSize(maxFrameSize)
    this.maxFrameSize = maxFrameSize
  }

  /** True when bytes of an unfinished frame are held (a stream ending now was cut mid-frame). */
  get partial(): boolean {
    return this.headerFill > 0 || this.body !== null
  }

  /** Bytes of the unfinished frame held so far, header included. */
  get pendingBytes(): number {
    return this.body === null ? this.headerFill : FRAME_HEADER_SIZE + this.bodyFill
  }

  /**
   * Decode `chunk` and return the frames it completes, in order. Throws
   * FRAME_TOO_LARGE (before buffering any of its body) when a length prefix
   * exceeds maxFrameSize; the decoder is then unusable and every later call
   * throws PROTOCOL_ERROR.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = []
    this.decode(chunk, (frame) => frames.push(frame))
    return frames
  }

  /**
   * Like push(), but hands each frame to `onFrame` as soon as it is complete,
   * so frames before a bad length prefix in the same chunk are not lost.
   * `onFrame` must not throw.
   */
  decode(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    if (this.failed) {
      throw new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, 'frame decoder already failed on an earlier chunk')
    }
    // Normalise Buffers so slice() below copies and frames come out as plain Uint8Arrays.
    const bytes =
      chunk.constructor === Uint8Array ? chunk : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    const n = bytes.byteLength
    let off = 0
    while (off < n) {
      if (this.body !== null) {
        const take = Math.min(this.bodyLength - this.bodyFill, n - off)
        this.append(bytes.subarray(off, off + take))
        off += take
        if (this.bodyFill === this.bodyLength) {
          const frame = this.body
          this.body = null
          this.bodyFill = this.bodyLength = 0
          onFrame(frame)
        }
        continue
      }

      let len: number
      if (this.headerFill === 0 && n - off >= FRAME_HEADER_SIZE) {
        // Multiply the top byte: `<< 24` would go negative for lengths >= 2 GiB.
        len = bytes[off] * 0x1000000 + ((bytes[off + 1] << 16) | (bytes[off + 2] << 8) | bytes[off + 3])
        off += FRAME_HEADER_SIZE
      } else {
        while (this.headerFill < FRAME_HEADER_SIZE && off < n) this.header[this.headerFill++] = bytes[off++]
        if (this.headerFill < FRAME_HEADER_SIZE) break
        this.headerFill = 0
        const h = this.header
        len = h[0] * 0x1000000 + ((h[1] << 16) | (h[2] << 8) | h[3])
      }

      if (len > this.maxFrameSize) {
        this.failed = true
        throw frameTooLarge(len, this.maxFrameSize)
      }

      const available = n - off
      if (available >= len) {
        onFrame(ownFrame(bytes.subarray(off, off + len)))
        off += len
      } else {
        this.bodyLength = len
        this.body = new Uint8Array(Math.min(len, Math.max(EAGER_BODY_MAX, 2 * available)))
        this.append(bytes.subarray(off))
        off = n
      }
    }
  }

  /** Add bytes to the unfinished frame, growing its buffer (at least doubling, at most to the frame's length) when full. */
  private append(piece: Uint8Array): void {
    let body = this.body!
    const need = this.bodyFill + piece.byteLength
    if (need > body.byteLength) {
      const grown = new Uint8Array(Math.min(this.bodyLength, Math.max(need, 2 * body.byteLength)))
      grown.set(body.subarray(0, this.bodyFill))
      body = this.body = grown
    }
    body.set(piece, this.bodyFill)
    this.bodyFill = need
  }
}

/** Encode one frame as it travels over TCP: 4-byte big-endian length, then the bytes. */
export function encodeFrame(frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + frame.byteLength)
  writeLength(out, 0, frame.byteLength)
  out.set(frame, FRAME_HEADER_SIZE)
  return out
}

function writeLength(buf: Uint8Array, at: number, len: number): void {
  buf[at] = len >>> 24
  buf[at + 1] = (len >>> 16) & 0xff
  buf[at + 2] = (len >>> 8) & 0xff
  buf[at + 3] = len & 0xff
}

function checkMaxFrameSize(max: number): void {
  // The length prefix is 32 bits; anything larger could never be announced.
  if (!Number.isInteger(max) || max < 0 || max > 0xffffffff) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `maxFrameSize must be an integer in [0, 2^32-1], got ${max}`)
  }
}

function describeRemote(socket: net.Socket): string {
  const address = socket.remoteAddress
  if (address === undefined) return 'tcp://unknown'
  const host = address.includes(':') ? `[${address}]` : address
  return `tcp://${host}:${socket.remotePort}`
}

/**
 * Wrap a connected (or connecting) net.Socket as a FrameChannel speaking
 * length-prefixed frames. The channel owns the socket from now on: it
 * resumes it, sets no-delay and keep-alive, and ends or destroys it on close.
 * A 'frame' listener that throws closes the channel with that error.
 */
export function createTcpChannel(socket: net.Socket, options: FrameChannelOptions = {}): FrameChannel {
  return new TcpChannel(socket, options)
}

/**
 * Connect to a TCP hub and resolve to its channel once connected. Rejects
 * INVALID_ARGUMENT for a bad port and CONNECTION_FAILED (socket error as
 * cause, or a TIMEOUT error as cause after `timeout` ms).
 */
export function connectTcp(
  port: number,
  host = 'localhost',
  options: FrameChannelOptions & { timeout?: number; lookup?: net.LookupFunction } = {},
): Promise<FrameChannel> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `port must be an integer in [1, 65535], got ${port}`))
  }
  const { timeout, lookup, ...channelOptions } = options
  const where = `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`
  return new Promise((resolve, reject) => {
    const socket = net.connect(lookup === undefined ? { port, host } : { port, host, lookup })
    let timer: ReturnType<typeof setTimeout> | undefined
    const fail = (cause: unknown) => {
      cleanup()
      socket.destroy()
      reject(
        new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `could not connect to ${where}: ${asError(cause).message}`, {
          cause,
          details: { host, port },
        }),
      )
    }
    const onError = (err: Error) => fail(err)
    const onConnect = () => {
      cleanup()
      try {
        resolve(createTcpChannel(socket, channelOptions))
      } catch (err) {
        socket.destroy()
        reject(err)
      }
    }
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer)
      socket.off('error', onError)
      socket.off('connect', onConnect)
    }
    socket.once('error', onError)
    socket.once('connect', onConnect)
    if (timeout !== undefined && timeout > 0) {
      timer = setTimeout(
        () => fail(new HyperEmitterError(ErrorCodes.TIMEOUT, `no connection after ${timeout} ms`, { details: { timeout } })),
        timeout,
      )
    }
  })
}

class TcpChannel extends InboxChannel implements FrameChannel {
  readonly kind = 'tcp' as const
  readonly remote: string
  readonly maxFrameSize: number
  private readonly highWaterMark: number
  private readonly decoder: FrameDecoder
  private readonly socket: net.Socket

  // Send side: bytes in stage[stageStart, stageEnd) are staged, not yet handed to the socket.
  private stage: Uint8Array | null = null
  private stageStart = 0
  private stageEnd = 0
  private flushScheduled = false
  private needDrain = false

  private endTimer: ReturnType<typeof setTimeout> | undefined
  readonly released: Promise<void>
  private release!: () => void

  constructor(socket: net.Socket, options: FrameChannelOptions) {
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    checkMaxFrameSize(maxFrameSize)
    const limits = sendLimits(options, maxFrameSize)
    // Unbounded: the socket is paused while frames are held, so at most one chunk's worth waits.
    super({ maxQueuedBytes: Infinity, sendLimits: limits })
    this.released = new Promise((resolve) => (this.release = resolve))
    this.maxFrameSize = maxFrameSize
    this.highWaterMark = limits.highWaterMark
    this.decoder = new FrameDecoder(maxFrameSize)
    this.socket = socket
    this.remote = describeRemote(socket)

    socket.setNoDelay(true)
    socket.setKeepAlive(true, 30_000)
    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    // Kept for the socket's whole life: an 'error' with no listener would crash the process.
    socket.on('error', this.onError)
    socket.on('close', this.onSocketClose)
    // A socket handed over after sniffing its first bytes is explicitly paused.
    socket.resume()
    if (socket.destroyed) queueMicrotask(() => this.onSocketClose())
  }

  get bufferedAmount(): number {
    return this.socket.writableLength + (this.stageEnd - this.stageStart)
  }

  send(frame: Uint8Array): boolean {
    checkOutgoing(this, frame)
    const len = frame.byteLength
    if (len >= DIRECT_WRITE_MIN) {
      this.flushStage()
      // Copy, as for small frames: the caller may reuse its buffer once send() returns.
      const buf = Buffer.allocUnsafe(FRAME_HEADER_SIZE + len)
      writeLength(buf, 0, len)
      buf.set(frame, FRAME_HEADER_SIZE)
      this.socket.write(buf, this.onWritten)
    } else {
      let stage = this.stage
      if (stage === null || stage.byteLength - this.stageEnd < FRAME_HEADER_SIZE + len) {
        this.flushStage()
        // The old stage stays referenced by the socket until written; later frames go to a fresh one.
        stage = this.stage = Buffer.allocUnsafe(STAGING_SIZE)
        this.stageStart = this.stageEnd = 0
      }
      writeLength(stage, this.stageEnd, len)
      stage.set(frame, this.stageEnd + FRAME_HEADER_SIZE)
      this.stageEnd += FRAME_HEADER_SIZE + len
      if (!this.flushScheduled) {
        this.flushScheduled = true
        // setImmediate, not a microtask: frames produced by every I/O callback of one
        // event-loop turn share a single write.
        setImmediate(this.onFlushTimer)
      }
    }
    const queued = this.bufferedAmount
    this.sendQueued(queued)
    const below = queued < this.highWaterMark
    if (!below) this.needDrain = true
    return below
  }

  protected override holdSource(): void {
    this.socket.pause()
  }

  protected override limitIncoming(bytes: number): void {
    this.decoder.maxFrameSize = bytes
  }

  protected override releaseSource(): void {
    this.socket.resume()
  }

  protected closeTransport(err: Error | undefined): void {
    const socket = this.socket
    if (err === undefined) {
      // Clean close: what was sent still reaches the peer, then FIN.
      this.flushStage()
      socket.end()
      if (!socket.destroyed) {
        this.endTimer = setTimeout(() => socket.destroy(), END_TIMEOUT_MS)
        this.endTimer.unref?.()
      }
    } else {
      this.stage = null
      this.stageStart = this.stageEnd = 0
      socket.destroy()
    }
  }

  private flushStage(): void {
    if (this.stageEnd > this.stageStart && this.stage !== null) {
      const chunk = this.stage.subarray(this.stageStart, this.stageEnd)
      this.stageStart = this.stageEnd
      this.socket.write(chunk, this.onWritten)
    }
  }

  private readonly onFlushTimer = (): void => {
    this.flushScheduled = false
    if (this.closed) return
    this.flushStage()
    this.checkDrain()
  }

  // Write callbacks, not the socket's 'drain': the socket's own high-water mark
  // (16 KiB) is unrelated to ours, so its 'drain' may never fire for small ones.
  private readonly onWritten = (): void => {
    this.checkDrain()
  }

  private checkDrain(): void {
    this.sendQueued(this.bufferedAmount)
    if (this.needDrain && !this.closed && this.bufferedAmount < this.highWaterMark) {
      this.needDrain = false
      this.events.emit('drain')
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.closed) return
    try {
      this.decoder.decode(chunk, this.onFrame)
    } catch (err) {
      // Only the decoder throws here (receive() catches listener errors): a bad length prefix.
      this.close(asError(err))
    }
  }

  private readonly onFrame = (frame: Uint8Array): void => this.receive(frame)

  private readonly onEnd = (): void => {
    if (this.closed) return
    this.closeAfterInbox(this.finishEnd)
  }

  private readonly finishEnd = (): void => {
    if (this.decoder.partial) {
      this.close(
        new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `${this.remote} ended the connection in the middle of a frame`, {
          details: { pendingBytes: this.decoder.pendingBytes },
        }),
      )
    } else {
      this.close()
    }
  }

  private readonly onError = (err: Error): void => {
    if (this.closed) return
    this.close(
      new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `connection to ${this.remote} failed: ${err.message}`, {
        cause: err,
      }),
    )
  }

  private readonly onSocketClose = (): void => {
    this.release()
    if (this.endTimer !== undefined) clearTimeout(this.endTimer)
    if (this.closed) return
    this.close(this.decoder.partial ? new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `connection to ${this.remote} was lost mid-frame`) : undefined)
  }
}
