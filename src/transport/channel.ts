import { ErrorCodes, HyperEmitterError } from '../core/errors.js'

/** Default largest frame accepted or sent: 4 MiB. */
export const DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
/** Default send-buffer level above which send() returns false: 1 MiB. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024

/** Default time a peer may leave our send buffer over its pause level before it is dropped. */
export const DEFAULT_STALL_TIMEOUT = 30_000

export interface FrameChannelOptions {
  /** Largest frame, in bytes, accepted or sent (default 4 MiB). */
  maxFrameSize?: number
  /** Send-buffer level, in bytes, above which send() returns false (default 1 MiB). */
  highWaterMark?: number
  /**
   * Most bytes queued to the peer, control frames included (default
   * highWaterMark + 2 x maxFrameSize). Above highWaterMark + maxFrameSize
   * (more than an honest session ever queues) the channel stops reading
   * from the peer; over this bound it closes with LIMIT_EXCEEDED.
   */
  maxBufferedBytes?: number
  /** ms the channel may stay stopped for a peer that does not read before it closes with LIMIT_EXCEEDED (default 30 s). */
  stallTimeout?: number
}

export interface FrameChannelEvents {
  /** One whole frame arrived. */
  frame: (frame: Uint8Array) => void
  /** The send buffer fell below the high-water mark after send() returned false. */
  drain: () => void
  /** The channel closed; `err` says why when it was not a clean close. Fires once. */
  close: (err?: Error) => void
}

/**
 * A bidirectional, ordered, reliable channel of binary frames: the only thing
 * the sync layer knows about a transport. Implementations: memory (tests),
 * tcp (length-prefixed, Node), websocket (one binary message per frame, both
 * runtimes), broadcast (browser tabs).
 */
export interface FrameChannel {
  readonly kind: 'memory' | 'tcp' | 'websocket' | 'broadcast'
  /** Human-readable description of the other end, e.g. "tcp://127.0.0.1:4000". */
  readonly remote: string
  readonly maxFrameSize: number
  /** Bytes handed to send() and not yet written out. */
  readonly bufferedAmount: number
  readonly closed: boolean
  /**
   * Resolves once the underlying connection is gone (its socket closed),
   * which may be a little after close(): an owner that must leave nothing
   * behind (an emitter's close()) waits for it. Optional: a channel with
   * nothing to release (memory) may leave it out.
   */
  readonly released?: Promise<void>
  /**
   * Queue one frame. Returns false once the send buffer is above the
   * high-water mark: stop sending until 'drain'. Throws FRAME_TOO_LARGE for a
   * frame over maxFrameSize and CLOSED after close.
   */
  send(frame: Uint8Array): boolean
  /**
   * Refuse incoming frames over `bytes` (at most maxFrameSize) from now on,
   * before buffering them where the transport allows: a hub lowers it until
   * the peer is authenticated, then raises it back. Optional: in-process
   * channels (memory, broadcast) leave it out.
   */
  setMaxIncomingFrameSize?(bytes: number): void
  /** Stop delivering 'frame' events until resume() (receive backpressure). */
  pause(): void
  resume(): void
  /** Close the channel; idempotent. */
  close(err?: Error): void
  on<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void
  off<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void
}

/** Shared checks every channel applies before queueing a frame. */
export function checkOutgoing(channel: FrameChannel, frame: Uint8Array): void {
  if (channel.closed) throw new HyperEmitterError(ErrorCodes.CLOSED, `channel to ${channel.remote} is closed`)
  if (!(frame instanceof Uint8Array)) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'a frame must be a Uint8Array')
  }
  if (frame.byteLength > channel.maxFrameSize) throw frameTooLarge(frame.byteLength, channel.maxFrameSize)
}

/** Resolved send bounds of a channel (see FrameChannelOptions). */
export interface SendLimits {
  highWaterMark: number
  /** Queued bytes above which the channel stops reading from the peer. */
  pauseAbove: number
  maxBufferedBytes: number
  stallTimeout: number
}

/** The send bounds for `options`; throws INVALID_ARGUMENT for a bad one. */
export function sendLimits(options: FrameChannelOptions, maxFrameSize: number): SendLimits {
  const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
  if (!(Number.isFinite(highWaterMark) && highWaterMark >= 0)) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `highWaterMark must be a non-negative number, got ${highWaterMark}`)
  }
  const pauseAbove = highWaterMark + maxFrameSize
  const maxBufferedBytes = options.maxBufferedBytes ?? highWaterMark + 2 * maxFrameSize
  if (!(maxBufferedBytes >= pauseAbove)) {
    throw new HyperEmitterError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxBufferedBytes must be at least highWaterMark + maxFrameSize (${pauseAbove}), got ${maxBufferedBytes}`,
      { details: { option: 'maxBufferedBytes' } },
    )
  }
  const stallTimeout = options.stallTimeout ?? DEFAULT_STALL_TIMEOUT
  if (!(stallTimeout > 0)) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `stallTimeout must be a positive number of ms, got ${stallTimeout}`, {
      details: { option: 'stallTimeout' },
    })
  }
  return { highWaterMark, pauseAbove, maxBufferedBytes, stallTimeout }
}

export function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}

export function frameTooLarge(size: number, max: number): HyperEmitterError {
  return new HyperEmitterError(
    ErrorCodes.FRAME_TOO_LARGE,
    `frame of ${size} bytes exceeds maxFrameSize (${max} bytes)`,
    { details: { size, maxFrameSize: max } },
  )
}

/** Minimal typed listener registry shared by the channel implementations. */
export class ChannelEvents {
  private listeners: { [E in keyof FrameChannelEvents]: Set<FrameChannelEvents[E]> } = {
    frame: new Set(),
    drain: new Set(),
    close: new Set(),
  }

  on<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void {
    this.listeners[event].add(listener)
  }

  off<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void {
    this.listeners[event].delete(listener)
  }

  count(event: keyof FrameChannelEvents): number {
    return this.listeners[event].size
  }

  emit<E extends keyof FrameChannelEvents>(event: E, ...args: Parameters<FrameChannelEvents[E]>): void {
    for (const listener of [...this.listeners[event]]) {
      ;(listener as (...a: unknown[]) => void)(...args)
    }
  }
}
