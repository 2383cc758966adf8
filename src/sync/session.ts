/**
 * One replication session: one log, one frame channel, both directions.
 *
 *   Handshake -> (authenticate) -> Clock -> catch-up Nodes... -> Synced -> live Nodes...
 *
 * Each side sends exactly what the other's clock says it lacks, then (in live
 * mode) what it learns later, never echoing a node back to the peer it came
 * from. The session routes frames and owns the lifecycle; its collaborators
 * do the work: PeerProof (handshake.ts), Inbound (receive, store, ack),
 * Outbound (catch-up, live, sending), KeepAlive, and closeWhenFlushed (linger.ts).
 */
import { ErrorCodes, HyperEmitterError, isHyperEmitterError } from '../core/errors.js'
import { TypedEmitter } from '../core/emitter/typed-emitter.js'
import type { Refusal, SyncableLog } from '../core/types.js'
import { equalBytes, toHex } from '../core/bytes/bytes.js'
import { Refusals } from './refusals.js'
import type { FrameChannel } from '../transport/channel.js'
import { FrameSender } from './frame-sender.js'
import { PeerProof } from './handshake.js'
import { Inbound } from './inbound.js'
import { KeepAlive } from './keep-alive.js'
import { closeWhenFlushed } from './linger.js'
import { Outbound } from './outbound.js'
import { clockFrameLimit, readClockFrame, TAG_CLOCK, WireClock, type SessionFrame } from './clock-frame.js'
import { clockFrame, decodeFrame, errorCodeFromWire, errorFrame, pongFrame, refusedFrame, safeNumber, truncate, type FrameOf } from './protocol.js'
import { RemoteClock } from './remote-clock.js'
import { asSessionError, protocolError } from './session-errors.js'
import { sessionLimits, type SessionEvents, type SessionOptions, type SessionStats } from './session-options.js'

export {
  DEFAULT_KEEP_ALIVE_INTERVAL,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_LIVE_QUEUE,
  type SessionEvents,
  type SessionOptions,
  type SessionStats,
  type VerifiedPeer,
} from './session-options.js'

/**
 * Replicates `log` over `channel` until closed. Call start() once; listen to
 * 'close' (or await `synced`) for the outcome. Never throws out of the
 * channel's callbacks: every failure becomes the session's close error.
 */
export class SyncSession extends TypedEmitter<SessionEvents> {
  /** Resolves when both directions of the first catch-up finished; rejects if the session closes first. */
  readonly synced: Promise<void>
  /** Counters since construction (frames and bytes include control frames). */
  readonly stats: SessionStats = {
    nodesSent: 0,
    nodesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
  }

  private readonly log: SyncableLog
  private readonly channel: FrameChannel
  private readonly maxClockWriters: number
  private readonly sender: FrameSender
  private readonly proof: PeerProof
  private readonly inbound: Inbound
  private readonly outbound: Outbound
  private readonly keepAlive: KeepAlive
  private readonly refusals = new Refusals()

  private started = false
  private closed = false
  /** Why the session closed, once it closed with an error. */
  private closeError: Error | undefined
  /** Effective mode, known once the remote's handshake is in: both sides must want live. */
  private live = false
  /** Finishes the closing linger at once (the peer hung up first). */
  private lingerDone?: () => void

  private resolveSynced!: () => void
  private rejectSynced!: (err: Error) => void
  private syncedSettled = false
  private sentSynced = false
  private gotSynced = false
  private handshakeSeen = false
  private clockSent = false
  private gotClock = false
  // A Clock arrived (handled or not); we lowered the channel's frame limit until one does.
  private clockReceived = false
  private clockLimited = false

