/**
 * The sending half of a session: a catch-up read of what the peer's Clock
 * lacks, then (live) what the log commits later, as signed Nodes frames.
 * Sends stop at `maxInFlight` unacked nodes and at the channel's mark.
 */
import { ErrorCodes, HyperEmitterError, isHyperEmitterError } from '../core/errors.js'
import { fromHex, toHex } from '../core/bytes/bytes.js'
import type { LogEntry, NodeSignature, SyncableLog } from '../core/types.js'
import type { FrameChannel } from '../transport/channel.js'
import { FrameBuilder } from './frame-builder.js'
import type { FrameSender } from './frame-sender.js'
import type { WireClock } from './clock-frame.js'
import { encodeSignature, nodesFrame, syncedFrame } from './protocol.js'
import { divergedWriters } from './tips.js'
import type { RemoteClock } from './remote-clock.js'
import { protocolError } from './session-errors.js'
import type { SessionLimits, SessionStats } from './session-options.js'

/** What the sending half needs of the session around it. */
export interface OutboundHost {
  readonly closed: boolean
  /** Closed with an error: frames still being signed are dropped. */
  readonly failed: boolean
  fail(err: unknown): void
  /** The first catch-up is sent, Synced included. */
  caughtUp(): void
  /** The peer acked nodes. */
  acked(): void
  /** Nodes were sent. */
  progress(): void
}

type OutboundLog = Pick<SyncableLog, 'writer' | 'clock' | 'readMissingPages' | 'signaturesFor' | 'onChange' | 'tipOf' | 'keyAt'>

export class Outbound {
  private nodesAcked = 0
  private catchUp?: AsyncIterator<LogEntry[]>
  /** The catch-up page being sent, and the next entry of it to look at. */
  private catchUpPage: LogEntry[] = []
  private catchUpAt = 0
  private catchUpIsInitial = false
  private catchUpCount = 0
  /** Entries cut off the last frame (it had to end where every writer's last node is signed): sent first next. */
  private carry: LogEntry[] = []
  /** Writers whose key this session has sent: every writer it sent nodes of. */
  private readonly keysSent = new Set<string>()
  /** Writers the peer refused. */
  private readonly refusedWriters = new Set<string>()
  private liveQueue: LogEntry[] = []
  private refetch = false
  private pumping = false
  private unsubscribe?: () => void
  /** Frames being signed: a clean close lets them leave first. */
  private signingFrames = 0
  private ownHex?: string
  // The largest frame the peer's Handshake said it takes.
  private peerMaxFrameSize = Infinity
  /** The peer's Clock came: catch-up reads follow the remote clock from then on. */
  private started = false

  constructor(
    private readonly log: OutboundLog,
    private readonly channel: FrameChannel,
    private readonly sender: FrameSender,
    private readonly stats: SessionStats,
    private readonly remote: RemoteClock,
    private readonly limits: Pick<SessionLimits, 'maxFrameBytes' | 'maxInFlight' | 'maxLiveQueue'>,
    /** The `origin` of what this session stores: never echoed back to the peer. */
    private readonly origin: unknown,
    private readonly host: OutboundHost,
  ) {}

  /** Frames are being signed: a clean close waits for them. */
  get signing(): boolean {
    return this.signingFrames > 0
  }

  /** Everything sent was acked: the peer stored it. */
  get allAcked(): boolean {
    return this.nodesAcked === this.stats.nodesSent
  }

  /** The peer takes frames of at most `bytes` (0: not said). */
  peerTakes(bytes: number): void {
    if (bytes > 0) this.peerMaxFrameSize = bytes
  }

