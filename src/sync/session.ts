/**
 * One replication session: one log, one frame channel, both directions.
 *
 *   Handshake -> (authenticate) -> Clock -> catch-up Nodes... -> Synced -> live Nodes...
 *
 * Each side sends exactly what the other's clock says it lacks, then (in live
 * mode) what it learns later, never echoing a node back to the peer it came
 * from. Received Nodes frames are stored one at a time, in order, and acked;
 * a sender keeps at most `maxInFlight` nodes unacked and stops at the
 * channel's high-water mark, so every queue here is bounded.
 */
import { ErrorCodes, HyperEmitterError, isHyperEmitterError, type ErrorCode } from '../core/errors.js'
import { TypedEmitter } from '../core/emitter/typed-emitter.js'
import type { Clock, LogEntry, NodeSignature, SyncableLog } from '../core/types.js'
import type { FrameChannel } from '../transport/channel.js'
import { equalBytes, toHex } from '../core/bytes/bytes.js'
import { sha256 } from '../core/bytes/hash.js'
import { PUBLIC_KEY_BYTES } from '../core/identity/ed25519.js'
import { CHAIN_BYTES, CHALLENGE_BYTES, handshakeMessage, isBound, type WriterKey, writerIdOf } from '../core/identity/writer-key.js'
import type { NodesSignature } from '../gen/hyperemitter/v1/sync_pb.js'
import { FrameBuilder } from './frame-builder.js'
import {
  ackFrame,
  clockFrame,
  clockFromWire,
  decodeFrame,
  DEFAULT_MAX_CLOCK_WRITERS,
  encodeSignature,
  errorCodeFromWire,
  errorFrame,
  handshakeFrame,
  identityFrame,
  nodesFrame,
  nodesFrameSize,
  nodeWireSize,
  isNodeBy,
  peekNodeSeq,
  peekNodeWriter,
  pingFrame,
  pongFrame,
  PROTOCOL_VERSION,
  safeNumber,
  syncedFrame,
  truncate,
  type FrameBody,
  type FrameOf,
} from './protocol.js'

export interface SessionOptions {
  /** Keep streaming new nodes after catch-up (default true); false on either side: one catch-up, then close. */
  live?: boolean
  /** Credentials sent in our Identity, for the peer's authenticate hook. */
  token?: string
  /**
   * Called once the remote proved its key, before anything of the log is
   * sent: `writer` and `publicKey` (hex) are verified. False or a throw
   * refuses the peer (UNAUTHORIZED on both ends).
   */
  authenticate?: (peer: VerifiedPeer) => boolean | Promise<boolean>
  /**
   * This side accepted the connection (a hub): it sends its own Identity
   * (its writer id, its key) only after `authenticate` accepted the peer's.
   * Default false; two accepting sides would wait for each other forever.
   */
  accepting?: boolean
  /** Largest Nodes frame we build, in bytes (default 64 KiB, capped below the channel's maxFrameSize). */
  maxBatchBytes?: number
  /** Nodes sent and not yet acked before we stop reading the log (default 8192). */
  maxInFlight?: number
  /** Live entries queued in memory before we drop them and re-read from the log instead (default 16384: about 4 MB for a peer that lags). */
  maxLiveQueue?: number
  /** ms between Pings when nothing arrives (default 15000; 0 disables); no answer within 2 intervals closes with TIMEOUT. */
  keepAliveInterval?: number
  /** Most writers the peer's Clock may name (default 65536); more: LIMIT_EXCEEDED. */
  maxClockWriters?: number
}

/** What a session knows of its peer once the peer proved its key. */
export interface VerifiedPeer {
  /** The writer id (hex), bound to `publicKey`. */
  writer: string
  /** The peer's Ed25519 public key (hex): proven by a signature over our fresh challenge. */
  publicKey: string
  /** The token from its Identity ('' when none). */
  token: string
  remote: string
}

export interface SessionStats {
  nodesSent: number
  nodesReceived: number
  framesSent: number
  framesReceived: number
  bytesSent: number
  bytesReceived: number
}

