import {
  asError,
  ChannelEvents,
  checkOutgoing,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_MAX_FRAME_SIZE,
  frameTooLarge,
  type FrameChannel,
  type FrameChannelEvents,
  type FrameChannelOptions,
} from './channel.js'

/**
 * Two connected in-memory channels, for tests. Frames are delivered
 * asynchronously and in order; a paused receiver leaves them buffered on the
 * sender's side, so backpressure behaves as it does over a socket.
 */
export function createMemoryPair(
  options: FrameChannelOptions = {},
  optionsB: FrameChannelOptions = options,
): [FrameChannel, FrameChannel] {
  const a = new MemoryChannel(options, 'memory://a')
  const b = new MemoryChannel(optionsB, 'memory://b')
  a.peer = b
  b.peer = a
  return [a, b]
}

class MemoryChannel implements FrameChannel {
  readonly kind = 'memory' as const
  readonly maxFrameSize: number
  readonly remote: string
  peer!: MemoryChannel
  closed = false
  private readonly highWaterMark: number
  private readonly events = new ChannelEvents()
  /** Frames sent to the peer and not yet delivered. */
  private outbox: Uint8Array[] = []
  private outboxBytes = 0
  private paused = false
  private flushScheduled = false
  private needDrain = false

  constructor(options: FrameChannelOptions, remote: string) {
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    this.highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    this.remote = remote
  }

  get bufferedAmount(): number {
    return this.outboxBytes
  }

  send(frame: Uint8Array): boolean {
    checkOutgoing(this, frame)
    // Copy: the caller may reuse its buffer, as it could with a socket.
    this.outbox.push(frame.slice())
    this.outboxBytes += frame.byteLength
    this.scheduleFlush()
    const below = this.outboxBytes < this.highWaterMark
    if (!below) this.needDrain = true
    return below
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    if (!this.paused) return
    this.paused = false
    this.peer.scheduleFlush()
  }

  close(err?: Error): void {
    if (this.closed) return
    this.closed = true
    if (err !== undefined) {
      this.outbox = []
      this.outboxBytes = 0
    }
    this.events.emit('close', err)
    // The other end sees a clean close, as a socket's peer would: after the
    // frames already sent, when the close was clean (flush() closes it then).
    if (this.outbox.length === 0) queueMicrotask(() => this.peer.close())
    else this.scheduleFlush()
  }

  on<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void {
    this.events.on(event, listener)
    // Frames wait for a listener, as on the socket channels (a peer may speak first).
    if (event === 'frame') this.peer.scheduleFlush()
  }

  off<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void {
    this.events.off(event, listener)
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setTimeout(() => this.flush(), 0)
  }

  /** Deliver queued frames to the peer until it pauses. */
  private flush(): void {
    this.flushScheduled = false
    const peer = this.peer
    while (this.outbox.length > 0 && !peer.closed) {
      // The size check comes first: a socket's receiver refuses an oversize frame as it arrives, listener or not.
      if (this.outbox[0].byteLength > peer.maxFrameSize) {
        peer.close(frameTooLarge(this.outbox[0].byteLength, peer.maxFrameSize))
        return
      }
      if (peer.paused || peer.events.count('frame') === 0) break
      const frame = this.outbox.shift()!
      this.outboxBytes -= frame.byteLength
      try {
        peer.events.emit('frame', frame)
      } catch (err) {
        // As the socket channels do: a throwing listener closes its channel, never the timer loop.
        peer.close(asError(err))
      }
    }
    // Frames nobody will ever listen for must not hold the close back forever.
    if (this.closed && (this.outbox.length === 0 || (peer.events.count('frame') === 0 && !peer.paused))) {
      peer.close()
      return
    }
    if (this.needDrain && this.outboxBytes < this.highWaterMark && !this.closed) {
      this.needDrain = false
      this.events.emit('drain')
    }
  }
}
