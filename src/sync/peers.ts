import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { TypedEmitter } from '../core/typed-emitter.js'
import type { StatusEvents } from '../core/emitter.js'
import type { SyncableLog } from '../core/types.js'
import type { FrameChannel } from '../transport/channel.js'
import { SyncSession, type SessionOptions } from './session.js'

/** Opens a channel to "tcp://host:port" or "ws(s)://host:port/path"; rejects CONNECTION_FAILED. */
export type Dial = (address: string, options: { token?: string }) => Promise<FrameChannel>

/** What an authenticate hook sees of a peer that connects to us. */
export interface IncomingPeer {
  transport: FrameChannel['kind']
  remote: string
  /** The remote's writer id (hex) from its handshake. */
  writer: string
  /** The token from its handshake ('' when none). */
  token: string
  /** The HTTP upgrade request, for WebSocket peers (a Node http.IncomingMessage). */
  request?: unknown
}

export type Authenticate = (peer: IncomingPeer) => boolean | Promise<boolean>

export interface KnownPeerStore {
  list(): Promise<string[]>
  remember(address: string, lastSynced: number): Promise<void>
  forget(address: string): Promise<void>
}

export interface PeerManagerOptions {
  dial: Dial
  status: TypedEmitter<StatusEvents>
  /** First reconnect delay cap, ms (the seed's reconnectTimeout). Default 1000. */
  reconnectTimeout?: number
  /** Largest reconnect delay cap, ms. Default 30000. */
  maxReconnectTimeout?: number
  session?: Omit<SessionOptions, 'authenticate' | 'token'>
  authenticate?: Authenticate
  store?: KnownPeerStore
  /** Injectable for tests; default Math.random. */
  random?: () => number
}

export type PeerState = 'connecting' | 'connected' | 'synced' | 'reconnecting' | 'closed'

/** Status event payload describing one peer. */
export interface PeerEventInfo {
  address?: string
  id?: string
  transport: FrameChannel['kind'] | 'unknown'
  direction: 'outgoing' | 'incoming'
}

/** Codes that no retry can fix: give up instead of hammering the peer. */
const PERMANENT = new Set<string>([ErrorCodes.UNAUTHORIZED, ErrorCodes.VERSION_MISMATCH])

/** A peer this emitter dialed: reconnected with backoff until close. */
export class Peer {
  state: PeerState = 'connecting'
  /** The remote's writer id, once a handshake was seen. */
  id: string | undefined
  session: SyncSession | undefined
  /** Resolves at the end of the first completed catch-up with this peer. */
  readonly synced: Promise<void>
  /** Reconnect attempts since the last completed catch-up. */
  attempt = 0
  timer: ReturnType<typeof setTimeout> | undefined
  resolveSynced!: () => void

  constructor(
    readonly address: string,
    readonly token: string | undefined,
  ) {
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve))
  }

  /** True while connected and caught up with the peer. */
  get isSynced(): boolean {
    return this.state === 'synced'
  }
}

/**
 * Owns every replication session of one log: outgoing peers (dialed,
 * remembered, reconnected with exponential backoff and full jitter) and
 * incoming ones (accepted, authenticated). Runtime-agnostic: the runtime
 * supplies `dial`.
 */
export class PeerManager {
  private readonly outgoing = new Map<string, Peer>()
  private readonly incoming = new Set<SyncSession>()
  private closing = false

  constructor(
    private readonly log: SyncableLog,
    private readonly options: PeerManagerOptions,
  ) {}

  /** Every outgoing peer. */
  get peers(): Peer[] {
    return [...this.outgoing.values()]
  }

  /** Writer ids of every peer currently connected, either way. */
  connectedIds(): Set<string> {
    const ids = new Set<string>()
    for (const peer of this.outgoing.values()) if (peer.session?.remoteWriter && peer.state !== 'reconnecting') ids.add(peer.session.remoteWriter)
    for (const session of this.incoming) if (session.remoteWriter) ids.add(session.remoteWriter)
    return ids
  }

  /**
   * Dial `address`; resolves once the handshake is done, with the Peer (its
   * `synced` promise tells when the first catch-up finished). Rejects with
   * the first attempt's error (CONNECTION_FAILED, UNAUTHORIZED, ...); after a
   * first success, lost connections are retried until close().
   */
  async connect(address: string, token?: string): Promise<Peer> {
    if (this.closing) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    const existing = this.outgoing.get(address)
    if (existing) return existing
    const peer = new Peer(address, token)
    this.outgoing.set(address, peer)
    try {
      await this.open(peer)
    } catch (err) {
      this.outgoing.delete(address)
      peer.state = 'closed'
      throw err
    }
    void this.options.store?.remember(address, 0).catch((err) => this.error(err))
    return peer
  }

  /** Reconnect to every remembered peer, in the background. */
  async reconnectKnown(): Promise<void> {
    const store = this.options.store
    if (!store) return
    for (const address of await store.list()) {
      if (this.closing || this.outgoing.has(address)) continue
      const peer = new Peer(address, undefined)
      this.outgoing.set(address, peer)
      this.open(peer).catch(() => this.scheduleReconnect(peer))
    }
  }

