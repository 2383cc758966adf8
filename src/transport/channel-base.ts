import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { asError, ChannelEvents, frameTooLarge, type FrameChannelEvents, type SendLimits } from './channel.js'

/** Each held frame counts at least this much against maxQueuedBytes, so floods of empty frames are bounded too. */
const QUEUED_FRAME_OVERHEAD = 64

/** maxQueuedBytes when none is given: 4 x maxFrameSize, at least 1 MiB. */
export function defaultMaxQueuedBytes(maxFrameSize: number): number {
  return Math.max(4 * maxFrameSize, 1024 * 1024)
}

export interface InboxOptions {
  /** Most bytes of frames held at once; over it the channel closes with LIMIT_EXCEEDED. */
  maxQueuedBytes: number
  /**
   * When a close from the peer that arrived behind held frames fires.
   * false: queued behind them as one more of them, so it also waits for
   * resume(); but with no listener and no pause it goes first, since nobody
   * would ever take the frames.
   * true: as soon as no held frame is left, however long that takes (a
   * listener may come later) and without waiting for resume().
   */
  peerCloseWaitsForEveryFrame?: boolean
  /** Bounds on what is queued to the peer (see sendQueued()); none for channels with no send buffer. */
  sendLimits?: SendLimits
}

/**
 * The receive side the socket-like channels share. Frames that arrive while
 * paused, or before any 'frame' listener exists (a peer may speak first,
 * before whoever got the channel has attached one), wait in an inbox and go
 * out in order; a close from the peer waits behind them. A 'frame' listener
 * that throws closes the channel with that error. 'close' fires once.
 *
 * A subclass feeds frames to receive(), reports the peer's close through
 * closeAfterInbox(), tells sendQueued() how much waits to be sent, and
 * tears its transport down in closeTransport().
 */
export abstract class InboxChannel {
  abstract readonly remote: string
  abstract readonly maxFrameSize: number
  closed = false
  protected paused = false
  protected readonly events = new ChannelEvents()
  private readonly maxQueuedBytes: number
  private readonly peerCloseWaitsForEveryFrame: boolean
  private readonly sendLimits: SendLimits | undefined
  /** Reading stopped because the peer does not read what we send. */
  private heldForSend = false
  private stallTimer: ReturnType<typeof setTimeout> | undefined
  private incomingCap: number | undefined
  private inbox: Uint8Array[] = []
  private inboxHead = 0
  private inboxBytes = 0
  private deliveryScheduled = false
  /** Finishes a close from the peer that is waiting behind held frames. */
  private pendingClose: (() => void) | null = null

  constructor(options: InboxOptions) {
    this.maxQueuedBytes = options.maxQueuedBytes
    this.peerCloseWaitsForEveryFrame = options.peerCloseWaitsForEveryFrame ?? false
    this.sendLimits = options.sendLimits
  }

  /** Largest frame taken from the peer now: maxFrameSize unless lowered by setMaxIncomingFrameSize(). */
  get maxIncomingFrameSize(): number {
    return this.incomingCap ?? this.maxFrameSize
  }

