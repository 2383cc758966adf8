/**
 * The receiving half of a session: frames that must be handled in arrival
 * order wait in a short queue (the channel pauses when it fills), Nodes
 * frames go to the log a few at a time, and what the log stored is acked.
 */
import { toHex } from '../core/bytes/bytes.js'
import { sha256 } from '../core/bytes/hash.js'
import { isBound, type WriterKey } from '../core/identity/writer-key.js'
import type { NodeSignature, Refusal, SyncableLog } from '../core/types.js'
import type { Refusals } from './refusals.js'
import type { NodesSignature } from '../gen/hyperemitter/v1/sync_pb.js'
import type { FrameChannel } from '../transport/channel.js'
import type { FrameSender } from './frame-sender.js'
import type { SessionFrame } from './clock-frame.js'
import { ackFrame, isNodeBy, peekNodeSeq, peekNodeWriter } from './protocol.js'
import type { RemoteClock } from './remote-clock.js'
import { storeError } from './session-errors.js'
import type { SessionStats } from './session-options.js'

/** Received frames waiting to be stored before we pause the channel. */
const MAX_QUEUED_FRAMES = 4
/**
 * Nodes frames handed to the log at once: while the db writes one, the log
 * decodes and hashes the next. The log stores them in order, so acks stay
 * in order.
 */
const MAX_STORES_IN_FLIGHT = 3
/** Nodes stored before an Ack goes out even if more frames are queued. */
const ACK_EVERY = 1024

/** What the receiving half needs of the session around it. */
export interface InboundHost {
  readonly closed: boolean
  /** Handles one queued frame; the next waits until it settles. */
  handle(body: SessionFrame): Promise<void>
  fail(err: unknown): void
  /** The channel ended and every frame it delivered was handled. */
  peerEnded(): void
  /** Nodes were stored from the peer. */
  progress(): void
  /** The log refused a writer's nodes of a frame (the rest of the frame was stored). */
  refused(refusal: Refusal): void
}

export class Inbound {
  private queue: SessionFrame[] = []
  private busy = false
  private paused = false
  private pendingAck = 0
  private channelEnded = false
  /** Nodes frames the log is storing, oldest first (they settle in this order). */
  private storing: Promise<void>[] = []
  /** Keys the peer sent, by writer hex (each checked against its writer id). */
  private readonly peerKeys = new Map<string, WriterKey>()

  constructor(
    private readonly log: Pick<SyncableLog, 'addMany'>,
    private readonly channel: FrameChannel,
    private readonly sender: FrameSender,
    private readonly stats: SessionStats,
    private readonly remote: RemoteClock,
    /** The `origin` of what this session stores: its own onChange listener skips those. */
    private readonly origin: unknown,
    private readonly host: InboundHost,
    private readonly refusals: Refusals,
  ) {}

  /** Handling or storing frames, or paused for them: the peer's answers may wait behind ours. */
  get stalled(): boolean {
    return this.busy || this.paused || this.storing.length > 0
  }

  /** Queues a frame to be handled in order. */
  enqueue(body: SessionFrame): void {
    this.queue.push(body)
    if (!this.paused && this.queue.length >= MAX_QUEUED_FRAMES) {
      this.paused = true
      this.channel.pause()
    }
    void this.process()
  }

  /** The channel closed cleanly: frames already delivered are still worth storing. */
  ended(): void {
    this.channelEnded = true
    void this.process()
  }

  /** Drops what is queued (the session closed). */
  clear(): void {
    this.queue = []
  }

  /**
   * Hands a Nodes frame to the log; resolves once fewer than
   * MAX_STORES_IN_FLIGHT frames are being stored.
   */
  async store(received: Uint8Array[], wire: readonly NodesSignature[]): Promise<void> {
    if (received.length === 0) return
    // Writers refused on this connection: their nodes still in flight are dropped unread (and acked).
    const nodes = this.refusals.filter(received, (w) => this.remote.hexOf(w))
    // The peer holds what it sends; recording it first keeps other sessions'
    // relays of the same nodes from being sent back while we store them.
    // Frames carry runs of one writer's nodes: mark once per run, at its highest seq.
    let runWriter: Uint8Array | undefined
    let runSeq = 0
    for (const node of nodes) {
      const seq = peekNodeSeq(node)
      if (seq < 0) continue
      if (runWriter === undefined || !isNodeBy(node, runWriter)) {
        if (runWriter !== undefined) this.remote.mark(this.remote.hexOf(runWriter), runSeq)
        runWriter = peekNodeWriter(node)
        runSeq = 0
      }
      if (seq > runSeq) runSeq = seq
    }
    if (runWriter !== undefined) this.remote.mark(this.remote.hexOf(runWriter), runSeq)
    this.storing.push(
      // Every channel hands the session a frame of its own (see frame-copy.ts
      // and memory.ts): its nodes can go to the log without another copy.
      // Refused writer by writer: one writer's bad branch never stops the others.
      this.log.addMany(nodes, this.origin, { owned: true, signatures: this.withPeerKeys(wire), onRefused: (r) => this.host.refused(r) }).then(
        () => this.onStored(received.length),
        (err) => {
          this.storing.shift()
          if (!this.host.closed) this.host.fail(storeError(err))
        },
      ),
    )
    if (this.storing.length >= MAX_STORES_IN_FLIGHT) await this.storing[0]
  }

  /** Resolves once every Nodes frame handed to the log so far has settled. */
  async allStored(): Promise<void> {
    while (this.storing.length > 0) await this.storing[this.storing.length - 1]
  }

  /** Acks what was stored and not yet acked. */
  flushAck(): void {
    if (this.pendingAck === 0) return
    const count = this.pendingAck
    this.pendingAck = 0
    this.sender.send(ackFrame(count))
  }

  private async process(): Promise<void> {
    if (this.busy) return
    this.busy = true
    try {
      while (!this.host.closed && this.queue.length > 0) {
        const body = this.queue.shift()!
        if (this.paused && this.queue.length < MAX_QUEUED_FRAMES - 1) {
          this.paused = false
          if (!this.channel.closed) this.channel.resume()
        }
        await this.host.handle(body)
      }
      // Frames the peer sent before it ended are still worth storing.
      if (this.channelEnded) await this.allStored()
    } catch (err) {
      this.host.fail(err)
    } finally {
      this.busy = false
    }
    if (this.channelEnded && !this.host.closed && this.queue.length === 0) this.host.peerEnded()
  }

  /**
   * The frame's signatures, each with its writer's key: as sent, or as the
   * peer sent it earlier on this connection (it sends each key once).
   */
  private withPeerKeys(wire: readonly NodesSignature[]): NodeSignature[] {
    return wire.map((s) => {
      const hex = toHex(s.writer)
      if (s.key !== undefined && isBound(sha256, s.key, s.writer)) this.peerKeys.set(hex, s.key)
      const key = this.peerKeys.get(hex)
      return key === undefined ? { writer: s.writer, signature: s.signature } : { writer: s.writer, signature: s.signature, key }
    })
  }

  private onStored(count: number): void {
    this.storing.shift()
    if (this.host.closed) return
    this.stats.nodesReceived += count
    this.pendingAck += count
    if (this.pendingAck >= ACK_EVERY || (this.storing.length === 0 && !this.queue.some((b) => b.case === 'nodes'))) this.flushAck()
    this.host.progress()
  }
}