  /**
   * The peer's Clock: starts the first catch-up, and in live mode follows
   * the log. A writer whose tip there is not our node at that seq (a fork)
   * is sent from its start: the peer skips what it holds and refuses the
   * first node that differs, which names the fork exactly.
   */
  async start(clock: WireClock, live: boolean): Promise<void> {
    this.started = true
    // Only writers we hold: we have nothing of the others to send.
    const seqs = clock.filter(this.log.clock())
    for (const [writer, seq] of seqs) this.remote.mark(writer, seq)
    const log = this.log
    if (log.tipOf !== undefined && log.keyAt !== undefined) {
      const source = { clock: () => log.clock(), tipOf: (hex: string) => log.tipOf!(hex), keyAt: (w: Uint8Array, s: number) => log.keyAt!(w, s) }
      for (const hex of await divergedWriters(source, seqs, clock.tips(seqs), fromHex)) this.remote.lower(hex, 0)
      if (this.host.closed) return
    }
    // Subscribe before the snapshot: anything committed from here on is either
    // in the catch-up read or in the live queue (deduped by the remote clock).
    if (live) this.unsubscribe = this.log.onChange(this.onLogChange)
    this.startCatchUp()
    this.catchUpIsInitial = true
    this.pump()
  }

  /**
   * The peer refused `writerHex` (a Refused frame): nothing more of it goes
   * to this peer. False when we never sent it that writer, or it was
   * refused already (a peer's word on anything else is ignored).
   */
  refusedByPeer(writerHex: string): boolean {
    if (!this.keysSent.has(writerHex) || this.refusedWriters.has(writerHex)) return false
    this.refusedWriters.add(writerHex)
    this.remote.refuse(writerHex)
    return true
  }

  /**
   * We refused the peer's branch of `writerHex` after `seq` (a fork): it
   * gets ours from there, so the copy that wrote the other branch sees the
   * fork for itself.
   */
  resendFrom(writerHex: string, seq: number): void {
    this.remote.lower(writerHex, seq)
    // Before the peer's Clock, the first catch-up reads it from there anyway.
    if (!this.started) return
    this.refetch = true
    this.pump()
  }

  onAck(count: number): void {
    if (count > this.stats.nodesSent - this.nodesAcked) {
      throw protocolError(`ack of ${count} nodes, only ${this.stats.nodesSent - this.nodesAcked} unacked`)
    }
    this.nodesAcked += count
    this.host.acked()
    this.pump()
  }

  readonly onDrain = (): void => {
    this.sender.drained()
    this.pump()
  }