  setMaxIncomingFrameSize(bytes: number): void {
    if (!(Number.isInteger(bytes) && bytes >= 0)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `a frame size limit must be a non-negative integer, got ${bytes}`)
    }
    this.incomingCap = Math.min(bytes, this.maxFrameSize)
    this.limitIncoming(this.incomingCap)
  }

  /** Apply a new incoming frame limit to the transport's own parser, where it has one. */
  protected limitIncoming(_bytes: number): void {}

  /** Stop the transport from reading, where it can, while frames are held. */
  protected holdSource(): void {}
  /** Let the transport read again once every held frame is out. */
  protected releaseSource(): void {}
  /** Release the transport; the channel is already marked closed and 'close' follows. */
  protected abstract closeTransport(err: Error | undefined): void

  pause(): void {
    if (this.closed || this.paused) return
    this.paused = true
    this.holdSource()
  }

  resume(): void {
    if (this.closed || !this.paused) return
    this.paused = false
    if (this.holding || this.pendingClose !== null) this.scheduleDelivery()
    else if (!this.heldForSend) this.releaseSource()
  }

  close(err?: Error): void {
    if (this.closed) return
    this.closed = true
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer)
    this.inbox = []
    this.inboxHead = 0
    this.inboxBytes = 0
    this.closeTransport(err)
    this.events.emit('close', err)
  }

  on<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void {
    this.events.on(event, listener)
    // Frames that arrived before anyone listened go out now, asynchronously.
    if (event === 'frame' && !this.paused && !this.closed && this.holding) this.scheduleDelivery()
  }

  off<E extends keyof FrameChannelEvents>(event: E, listener: FrameChannelEvents[E]): void {
    this.events.off(event, listener)
    // A close held back for listeners that are now gone must not wait forever.
    const pending = this.pendingClose
    if (event !== 'frame' || pending === null || this.peerCloseWaitsForEveryFrame) return
    if (this.events.count('frame') === 0 && !this.paused && !this.closed) pending()
  }

  private get holding(): boolean {
    return this.inboxHead < this.inbox.length
  }

  /**
   * The subclass reports the bytes queued to the peer (each frame at its cost in memory) after each send and
   * as they drain: over pauseAbove we stop reading; over maxBufferedBytes, or stopped for stallTimeout, LIMIT_EXCEEDED.
   */
  protected sendQueued(queued: number): void {
    const limits = this.sendLimits
    if (limits === undefined || this.closed) return
    if (queued > limits.maxBufferedBytes) {
      // Not from inside the caller's send(): it gets its answer, then 'close' follows.
      queueMicrotask(() => this.close(this.limitError(`more than maxBufferedBytes (${limits.maxBufferedBytes}) queued to ${this.remote}`, { maxBufferedBytes: limits.maxBufferedBytes })))
      return
    }
    if (queued > limits.pauseAbove && !this.heldForSend) {
      this.heldForSend = true
      this.holdSource()
      this.stallTimer = setTimeout(this.onStall, limits.stallTimeout)
    } else if (queued < limits.highWaterMark && this.heldForSend) {
      this.heldForSend = false
      clearTimeout(this.stallTimer)
      this.stallTimer = undefined
      if (!this.paused && !this.holding) this.releaseSource()
    }
  }

  private readonly onStall = (): void => {
    const stallTimeout = this.sendLimits!.stallTimeout
    this.close(this.limitError(`${this.remote} left what was queued to it unread for ${stallTimeout} ms`, { stallTimeout }))
  }

  private limitError(message: string, details: Record<string, unknown>): HyperEmitterError {
    return new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, message, { details })
  }

  /** One whole frame from the peer: refused when oversize, else delivered now or held. */
  protected receive(frame: Uint8Array): void {
    if (this.closed) return
    // TCP's decoder already refused an oversize length before buffering its body; whole-message transports can only refuse here.
    const max = this.maxIncomingFrameSize
    if (frame.byteLength > max) {
      this.close(frameTooLarge(frame.byteLength, max))
      return
    }
    if (this.paused || this.events.count('frame') === 0 || this.holding) {
      this.holdSource()
      this.inboxBytes += Math.max(frame.byteLength, QUEUED_FRAME_OVERHEAD)
      if (this.inboxBytes > this.maxQueuedBytes) {
        this.close(
          this.limitError(`more than maxQueuedBytes (${this.maxQueuedBytes}) arrived from ${this.remote} while paused`, {
            maxQueuedBytes: this.maxQueuedBytes,
          }),
        )
        return
      }
      this.inbox.push(frame)
      return
    }
    this.deliver(frame)
  }

  /** The peer closed: `finish` closes the channel, now or once the held frames are out (see InboxOptions). */
  protected closeAfterInbox(finish: () => void): void {
    if (this.holding && (this.paused || this.events.count('frame') > 0 || this.peerCloseWaitsForEveryFrame)) {
      this.pendingClose = finish
      return
    }
    finish()
  }

  private deliver(frame: Uint8Array): void {
    try {
      this.events.emit('frame', frame)
    } catch (err) {
      this.close(asError(err))
    }
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled) return
    this.deliveryScheduled = true
    queueMicrotask(this.drainInbox)
  }

  /** Deliver held frames; the source stays held until they are all out, keeping order. */
  private readonly drainInbox = (): void => {
    this.deliveryScheduled = false
    while (!this.closed && !this.paused && this.events.count('frame') > 0 && this.holding) {
      const frame = this.inbox[this.inboxHead]
      this.inbox[this.inboxHead++] = EMPTY
      this.inboxBytes -= Math.max(frame.byteLength, QUEUED_FRAME_OVERHEAD)
      this.deliver(frame)
    }
    if (this.closed || this.holding) return
    this.inbox = []
    this.inboxHead = 0
    this.inboxBytes = 0
    const pending = this.pendingClose
    if (pending !== null && (!this.paused || this.peerCloseWaitsForEveryFrame)) pending()
    else if (!this.paused && !this.heldForSend) this.releaseSource()
  }
}

const EMPTY = new Uint8Array(0)