  /** Replicate over a channel a peer opened to us. */
  accept(channel: FrameChannel, info: { request?: unknown } = {}): SyncSession {
    if (this.closing) {
      channel.close()
      throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    }
    const authenticate = this.options.authenticate
    const session = new SyncSession(this.log, channel, {
      ...this.options.session,
      authenticate: authenticate
        ? (p) => authenticate({ transport: channel.kind, remote: p.remote, writer: p.writer, token: p.token, request: info.request })
        : undefined,
    })
    const describe = (): PeerEventInfo => ({ id: session.remoteWriter, transport: channel.kind, direction: 'incoming' })
    this.incoming.add(session)
    this.watch(session, describe)
    session.on('close', () => this.incoming.delete(session))
    session.start()
    return session
  }

  /** Close every session and timer; the manager refuses new work afterwards. */
  async close(): Promise<void> {
    this.closing = true
    const sessions: SyncSession[] = [...this.incoming]
    for (const peer of this.outgoing.values()) {
      clearTimeout(peer.timer)
      peer.state = 'closed'
      if (peer.session) sessions.push(peer.session)
    }
    await Promise.all(sessions.map((session) => closeSession(session)))
    this.incoming.clear()
  }

  /** One connection attempt: resolves after the handshake, rejects if the session ends before. */
  private async open(peer: Peer): Promise<void> {
    peer.state = 'connecting'
    const channel = await this.options.dial(peer.address, { token: peer.token })
    if (this.closing) {
      channel.close()
      throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    }
    const session = new SyncSession(this.log, channel, { ...this.options.session, token: peer.token })
    peer.session = session
    const describe = (): PeerEventInfo => ({ address: peer.address, id: peer.id, transport: channel.kind, direction: 'outgoing' })
    this.watch(session, describe)
    session.on('synced', () => {
      peer.state = 'synced'
      peer.attempt = 0
      peer.resolveSynced()
      void this.options.store?.remember(peer.address, Date.now()).catch((err) => this.error(err))
    })
    const handshake = new Promise<void>((resolve, reject) => {
      session.on('handshake', (writer: string) => {
        peer.id = writer
        peer.state = 'connected'
        resolve()
      })
      session.on('close', (err?: Error) => {
        reject(err ?? new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `${peer.address} closed the connection during the handshake`))
        if (peer.session === session) peer.session = undefined
        if (this.closing || peer.state === 'closed') return
        if (err instanceof HyperEmitterError && PERMANENT.has(err.code)) {
          peer.state = 'closed'
          this.outgoing.delete(peer.address)
          this.options.status.emit('peer:failed', { ...describe(), error: err })
          return
        }
        // Only a peer that once connected is retried from here; a first failure is the caller's.
        if (peer.id !== undefined) this.scheduleReconnect(peer)
      })
    })
    session.start()
    await handshake
  }

  /** Full-jitter exponential backoff: delay uniform in [0, min(max, base * 2^attempt)]. */
  private scheduleReconnect(peer: Peer): void {
    if (this.closing || peer.state === 'closed') return
    const base = this.options.reconnectTimeout ?? 1000
    const max = this.options.maxReconnectTimeout ?? 30_000
    const cap = Math.min(max, base * 2 ** peer.attempt)
    const delay = Math.round((this.options.random ?? Math.random)() * cap)
    peer.attempt++
    peer.state = 'reconnecting'
    this.options.status.emit('peer:reconnecting', { address: peer.address, id: peer.id, attempt: peer.attempt, delay })
    peer.timer = setTimeout(() => {
      peer.timer = undefined
      this.open(peer).catch((err) => {
        this.options.status.emit('peer:error', { address: peer.address, id: peer.id, error: err })
        this.scheduleReconnect(peer)
      })
    }, delay)
  }

  /** Forward a session's life to status events. */
  private watch(session: SyncSession, describe: () => PeerEventInfo): void {
    const status = this.options.status
    session.on('handshake', () => status.emit('peer:connected', describe()))
    session.on('progress', (progress: { received: number; sent: number }) => status.emit('peer:progress', { ...describe(), ...progress }))
    session.on('synced', () => status.emit('peer:synced', { ...describe(), ...session.stats }))
    session.on('close', (err?: Error) => {
      status.emit('peer:disconnected', { ...describe(), error: err })
      if (err && !(this.closing && isClosedError(err))) status.emit('peer:error', { ...describe(), error: err })
    })
  }

  private error(err: unknown): void {
    this.options.status.emit('error', err instanceof Error ? err : new Error(String(err)))
  }
}

function isClosedError(err: Error): boolean {
  return err instanceof HyperEmitterError && err.code === ErrorCodes.CLOSED
}

/** Sessions leave the manager's sets when they close, so any session passed here is still open. */
function closeSession(session: SyncSession): Promise<void> {
  return new Promise((resolve) => {
    session.once('close', () => resolve())
    session.close()
  })
}