  /** Stops following the log and drops what is queued (the session closed). */
  stop(): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
    const iterator = this.catchUp
    this.catchUp = undefined
    this.catchUpPage = []
    this.carry = []
    this.liveQueue = []
    // Release the log's read (a db iterator, typically).
    if (iterator?.return) iterator.return().catch(() => {})
  }

  private readonly onLogChange = (entries: LogEntry[], origin: unknown): void => {
    // Nodes this session stored came from the peer: never echo them.
    if (this.host.closed || origin === this.origin) return
    for (const entry of entries) this.liveQueue.push(entry)
    if (this.liveQueue.length > this.limits.maxLiveQueue) {
      // Stop holding entries in memory; the log still has them.
      this.liveQueue = []
      this.refetch = true
    }
    this.pump()
  }

  private pump(): void {
    if (this.pumping || this.host.closed) return
    void this.runPump()
  }

  private async runPump(): Promise<void> {
    this.pumping = true
    try {
      while (!this.host.closed && !this.channel.closed) {
        if (!this.sender.writable || this.stats.nodesSent - this.nodesAcked >= this.limits.maxInFlight) return
        if (this.catchUp) {
          const done = await this.sendFromCatchUp(this.catchUp)
          if (this.host.closed) return
          if (done) {
            this.catchUp = undefined
            if (this.catchUpIsInitial) {
              this.catchUpIsInitial = false
              this.sender.send(syncedFrame(this.catchUpCount))
              this.host.caughtUp()
            }
          }
          continue
        }
        if (this.refetch) {
          this.refetch = false
          this.liveQueue = []
          this.startCatchUp()
          continue
        }
        if (this.liveQueue.length > 0 || this.carry.length > 0) {
          await this.sendFromLiveQueue()
          continue
        }
        return
      }
    } catch (err) {
      this.host.fail(
        new HyperEmitterError(
          isHyperEmitterError(err) ? err.code : ErrorCodes.STORAGE_FAILED,
          `sending to ${this.channel.remote} failed: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        ),
      )
    } finally {
      this.pumping = false
    }
  }

  /** Reads what the peer lacks from the log, from now. */
  private startCatchUp(): void {
    this.catchUp = this.log.readMissingPages(new Map(this.remote.seqs))[Symbol.asyncIterator]()
    this.catchUpPage = []
    this.catchUpAt = 0
  }

  /** Sends one frame from the catch-up iterator; true when it is exhausted. */
  private async sendFromCatchUp(iterator: AsyncIterator<LogEntry[]>): Promise<boolean> {
    const frame = this.newFrame()
    let done = false
    for (;;) {
      let entry = this.nextCarried()
      if (entry === undefined) {
        if (this.catchUpAt >= this.catchUpPage.length) {
          const result = await iterator.next()
          if (this.host.closed) return true
          if (result.done) {
            done = true
            break
          }
          this.catchUpPage = result.value
          this.catchUpAt = 0
          continue
        }
        entry = this.catchUpPage[this.catchUpAt++]
      }
      if (this.remote.has(entry)) continue
      if (!frame.offer(entry)) {
        this.carry.unshift(entry)
        break
      }
    }
    await this.sendFrame(frame, done, this.catchUpIsInitial)
    return done && this.carry.length === 0
  }

  private async sendFromLiveQueue(): Promise<void> {
    const frame = this.newFrame()
    let taken = 0
    for (;;) {
      let entry = this.nextCarried()
      if (entry === undefined) {
        if (taken >= this.liveQueue.length) break
        entry = this.liveQueue[taken++]
      }
      if (this.remote.has(entry)) continue
      if (!frame.offer(entry)) {
        this.carry.unshift(entry)
        break
      }
    }
    this.liveQueue = taken === this.liveQueue.length ? [] : this.liveQueue.slice(taken)
    await this.sendFrame(frame, this.liveQueue.length === 0, false)
  }

  /** An empty frame sized by the options, the in-flight budget and the channel. */
  private newFrame(): FrameBuilder {
    const budget = this.limits.maxInFlight - (this.stats.nodesSent - this.nodesAcked)
    this.ownHex ??= toHex(this.log.writer)
    const hard = Math.min(this.channel.maxFrameSize, this.peerMaxFrameSize) - 1
    return new FrameBuilder(this.ownHex, Math.min(this.limits.maxFrameBytes, hard), Math.max(1, budget), hard, (w) => this.remote.hexOf(w))
  }

  /** The next entry cut off the frame before, if any. */
  private nextCarried(): LogEntry | undefined {
    return this.carry.length > 0 ? this.carry.shift() : undefined
  }

  /**
   * Sends the frame's entries up to a clean end (all of them when `last`),
   * with one signature per writer; what is cut off goes first next time.
   */
  private async sendFrame(frame: FrameBuilder, last: boolean, initial: boolean): Promise<void> {
    const { send, rest } = frame.split(last)
    if (rest.length > 0) this.carry = rest.concat(this.carry)
    if (send.length === 0) return
    // A clean close waits for this frame (see closeWhenFlushed): what was
    // committed before close() still leaves, as it did when frames went out unsigned.
    this.signingFrames++
    let signatures: NodeSignature[]
    try {
      signatures = await this.log.signaturesFor(send, (hex) => !this.keysSent.has(hex))
    } finally {
      this.signingFrames--
    }
    if (this.channel.closed || this.host.failed) return
    for (const s of signatures) if (s.key !== undefined) this.keysSent.add(this.remote.hexOf(s.writer))
    for (const entry of send) this.remote.mark(this.remote.hexOf(entry.writer), entry.seq)
    if (initial) this.catchUpCount += send.length
    this.stats.nodesSent += send.length
    this.sender.send(nodesFrame(send.map((e) => e.bytes), signatures.map(encodeSignature)))
    this.host.progress()
  }
}