  /** Wires the session to `channel`; throws INVALID_ARGUMENT for a bad option. Nothing is sent until start(). */
  constructor(log: SyncableLog, channel: FrameChannel, options: SessionOptions = {}) {
    super()
    this.log = log
    this.channel = channel
    const limits = sessionLimits(options, channel.maxFrameSize)
    this.maxClockWriters = limits.maxClockWriters
    // The collaborators see the session only through this: its state, and the few calls back they need.
    const session = this
    const host = {
      get closed() {
        return session.closed
      },
      get failed() {
        return session.closeError !== undefined
      },
      get stalled() {
        return session.inbound.stalled
      },
      remote: channel.remote,
      send: (frame: Uint8Array) => this.sender.send(frame),
      fail: (err: unknown) => this.fail(err),
      handle: (body: SessionFrame) => this.handle(body),
      peerEnded: () => this.finishAfterPeerEnded(),
      progress: () => this.emit('progress', { received: this.stats.nodesReceived, sent: this.stats.nodesSent }),
      caughtUp: () => {
        this.sentSynced = true
        this.checkSynced()
      },
      acked: () => this.maybeFinishOneShot(),
      refused: (r: Refusal) => this.onRefused(r),
    }
    const remote = new RemoteClock()
    this.sender = new FrameSender(channel, this.stats)
    this.proof = new PeerProof(log, host, options)
    this.inbound = new Inbound(log, channel, this.sender, this.stats, remote, this, host, this.refusals)
    this.outbound = new Outbound(log, channel, this.sender, this.stats, remote, limits, this, host)
    this.keepAlive = new KeepAlive(limits.keepAliveInterval, this.stats, this.sender, host)
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve
      this.rejectSynced = reject
    })
    // Callers who only listen to 'close' must not see an unhandled rejection.
    this.synced.catch(() => {})
    channel.on('frame', this.onFrame)
    channel.on('drain', this.outbound.onDrain)
    channel.on('close', this.onChannelClose)
    // Hold the peer's frames until start(): its Handshake must not be answered before ours is out.
    channel.pause()
  }

  /** The remote's writer id (hex), once it proved its key and was accepted. */
  get remoteWriter(): string | undefined {
    return this.proof.remoteWriter
  }

  /** The remote's Ed25519 public key (hex), once it proved it and was accepted. */
  get remoteKey(): string | undefined {
    return this.proof.remoteKey
  }

  /** Sends our Handshake and runs the protocol; calling it again does nothing. */
  start(): void {
    if (this.started || this.closed) return
    this.started = true
    if (this.channel.closed) {
      this.shutdown(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `channel to ${this.channel.remote} is already closed`))
      return
    }
    try {
      this.sender.send(this.proof.handshakeFrame(this.channel.maxFrameSize))
    } catch (err) {
      this.fail(err)
      return
    }
    this.keepAlive.start()
    this.channel.resume()
  }

  /**
   * Ends the session at once (no more frames handled or sent, `synced`
   * rejects if pending) and closes the channel after our queued frames leave
   * it (bounded); 'close' fires when that is done. Idempotent.
   */
  close(err?: Error): void {
    this.shutdown(err)
  }

  // ---- routing ---------------------------------------------------------------

  private readonly onFrame = (bytes: Uint8Array): void => {
    try {
      this.receive(bytes)
    } catch (err) {
      this.fail(err)
    }
  }

  private receive(bytes: Uint8Array): void {
    if (this.closed) return
    this.stats.framesReceived++
    this.stats.bytesReceived += bytes.byteLength
    this.keepAlive.heard()
    const decoded = bytes[0] === TAG_CLOCK ? this.readClock(bytes) : decodeFrame(bytes, this.maxClockWriters)
    // A Clock behind other fields would escape readClockFrame's bounds; no encoder writes one.
    if (decoded.case === 'clock' && !(decoded.value instanceof WireClock)) throw protocolError('clock frame with fields before its clock')
    const body = decoded as SessionFrame
    if (!this.handshakeSeen) {
      if (body.case !== 'handshake') throw protocolError(`expected a handshake first, got ${body.case}`)
      this.handshakeSeen = true
      this.inbound.enqueue(body)
      return
    }
    switch (body.case) {
      case 'handshake':
        throw protocolError('second handshake')
      case 'error':
        this.shutdown(
          new HyperEmitterError(
            errorCodeFromWire(body.value.code),
            `peer reported: ${truncate(body.value.message, 1024)}`,
            { details: { remoteCode: truncate(body.value.code, 100), remote: this.channel.remote } },
          ),
        )
        return
      case 'ping':
        // A peer not (yet) accepted learns nothing, not even that we are alive.
        if (this.proof.accepted) this.sender.send(pongFrame(safeNumber(body.value.nonce, 'ping nonce')))
        return
      case 'pong':
        this.keepAlive.pong()
        return
      case 'ack':
        this.outbound.onAck(safeNumber(body.value.count, 'ack count'))
        return
      case 'refused':
        this.onPeerRefused(body.value)
        return
      default:
        // Clock, Nodes and Synced must be handled strictly in arrival order.
        this.inbound.enqueue(body)
    }
  }

  /** One frame from the inbound queue, in arrival order. */
  private async handle(body: SessionFrame): Promise<void> {
    switch (body.case) {
      case 'handshake':
        this.outbound.peerTakes(body.value.maxFrameSize)
        this.live = await this.proof.onHandshake(body.value)
        return
      case 'identity':
        if (!(await this.proof.onIdentity(body.value))) return
        this.emit('handshake', this.proof.remoteWriter!)
        this.limitUntilClock()
        this.sender.send(clockFrame(this.log.clock(), (hex) => this.log.tipOf?.(hex)))
        this.clockSent = true
        return
      case 'clock':
        if (!this.proof.accepted) throw protocolError('clock before identity')
        if (this.gotClock) throw protocolError('second clock')
        this.gotClock = true
        this.emit('accepted')
        if (this.closed) return
        await this.outbound.start(body.value, this.live)
        return
      case 'nodes':
        if (!this.clockSent) throw protocolError('nodes before our clock was sent')
        if (this.gotSynced && !this.live) throw protocolError('nodes after synced in one-shot mode')
        return this.inbound.store(body.value.nodes, body.value.signatures)
      case 'synced':
        return this.onSynced()
      default:
        throw protocolError(`unexpected ${body.case} frame`)
    }
  }

  // Just accepted (a hub's 'handshake' listener lifted its pre-auth limit): the next frame can only be its Clock.
  private limitUntilClock(): void {
    if (this.clockReceived || this.channel.setMaxIncomingFrameSize === undefined) return
    this.clockLimited = true
    this.channel.setMaxIncomingFrameSize(Math.min(this.channel.maxFrameSize, clockFrameLimit(this.maxClockWriters)))
  }

  // Read on arrival: frames after it may be of any size again.
  private readClock(bytes: Uint8Array): SessionFrame {
    this.clockReceived = true
    if (this.clockLimited) {
      this.clockLimited = false
      this.channel.setMaxIncomingFrameSize?.(this.channel.maxFrameSize)
    }
    return { case: 'clock', value: readClockFrame(bytes, this.maxClockWriters) }
  }

  private async onSynced(): Promise<void> {
    if (!this.clockSent) throw protocolError('synced before our clock was sent')
    if (this.gotSynced) throw protocolError('second synced')
    // Synced covers every node before it: those must be stored first, and
    // only then may our own Synced going out settle `synced`.
    await this.inbound.allStored()
    if (this.closed) return
    this.gotSynced = true
    this.inbound.flushAck()
    this.checkSynced()
  }

  // ---- refusals ----------------------------------------------------------------

  /**
   * Our log refused a writer's nodes from the peer: tell the peer (once per
   * writer on this connection) and keep going. A fork of a writer not ours:
   * the peer gets our branch from the fork. A fork of our own writer,
   * validly signed: a copy of this db wrote the network's branch ('ownFork').
   */
  private onRefused(r: Refusal): void {
    if (this.closed || !this.refusals.refuse(r.writerHex)) return
    const forkSeq = r.error.details?.fork === true && typeof r.error.details.seq === 'number' ? r.error.details.seq : undefined
    this.sender.send(refusedFrame(r.writer, r.seq, r.error.code, r.error.message))
    this.emit('refused', { writer: r.writerHex, seq: r.seq, code: r.error.code, error: r.error, by: 'us', fork: forkSeq !== undefined })
    if (forkSeq === undefined) return
    if (equalBytes(r.writer, this.log.writer)) this.emit('ownFork', forkSeq)
    else this.outbound.resendFrom(r.writerHex, forkSeq - 1)
  }

  /** The peer refused our nodes of a writer: nothing more of it goes there on this connection. */
  private onPeerRefused(refused: FrameOf<'refused'>): void {
    if (refused.writer.byteLength !== this.log.writer.byteLength) throw protocolError(`refused names a writer of ${refused.writer.byteLength} bytes`)
    const seq = safeNumber(refused.seq, 'refused seq')
    const writer = toHex(refused.writer)
    const code = errorCodeFromWire(refused.code)
    const error = new HyperEmitterError(code, `peer refused writer ${writer} from seq ${seq}: ${truncate(refused.message, 1024)}`, {
      details: { writer, seq, remoteCode: truncate(refused.code, 100), remote: this.channel.remote },
    })
    if (!this.outbound.refusedByPeer(writer)) return
    // Whether it was a fork is the peer's to report: its own branch follows if so.
    this.emit('refused', { writer, seq, code, error, by: 'peer', fork: false })
  }

  // ---- completion ----------------------------------------------------------------

  private checkSynced(): void {
    if (this.syncedSettled || !this.sentSynced || !this.gotSynced) return
    this.syncedSettled = true
    this.resolveSynced()
    this.emit('synced')
    this.maybeFinishOneShot()
  }

  /** One-shot mode ends once both catch-ups are done and everything we sent is stored on the other side. */
  private maybeFinishOneShot(): void {
    if (this.live || !this.syncedSettled || this.closed) return
    if (this.outbound.allAcked) this.shutdown()
  }

  private finishAfterPeerEnded(): void {
    if (this.syncedSettled) {
      this.shutdown()
    } else {
      this.shutdown(
        new HyperEmitterError(
          ErrorCodes.CONNECTION_FAILED,
          `connection to ${this.channel.remote} closed before sync completed`,
          { details: { remote: this.channel.remote } },
        ),
      )
    }
  }

  private readonly onChannelClose = (err?: Error): void => {
    if (this.closed) {
      // Lingering for our last frames: the peer hung up first, nothing more will leave.
      this.lingerDone?.()
      return
    }
    if (err) {
      const code = isHyperEmitterError(err) ? err.code : ErrorCodes.CONNECTION_FAILED
      this.shutdown(
        new HyperEmitterError(code, `connection to ${this.channel.remote} failed: ${err.message}`, {
          cause: err,
          details: { remote: this.channel.remote },
        }),
      )
      return
    }
    // Frames already delivered are still worth storing: finish the queue first.
    this.inbound.ended()
  }

  /** Tells the peer why (best effort), then closes with `err`. */
  private fail(err: unknown): void {
    if (this.closed) return
    const error = asSessionError(err)
    try {
      // The peer learns what did get stored before the failure.
      this.inbound.flushAck()
      this.sender.send(errorFrame(error.code, error.message))
    } catch {
      // The channel is gone or refused the frame: the close below still reports the cause.
    }
    this.shutdown(error)
  }

  private shutdown(err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.closeError = err
    this.keepAlive.stop()
    this.outbound.stop()
    this.inbound.clear()
    this.channel.off('frame', this.onFrame)
    this.channel.off('drain', this.outbound.onDrain)
    if (!this.syncedSettled) {
      this.syncedSettled = true
      this.rejectSynced(
        err
          ? new HyperEmitterError(isHyperEmitterError(err) ? err.code : ErrorCodes.CLOSED, `session closed before sync completed: ${err.message}`, { cause: err })
          : new HyperEmitterError(ErrorCodes.CLOSED, 'session closed before sync completed'),
      )
    }
    // 'close' waits for the channel, so whoever awaits it knows nothing of the session is left running.
    this.lingerDone = closeWhenFlushed(
      this.channel,
      () => this.outbound.signing,
      () => {
        this.lingerDone = undefined
        this.channel.off('close', this.onChannelClose)
        if (err) this.emit('error', err)
        this.emit('close', err)
      },
    )
  }
}