export interface SessionEvents {
  [event: string]: (...args: any[]) => void
  /** The remote proved its key and was accepted; its writer id in hex. */
  handshake: (writer: string) => void
  /** The remote's Clock arrived: it accepted our handshake too (it sends its Clock only after its own checks). */
  accepted: () => void
  /** Nodes stored from the peer / sent to it so far. */
  progress: (progress: { received: number; sent: number }) => void
  /** Both directions of the first catch-up finished. */
  synced: () => void
  /** The peer holds this log's own writer's nodes through `seq`, stored (see SyncSession.storedByPeer). */
  stored: (seq: number) => void
  /** The session ended; `err` says why unless it was a clean close. Fires once. */
  close: (err?: Error) => void
  /** The error the session is closing with, just before 'close'. */
  error: (err: Error) => void
}

/** Default largest Nodes frame: 64 KiB (~600 Hello-sized nodes). */
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1024
/** Default nodes sent and not yet acked. */
export const DEFAULT_MAX_IN_FLIGHT = 8192
/** Default live entries held in memory before falling back to reading the log. */
export const DEFAULT_MAX_LIVE_QUEUE = 16384
/** Default ms between keep-alive Pings on an idle session. */
export const DEFAULT_KEEP_ALIVE_INTERVAL = 15_000

/** Received frames waiting to be stored before we pause the channel. */
const MAX_QUEUED_FRAMES = 4
/**
 * Nodes frames handed to the log at once: while the db writes one, the log
 * decodes and hashes the next (measured ~1.4x the rate of one at a time).
 * The log stores them in order, so acks stay in order.
 */
const MAX_STORES_IN_FLIGHT = 3
/** Nodes stored before an Ack goes out even if more frames are queued. */
const ACK_EVERY = 1024
/** How long close() waits for our last frames (an Error, Acks) to leave. */
const LINGER_MS = 2000
const LINGER_POLL_MS = 5

/** Codes the log raises for a bad node: the peer is told, and the session ends with them. */
const NODE_ERROR_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCodes.INVALID_NODE,
  ErrorCodes.CHECKSUM_MISMATCH,
  ErrorCodes.MISSING_LINK,
  ErrorCodes.SEQ_MISMATCH,
])

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
  private readonly wantLive: boolean
  private readonly token: string
  private readonly authenticate?: SessionOptions['authenticate']
  private readonly accepting: boolean
  /** Our fresh challenge, which the peer's Identity must sign, and the peer's. */
  private readonly challenge = crypto.getRandomValues(new Uint8Array(CHALLENGE_BYTES))
  private peerChallenge?: Uint8Array
  private identitySent = false
  private gotIdentity = false
  /** The peer's Identity was verified and authenticated: only now does anything of the log leave, and Pings get Pongs. */
  private peerAccepted = false
  private remoteKeyHex?: string
  private readonly maxFrameBytes: number
  private readonly maxInFlight: number
  private readonly maxLiveQueue: number
  private readonly keepAliveInterval: number
  private readonly maxClockWriters: number

  private started = false
  private closed = false
  /** Why the session closed, once it closed with an error. */
  private closeError: Error | undefined
  /** Frames being signed: a clean close lets them leave first. */
  private signing = 0
  private remoteWriterHex?: string
  /** Effective mode, known once the remote's handshake is in: both sides must want live. */
  private live = false

  private resolveSynced!: () => void
  private rejectSynced!: (err: Error) => void
  private syncedSettled = false
  private sentSynced = false
  private gotSynced = false

  // Inbound: frames after the handshake that must be handled in order.
  private handshakeSeen = false
  private clockSent = false
  private inbound: FrameBody[] = []
  private inboundBusy = false
  private pausedForInbound = false
  private pendingAck = 0
  private channelEnded = false
  /** Nodes frames the log is storing, oldest first (they settle in this order). */
  private storing: Promise<void>[] = []

  // Outbound.
  /** writer hex -> highest seq the remote is known to hold. */
  private readonly remoteClock: Clock = new Map()
  private gotClock = false
  private writable = true
  private nodesAcked = 0
  /**
   * Our writer's seq the peer will hold once it acked each Nodes frame that
   * carried our nodes, as [nodesSent after that frame, seq] pairs, oldest
   * first from ownSentHead: at most one per unacked frame (see storedByPeer).
   */
  private ownSent: number[] = []
  private ownSentHead = 0
  private ownStored = 0
  private ownHex?: string
  private catchUp?: AsyncIterator<LogEntry[]>
  /** The catch-up page being sent, and the next entry of it to look at. */
  private catchUpPage: LogEntry[] = []
  private catchUpAt = 0
  private catchUpIsInitial = false
  private catchUpCount = 0
  /** Entries cut off the last frame (it had to end where every writer's last node is signed): sent first next. */
  private carry: LogEntry[] = []
  /** Writers whose key this session has sent, and keys the peer sent (checked against their writer ids). */
  private readonly keysSent = new Set<string>()
  private readonly peerKeys = new Map<string, WriterKey>()
  private liveQueue: LogEntry[] = []
  private refetch = false
  private pumping = false
  private unsubscribe?: () => void

  // Keep-alive.
  private keepAliveTimer?: ReturnType<typeof setInterval>
  private lingerTimer?: ReturnType<typeof setTimeout>
  private lingerDone?: () => void
  private framesAtTick = 0
  private pingOutstanding = false
  private missedTicks = 0
  private pingNonce = 0
  private pongsReceived = 0

  // Writer hex cache: consecutive entries usually share a writer.
  private lastWriter?: Uint8Array
  private lastWriterHex = ''

  /** Wires the session to `channel`; throws INVALID_ARGUMENT for a bad option. Nothing is sent until start(). */
  constructor(log: SyncableLog, channel: FrameChannel, options: SessionOptions = {}) {
    super()
    this.log = log
    this.channel = channel
    this.wantLive = options.live ?? true
    this.token = options.token ?? ''
    this.authenticate = options.authenticate
    this.accepting = options.accepting === true
    const maxBatchBytes = positiveInt(options.maxBatchBytes, DEFAULT_MAX_BATCH_BYTES, 'maxBatchBytes')
    // The frame must fit the channel whatever the option says.
    this.maxFrameBytes = Math.max(1, Math.min(maxBatchBytes, channel.maxFrameSize - 1))
    this.maxInFlight = positiveInt(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 'maxInFlight')
    this.maxLiveQueue = positiveInt(options.maxLiveQueue, DEFAULT_MAX_LIVE_QUEUE, 'maxLiveQueue')
    this.maxClockWriters = positiveInt(options.maxClockWriters, DEFAULT_MAX_CLOCK_WRITERS, 'maxClockWriters')
    const keepAlive = options.keepAliveInterval ?? DEFAULT_KEEP_ALIVE_INTERVAL
    if (!(Number.isFinite(keepAlive) && keepAlive >= 0)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `keepAliveInterval must be >= 0 ms, got ${keepAlive}`, {
        details: { option: 'keepAliveInterval' },
      })
    }
    this.keepAliveInterval = keepAlive
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve
      this.rejectSynced = reject
    })
    // Callers who only listen to 'close' must not see an unhandled rejection.
    this.synced.catch(() => {})
    channel.on('frame', this.onFrame)
    channel.on('drain', this.onDrain)
    channel.on('close', this.onChannelClose)
    // Hold the peer's frames until start(): its Handshake must not be answered before ours is out.
    channel.pause()
  }

  /** The remote's writer id (hex), once it proved its key and was accepted. */
  get remoteWriter(): string | undefined {
    return this.remoteWriterHex
  }

  /** The remote's Ed25519 public key (hex), once it proved it and was accepted. */
  get remoteKey(): string | undefined {
    return this.remoteKeyHex
  }

  /**
   * The highest seq of this log's own writer the peer is known to have
   * stored (every lower one too): what its Clock said, then each Nodes frame
   * of ours it acked (the peer acks only what its log committed, in order).
   * 'stored' fires when it grows. 0 until then.
   */
  get storedByPeer(): number {
    return this.ownStored
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
      this.send(handshakeFrame(this.wantLive, this.challenge))
    } catch (err) {
      this.fail(err)
      return
    }
    if (this.keepAliveInterval > 0) {
      this.keepAliveTimer = setInterval(this.tick, this.keepAliveInterval)
    }
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

  // ---- inbound ---------------------------------------------------------------

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
    // Any frame shows the peer is alive, not only the Pong (which may queue behind Nodes).
    this.pingOutstanding = false
    const body = decodeFrame(bytes, this.maxClockWriters)
    if (!this.handshakeSeen) {
      if (body.case !== 'handshake') throw protocolError(`expected a handshake first, got ${body.case}`)
      this.handshakeSeen = true
      this.enqueue(body)
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
        if (this.peerAccepted) this.send(pongFrame(safeNumber(body.value.nonce, 'ping nonce')))
        return
      case 'pong':
        this.pongsReceived++
        return
      case 'ack':
        this.onAck(safeNumber(body.value.count, 'ack count'))
        return
      default:
        // Clock, Nodes and Synced must be handled strictly in arrival order.
        this.enqueue(body)
    }
  }

  private enqueue(body: FrameBody): void {
    this.inbound.push(body)
    if (!this.pausedForInbound && this.inbound.length >= MAX_QUEUED_FRAMES) {
      this.pausedForInbound = true
      this.channel.pause()
    }
    void this.processInbound()
  }

  private async processInbound(): Promise<void> {
    if (this.inboundBusy) return
    this.inboundBusy = true
    try {
      while (!this.closed && this.inbound.length > 0) {
        const body = this.inbound.shift()!
        if (this.pausedForInbound && this.inbound.length < MAX_QUEUED_FRAMES - 1) {
          this.pausedForInbound = false
          if (!this.channel.closed) this.channel.resume()
        }
        await this.handle(body)
      }
      // Frames the peer sent before it ended are still worth storing.
      if (this.channelEnded) await this.allStored()
    } catch (err) {
      this.fail(err)
    } finally {
      this.inboundBusy = false
    }
    if (this.channelEnded && !this.closed && this.inbound.length === 0) this.finishAfterPeerEnded()
  }

  private async handle(body: FrameBody): Promise<void> {
    switch (body.case) {
      case 'handshake':
        return this.onHandshake(body.value)
      case 'identity':
        return this.onIdentity(body.value)
      case 'clock':
        return this.onClock(body.value)
      case 'nodes':
        return this.onNodes(body.value.nodes, body.value.signatures)
      case 'synced':
        return this.onSynced()
      default:
        throw protocolError(`unexpected ${body.case} frame`)
    }
  }

  private async onHandshake(hs: FrameOf<'handshake'>): Promise<void> {
    if (hs.protocolVersion !== PROTOCOL_VERSION) {
      throw new HyperEmitterError(
        ErrorCodes.VERSION_MISMATCH,
        `peer speaks protocol version ${hs.protocolVersion}, this side speaks version ${PROTOCOL_VERSION}`,
        { details: { local: PROTOCOL_VERSION, remote: hs.protocolVersion } },
      )
    }
    if (hs.challenge.byteLength !== CHALLENGE_BYTES) throw protocolError(`handshake challenge is ${hs.challenge.byteLength} bytes, expected ${CHALLENGE_BYTES}`)
    this.peerChallenge = hs.challenge.slice()
    this.live = this.wantLive && hs.live
    // A dialing side proves itself first; an accepting one waits to have accepted the peer.
    if (!this.accepting) await this.sendIdentity()
  }

  /** Our Identity: our key, signing the peer's challenge. */
  private async sendIdentity(): Promise<void> {
    if (this.identitySent || this.closed) return
    this.identitySent = true
    const signature = await this.log.sign(handshakeMessage(this.peerChallenge!, this.log.writer))
    if (!this.closed) this.send(identityFrame(this.log.writerKey, signature, this.token))
  }

  private async onIdentity(identity: FrameOf<'identity'>): Promise<void> {
    if (this.gotIdentity) throw protocolError('second identity')
    this.gotIdentity = true
    const key = identity.key
    if (key === undefined || key.publicKey.byteLength !== PUBLIC_KEY_BYTES || key.chain.byteLength !== CHAIN_BYTES) {
      throw protocolError('identity without a well-formed key')
    }
    const writerBytes = writerIdOf(sha256, key)
    const writer = toHex(writerBytes)
    if (writer === this.ownWriterHex()) throw protocolError(`connected to self (peer announced our own writer ${writer})`)
    const publicKey = toHex(key.publicKey)
    if (!(await this.log.verifySignature(key.publicKey, handshakeMessage(this.challenge, writerBytes), identity.signature))) {
      throw new HyperEmitterError(ErrorCodes.BAD_SIGNATURE, `peer at ${this.channel.remote} did not prove its key ${publicKey}`, {
        details: { publicKey, remote: this.channel.remote },
      })
    }
    if (this.closed) return
    if (this.authenticate) {
      let accepted = false
      let cause: unknown
      try {
        accepted = (await this.authenticate({ writer, publicKey, token: identity.token, remote: this.channel.remote })) === true
      } catch (err) {
        cause = err
      }
      if (this.closed) return
      if (!accepted) {
        throw new HyperEmitterError(ErrorCodes.UNAUTHORIZED, `peer ${writer} at ${this.channel.remote} was refused`, {
          cause,
          details: { writer, publicKey, remote: this.channel.remote },
        })
      }
    }
    this.peerAccepted = true
    this.remoteWriterHex = writer
    this.remoteKeyHex = publicKey
    await this.sendIdentity()
    if (this.closed) return
    this.emit('handshake', writer)
    this.send(clockFrame(this.log.clock()))
    this.clockSent = true
  }

  private async onClock(clock: FrameOf<'clock'>): Promise<void> {
    if (!this.peerAccepted) throw protocolError('clock before identity')
    if (this.gotClock) throw protocolError('second clock')
    this.gotClock = true
    this.emit('accepted')
    if (this.closed) return
    for (const [writer, seq] of clockFromWire(clock.entries, this.log.writer.byteLength, this.log.clock())) {
      this.markRemote(writer, seq)
    }
    // A log's clock counts committed nodes only: what it says the peer holds, it has stored.
    this.advanceOwnStored(this.remoteClock.get(this.ownWriterHex()) ?? 0)
    if (this.closed) return
    // Subscribe before the snapshot: anything committed from here on is either
    // in the catch-up read or in the live queue (deduped by remoteClock).
    if (this.live) this.unsubscribe = this.log.onChange(this.onLogChange)
    this.startCatchUp()
    this.catchUpIsInitial = true
    this.pump()
  }

  private async onNodes(nodes: Uint8Array[], wire: readonly NodesSignature[]): Promise<void> {
    if (!this.clockSent) throw protocolError('nodes before our clock was sent')
    if (this.gotSynced && !this.live) throw protocolError('nodes after synced in one-shot mode')
    if (nodes.length === 0) return
    // The peer holds what it sends; recording it first keeps other sessions'
    // relays of the same nodes from being sent back while we store them.
    // Frames carry runs of one writer's nodes: mark once per run, at its highest seq.
    let runWriter: Uint8Array | undefined
    let runSeq = 0
    for (const node of nodes) {
      const seq = peekNodeSeq(node)
      if (seq < 0) continue
      if (runWriter === undefined || !isNodeBy(node, runWriter)) {
        if (runWriter !== undefined) this.markRemote(this.writerHex(runWriter), runSeq)
        runWriter = peekNodeWriter(node)
        runSeq = 0
      }
      if (seq > runSeq) runSeq = seq
    }
    if (runWriter !== undefined) this.markRemote(this.writerHex(runWriter), runSeq)
    this.storing.push(
      // Every channel hands the session a frame of its own (see frame-copy.ts
      // and memory.ts): its nodes can go to the log without another copy.
      this.log.addMany(nodes, this, { owned: true, signatures: this.withPeerKeys(wire) }).then(
        () => this.onStored(nodes.length),
        (err) => {
          this.storing.shift()
          if (!this.closed) this.fail(storeError(err))
        },
      ),
    )
    if (this.storing.length >= MAX_STORES_IN_FLIGHT) await this.storing[0]
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
    if (this.closed) return
    this.stats.nodesReceived += count
    this.pendingAck += count
    if (this.pendingAck >= ACK_EVERY || (this.storing.length === 0 && !this.inbound.some((b) => b.case === 'nodes'))) this.flushAck()
    this.emit('progress', { received: this.stats.nodesReceived, sent: this.stats.nodesSent })
  }

  /** Resolves once every Nodes frame handed to the log so far has settled. */
  private async allStored(): Promise<void> {
    while (this.storing.length > 0) await this.storing[this.storing.length - 1]
  }

  private async onSynced(): Promise<void> {
    if (!this.clockSent) throw protocolError('synced before our clock was sent')
    if (this.gotSynced) throw protocolError('second synced')
    this.gotSynced = true
    // Synced covers every node before it: those must be stored first.
    await this.allStored()
    if (this.closed) return
    this.flushAck()
    this.checkSynced()
  }

  private flushAck(): void {
    if (this.pendingAck === 0) return
    const count = this.pendingAck
    this.pendingAck = 0
    this.send(ackFrame(count))
  }

  private onAck(count: number): void {
    if (count > this.stats.nodesSent - this.nodesAcked) {
      throw protocolError(`ack of ${count} nodes, only ${this.stats.nodesSent - this.nodesAcked} unacked`)
    }
    this.nodesAcked += count
    this.ackOwnSent()
    this.maybeFinishOneShot()
    this.pump()
  }

  /** The frames now acked that carried our own nodes: the peer stored those. */
  private ackOwnSent(): void {
    const sent = this.ownSent
    let i = this.ownSentHead
    let seq = 0
    while (i < sent.length && sent[i] <= this.nodesAcked) {
      seq = sent[i + 1]
      i += 2
    }
    if (i === this.ownSentHead) return
    if (i === sent.length) {
      sent.length = 0
      this.ownSentHead = 0
    } else if (i > 64 && i * 2 >= sent.length) {
      this.ownSent = sent.slice(i)
      this.ownSentHead = 0
    } else {
      this.ownSentHead = i
    }
    this.advanceOwnStored(seq)
  }

  private advanceOwnStored(seq: number): void {
    if (seq <= this.ownStored) return
    this.ownStored = seq
    this.emit('stored', seq)
  }

  private ownWriterHex(): string {
    return (this.ownHex ??= toHex(this.log.writer))
  }

  // ---- outbound ----------------------------------------------------------------

  private readonly onDrain = (): void => {
    this.writable = true
    this.pump()
  }

  private readonly onLogChange = (entries: LogEntry[], origin: unknown): void => {
    // Nodes this session stored came from the peer: never echo them.
    if (this.closed || origin === this) return
    for (const entry of entries) this.liveQueue.push(entry)
    if (this.liveQueue.length > this.maxLiveQueue) {
      // Stop holding entries in memory; the log still has them.
      this.liveQueue = []
      this.refetch = true
    }
    this.pump()
  }

  private pump(): void {
    if (this.pumping || this.closed) return
    void this.runPump()
  }

  private async runPump(): Promise<void> {
    this.pumping = true
    try {
      while (!this.closed && !this.channel.closed) {
        if (!this.writable || this.stats.nodesSent - this.nodesAcked >= this.maxInFlight) return
        if (this.catchUp) {
          const done = await this.sendFromCatchUp(this.catchUp)
          if (this.closed) return
          if (done) {
            this.catchUp = undefined
            if (this.catchUpIsInitial) {
              this.catchUpIsInitial = false
              this.send(syncedFrame(this.catchUpCount))
              this.sentSynced = true
              this.checkSynced()
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
      this.fail(
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
    this.catchUp = this.log.readMissingPages(new Map(this.remoteClock))[Symbol.asyncIterator]()
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
          if (this.closed) return true
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
      if (this.remoteHas(entry)) continue
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
      if (this.remoteHas(entry)) continue
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
    const budget = this.maxInFlight - (this.stats.nodesSent - this.nodesAcked)
    return new FrameBuilder(this.ownWriterHex(), this.maxFrameBytes, Math.max(1, budget), this.channel.maxFrameSize - 1, (w) => this.writerHex(w))
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
    // A clean close waits for this frame (see closeChannel): what was
    // committed before close() still leaves, as it did when frames went out unsigned.
    this.signing++
    let signatures: NodeSignature[]
    try {
      signatures = await this.log.signaturesFor(send, (hex) => !this.keysSent.has(hex))
    } finally {
      this.signing--
    }
    if (this.channel.closed || this.closeError !== undefined) return
    for (const s of signatures) if (s.key !== undefined) this.keysSent.add(this.writerHex(s.writer))
    for (const entry of send) this.markRemote(this.writerHex(entry.writer), entry.seq)
    if (initial) this.catchUpCount += send.length
    this.sendNodes(send.map((e) => e.bytes), signatures.map(encodeSignature))
  }

  private sendNodes(batch: Uint8Array[], signatures: Uint8Array[]): void {
    this.stats.nodesSent += batch.length
    // Only frames that move our own writer's seq need remembering (see storedByPeer).
    const own = this.remoteClock.get(this.ownWriterHex()) ?? 0
    const sent = this.ownSent
    if (own > (sent.length > this.ownSentHead ? sent[sent.length - 1] : this.ownStored)) sent.push(this.stats.nodesSent, own)
    this.send(nodesFrame(batch, signatures))
    this.emit('progress', { received: this.stats.nodesReceived, sent: this.stats.nodesSent })
  }

  /** Queues a frame; a closed channel swallows it (the close path reports why). */
  private send(frame: Uint8Array): void {
    if (this.channel.closed) return
    this.stats.framesSent++
    this.stats.bytesSent += frame.byteLength
    if (!this.channel.send(frame)) this.writable = false
  }

  private remoteHas(entry: LogEntry): boolean {
    return (this.remoteClock.get(this.writerHex(entry.writer)) ?? 0) >= entry.seq
  }

  private markRemote(writer: string, seq: number): void {
    if ((this.remoteClock.get(writer) ?? 0) < seq) this.remoteClock.set(writer, seq)
  }

  private writerHex(writer: Uint8Array): string {
    const last = this.lastWriter
    if (last === undefined || !equalBytes(last, writer)) {
      this.lastWriter = writer
      this.lastWriterHex = toHex(writer)
    }
    return this.lastWriterHex
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
    if (this.nodesAcked === this.stats.nodesSent) this.shutdown()
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
    this.channelEnded = true
    void this.processInbound()
  }

  private readonly tick = (): void => {
    if (this.closed) return
    if (this.pingOutstanding) {
      // We are the slow side: while we store its frames we stop reading, so its answer cannot reach us yet.
      if (this.inboundBusy || this.pausedForInbound || this.storing.length > 0) return
      if (++this.missedTicks >= 2) {
        this.fail(
          new HyperEmitterError(
            ErrorCodes.TIMEOUT,
            `no answer from ${this.channel.remote} within ${2 * this.keepAliveInterval} ms`,
            { details: { keepAliveInterval: this.keepAliveInterval, remote: this.channel.remote } },
          ),
        )
      }
      return
    }
    // Pongs do not count as activity, so an idle session pings every interval.
    const activity = this.stats.framesReceived - this.pongsReceived
    if (activity !== this.framesAtTick) {
      this.framesAtTick = activity
      return
    }
    this.pingOutstanding = true
    this.missedTicks = 0
    try {
      this.send(pingFrame(++this.pingNonce))
    } catch (err) {
      this.fail(err)
    }
  }

  /** Tells the peer why (best effort), then closes with `err`. */
  private fail(err: unknown): void {
    if (this.closed) return
    const error = asSessionError(err)
    try {
      // The peer learns what did get stored before the failure.
      this.flushAck()
      this.send(errorFrame(error.code, error.message))
    } catch {
      // The channel is gone or refused the frame: the close below still reports the cause.
    }
    this.shutdown(error)
  }

  private shutdown(err?: Error): void {
    if (this.closed) return
    this.closed = true
    this.closeError = err
    if (this.keepAliveTimer !== undefined) clearInterval(this.keepAliveTimer)
    this.keepAliveTimer = undefined
    this.unsubscribe?.()
    this.unsubscribe = undefined
    const iterator = this.catchUp
    this.catchUp = undefined
    this.catchUpPage = []
    this.carry = []
    this.liveQueue = []
    this.inbound = []
    this.ownSent = []
    this.ownSentHead = 0
    // Release the log's read (a db iterator, typically).
    if (iterator?.return) iterator.return().catch(() => {})
    this.channel.off('frame', this.onFrame)
    this.channel.off('drain', this.onDrain)
    if (!this.syncedSettled) {
      this.syncedSettled = true
      this.rejectSynced(
        err
          ? new HyperEmitterError(isHyperEmitterError(err) ? err.code : ErrorCodes.CLOSED, `session closed before sync completed: ${err.message}`, { cause: err })
          : new HyperEmitterError(ErrorCodes.CLOSED, 'session closed before sync completed'),
      )
    }
    // 'close' waits for the channel, so whoever awaits it knows nothing of the session is left running.
    this.closeChannel(() => {
      if (err) this.emit('error', err)
      this.emit('close', err)
    })
  }

  /**
   * Closes the channel once what we queued has left it (or the peer hung up),
   * waiting at most LINGER_MS, then calls `done`. Always a clean close: an
   * Error frame already told the peer why, and a channel closed with an error
   * may drop it unsent (tcp destroys the socket), so the reason travels
   * in-band, not as the channel's error.
   */
  private closeChannel(done: () => void): void {
    const channel = this.channel
    let waited = 0
    const finish = (): void => {
      if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer)
      this.lingerTimer = undefined
      this.lingerDone = undefined
      channel.off('close', this.onChannelClose)
      if (!channel.closed) channel.close()
      done()
    }
    const attempt = (): void => {
      this.lingerTimer = undefined
      if (channel.closed || (channel.bufferedAmount === 0 && this.signing === 0) || waited >= LINGER_MS) {
        finish()
        return
      }
      waited += LINGER_POLL_MS
      this.lingerTimer = setTimeout(attempt, LINGER_POLL_MS)
    }
    this.lingerDone = finish
    attempt()
  }
}

function positiveInt(value: number | undefined, fallback: number, option: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${option} must be a positive integer, got ${value}`, {
      details: { option },
    })
  }
  return value
}

function protocolError(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, message)
}

/** A rejection from addMany as the session's own error (never the log's object itself). */
function storeError(err: unknown): HyperEmitterError {
  if (isHyperEmitterError(err)) {
    const what = NODE_ERROR_CODES.has(err.code) ? 'refused a node from the peer' : 'failed to store nodes'
    return new HyperEmitterError(err.code, `${what}: ${err.message}`, { cause: err, details: err.details })
  }
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `failed to store nodes: ${String(err)}`, { cause: err })
}

function asSessionError(err: unknown): HyperEmitterError {
  if (isHyperEmitterError(err)) return err
  return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `session failed: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  })
}

