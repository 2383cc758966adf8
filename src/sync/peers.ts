/**
 * PeerManager: every replication session of one log, outgoing (dialed,
 * remembered, reconnected with backoff) and incoming (accepted, authenticated).
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { TypedEmitter } from '../core/emitter/typed-emitter.js'
import type { StatusEvents } from '../core/emitter.js'
import type { SyncableLog } from '../core/types.js'
import type { FrameChannel } from '../transport/channel.js'
import { limitInbound, type InboundLimits } from './inbound-limits.js'
import { backoffDelay, checkPeerOptions, Peer, type Authenticate, type Dial, type KnownPeerStore, type PeerEventInfo, type PeerState } from './peer.js'
import { PeerStatus } from './peer-status.js'
import { SyncSession, type SessionOptions } from './session.js'
import { ForkWatch } from './fork-watch.js'

export {
  backoffDelay,
  checkPeerOptions,
  Peer,
  type Authenticate,
  type Dial,
  type IncomingPeer,
  type KnownPeerRecord,
  type KnownPeerStore,
  type PeerEventInfo,
  type PeerState,
} from './peer.js'

export interface PeerManagerOptions {
  dial: Dial
  status: TypedEmitter<StatusEvents>
  /** First reconnect delay cap, ms (the seed's reconnectTimeout). Default 1000. */
  reconnectTimeout?: number
  /** Largest reconnect delay cap, ms. Default 30000. */
  maxReconnectTimeout?: number
  session?: Omit<SessionOptions, 'authenticate' | 'token' | 'accepting'>
  /** Bounds on each Nodes frame a peer sends (see limitInbound). */
  limits?: InboundLimits
  authenticate?: Authenticate
  store?: KnownPeerStore
  /** Injectable for tests; default Math.random. */
  random?: () => number
  /** Told after every state update of an outgoing peer (a page relays its hub states from here). */
  onChange?: (peer: Peer) => void
}

/** Codes that no retry can fix: give up instead of hammering the peer. */
const PERMANENT = new Set<string>([ErrorCodes.UNAUTHORIZED, ErrorCodes.VERSION_MISMATCH])

/** Longest close() waits for closed channels to release their sockets. */
const RELEASE_WAIT_MS = 3000

/**
 * Owns every replication session of one log: outgoing peers (dialed,
 * remembered, reconnected with exponential backoff and full jitter) and
 * incoming ones (accepted, authenticated). Runtime-agnostic: the runtime
 * supplies `dial`. What a page needs on top: keepConnected() (retry from the
 * first failed attempt), reconnectNow() for the window's 'online' event and
 * dropOutgoing() for 'offline'.
 */
export class PeerManager {
  private readonly outgoing = new Map<string, Peer>()
  private readonly incoming = new Set<SyncSession>()
  /** Addresses given up on for good, with the error code, until dialed again. */
  readonly failed = new Map<string, string>()
  /** Sessions' lives as status events. */
  private readonly report: PeerStatus
  /** Every channel not yet released, so close() can wait for their sockets. */
  private readonly channels = new Set<FrameChannel>()
  /** Store writes, one after the other (a later write of a peer must land last); close() waits for them. */
  private saving: Promise<void> = Promise.resolve()
  private closing = false
  /** The log as every session sees it: heavy frames split, frames over the limits refused. */
  private readonly log: SyncableLog
  /** Refusals and forks reported once each; forks of our own writer healed. */
  private readonly forks: ForkWatch

  /** Throws INVALID_ARGUMENT for a reconnect delay that is not a positive number, or a bad limit. */
  constructor(
    log: SyncableLog,
    private readonly options: PeerManagerOptions,
  ) {
    this.log = limitInbound(log, options.limits)
    this.report = new PeerStatus(options.status, () => this.closing)
    this.forks = new ForkWatch(this.log, options.status, {
      closing: () => this.closing,
      // Clean closes: the dialers reconnect at once, our outgoing peers through the usual backoff.
      restart: () => {
        for (const session of [...this.incoming]) session.close()
        for (const peer of this.outgoing.values()) peer.session?.close()
      },
      error: (err) => this.error(err),
    })
    for (const option of ['reconnectTimeout', 'maxReconnectTimeout'] as const) {
      const value = options[option]
      if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
        throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${option} must be a positive number of ms, got ${String(value)}`, {
          details: { option },
        })
      }
    }
  }

  /** Every outgoing peer. */
  get peers(): Peer[] {
    return [...this.outgoing.values()]
  }

  /** Writer ids of every peer currently connected, either way. */
  connectedIds(): Set<string> {
    const ids = new Set<string>()
    for (const peer of this.outgoing.values()) {
      if (peer.session?.remoteWriter && (peer.state === 'connected' || peer.state === 'synced')) ids.add(peer.session.remoteWriter)
    }
    for (const session of this.incoming) if (session.remoteWriter) ids.add(session.remoteWriter)
    return ids
  }

  /**
   * Dial `address`; resolves with the Peer once both handshakes are accepted
   * (its `synced` promise tells when the first catch-up finished). Rejects
   * with the first attempt's error (CONNECTION_FAILED, UNAUTHORIZED,
   * VERSION_MISMATCH, CLOSED...); after a first success, lost connections are
   * retried until close(). An address already dialed gives its existing Peer.
   * Once connected, the peer is remembered in the store with its token, so a
   * restart reconnects by itself; with `remember` false it is not (and any
   * record of the address is removed). A token or `remember` given for an
   * address already dialed replaces the earlier one, in the store too.
   * Throws INVALID_ARGUMENT, CLOSED.
   */
  async connect(address: string, token?: string, remember?: boolean): Promise<Peer> {
    const { peer, added } = this.peerFor(address, token, remember)
    if (!added) return peer
    return this.firstAttempt(peer)
  }

  /**
   * Dial a peer a remote announced (an EventPeer): like connect(), but it is
   * never stored (nor is a stored record of the address touched), and with
   * `publicOnly` it is reached only at public addresses. Rejects as connect().
   */
  async connectDiscovered(address: string, publicOnly: boolean): Promise<Peer> {
    if (this.outgoing.has(address)) return this.outgoing.get(address)!
    if (this.closing) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    const peer = new Peer(address, undefined)
    peer.remember = false
    peer.discovered = true
    peer.publicOnly = publicOnly
    this.outgoing.set(address, peer)
    this.failed.delete(address)
    return this.firstAttempt(peer)
  }

  private async firstAttempt(peer: Peer): Promise<Peer> {
    const address = peer.address
    try {
      await this.attempt(peer)
    } catch (err) {
      if (this.outgoing.get(address) === peer) this.outgoing.delete(address)
      this.giveUp(peer, err)
      throw err
    }
    if (peer.remember) this.save(peer)
    return peer
  }

  /**
   * The Peer for `address`, dialed in the background and, unlike connect(),
   * retried with backoff from the first failed attempt on (reported on
   * status), until close() or a permanent refusal: a page may well load while
   * its hub is unreachable. Remembered in the store (unless `remember` is
   * false) once synced. Throws INVALID_ARGUMENT, CLOSED.
   */
  keepConnected(address: string, token?: string, remember?: boolean): Peer {
    const { peer, added } = this.peerFor(address, token, remember)
    if (added) this.attempt(peer).catch((err) => this.retry(peer, err))
    return peer
  }

  /**
   * Reconnect to every remembered peer, with the token stored for it, in the
   * background (retried with backoff, reported on status; given up on for
   * good if it refuses us, see fail()). An address the application already
   * dialed in this run keeps the token it was given.
   */
  async reconnectKnown(): Promise<void> {
    const store = this.options.store
    if (!store) return
    for (const known of await store.list()) {
      if (this.closing) return
      if (this.outgoing.has(known.address)) continue
      const peer = this.keepConnected(known.address, known.token)
      peer.stored = true
      peer.restored = true
      peer.lastSynced = known.lastSynced
    }
  }

  /** Peers waiting out a backoff delay try again now, from the first delay on (the page came back online). */
  reconnectNow(): void {
    for (const peer of this.outgoing.values()) {
      if (peer.timer === undefined || peer.state === 'closed') continue
      clearTimeout(peer.timer)
      peer.timer = undefined
      peer.attempt = 0
      this.attempt(peer).catch((err) => this.retry(peer, err))
    }
  }

  /**
   * Close every outgoing connection with CONNECTION_FAILED `reason`; each is
   * retried with backoff as after any loss. For a page that went offline: the
   * OS may keep its sockets half-open for minutes.
   */
  dropOutgoing(reason: string): void {
    for (const peer of this.outgoing.values()) peer.session?.close(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, reason))
  }

  /**
   * Replicate over a channel a peer opened to us; `info.authenticated` is
   * called once the peer's handshake is accepted (a hub then lifts its
   * pre-authentication limits).
   */
  accept(channel: FrameChannel, info: { request?: unknown; authenticated?: () => void } = {}): SyncSession {
    if (this.closing) {
      channel.close()
      throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    }
    this.track(channel)
    const authenticate = this.options.authenticate
    const session = new SyncSession(this.log, channel, {
      ...this.options.session,
      // Nothing of this log, not even its writer id, before the peer is accepted.
      accepting: true,
      authenticate: authenticate ? (p) => authenticate({ transport: channel.kind, ...p, request: info.request }) : undefined,
    })
    const describe = (): PeerEventInfo => ({ id: session.remoteWriter, transport: channel.kind, direction: 'incoming' })
    this.incoming.add(session)
    if (info.authenticated) session.once('handshake', info.authenticated)
    this.report.watch(session, describe)
    this.forks.watch(session, describe)
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
      peer.timer = undefined
      this.setState(peer, 'closed')
      peer.rejectSynced(new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter closed before the first catch-up with this peer'))
      if (peer.session) sessions.push(peer.session)
    }
    await Promise.all(sessions.map((session) => closeSession(session)))
    this.incoming.clear()
    // What connect() and catch-ups stored reaches the db before the emitter closes it.
    await this.saving
    // Sessions close their channels after a short linger; their sockets close
    // after the peer's part of the goodbye. Wait for that (bounded: the
    // transports force it within a couple of seconds), so nothing of this
    // manager keeps the process alive once close() resolves.
    const released = [...this.channels].map((c) => c.released)
    if (released.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.all(released),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, RELEASE_WAIT_MS)
        }),
      ])
      clearTimeout(timer)
    }
  }

  /**
   * The outgoing peer for `address` (a token or `remember` given replaces the
   * earlier one, in the store too), and whether it is new. Throws
   * INVALID_ARGUMENT, CLOSED.
   */
  private peerFor(address: string, token: string | undefined, remember: boolean | undefined): { peer: Peer; added: boolean } {
    checkPeerOptions(token, remember)
    if (this.closing) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    const existing = this.outgoing.get(address)
    if (existing?.discovered) {
      // The application asks for a peer discovery found: it is the application's now.
      existing.discovered = existing.publicOnly = false
      existing.remember = remember ?? true
      if (existing.state === 'connected' || existing.state === 'synced') this.save(existing)
    }
    if (existing) {
      const changed = (token !== undefined && token !== existing.token) || (remember !== undefined && remember !== existing.remember)
      if (token !== undefined) {
        existing.token = token
        existing.restored = false
      }
      if (remember !== undefined) existing.remember = remember
      // A peer already stored, or up, is stored again at once: a restart must
      // not dial with a token the application replaced. Others are stored
      // when they connect.
      const up = existing.state === 'connected' || existing.state === 'synced'
      if (changed && (!existing.remember || existing.stored || up)) this.save(existing)
      return { peer: existing, added: false }
    }
    const peer = new Peer(address, token)
    if (remember !== undefined) peer.remember = remember
    this.outgoing.set(address, peer)
    this.failed.delete(address)
    // Not to be remembered: a record from an earlier run (and its token) goes now.
    if (!peer.remember) this.save(peer)
    return { peer, added: true }
  }

  /** Write `peer` as it is now to the store (its token included), or remove it if it is not to be remembered. */
  private save(peer: Peer): void {
    const store = this.options.store
    if (!store || peer.discovered) return
    peer.stored = peer.remember
    this.saving = this.saving
      .then(() => (peer.remember ? store.remember(peer.address, peer.lastSynced, peer.token) : store.forget(peer.address)))
      .catch((err) => this.error(err))
  }

  private setState(peer: Peer, state: PeerState): void {
    peer.state = state
    this.options.onChange?.(peer)
  }

  private track(channel: FrameChannel): void {
    if (!channel.released) return
    this.channels.add(channel)
    void channel.released.then(() => this.channels.delete(channel))
  }

  /**
   * One connection attempt: resolves once the remote accepted our handshake
   * (its Clock arrived), rejects if dialing fails or the session ends before
   * that. A session that ends after that is the loss of a live connection,
   * retried from here.
   */
  private async attempt(peer: Peer): Promise<void> {
    this.setState(peer, 'connecting')
    const channel = await this.options.dial(peer.address, { token: peer.token, publicOnly: peer.publicOnly })
    this.track(channel)
    // close() or a give-up may have happened while dialing.
    if (this.closing || (peer.state as PeerState) === 'closed') {
      channel.close()
      throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    }
    const session = new SyncSession(this.log, channel, { ...this.options.session, token: peer.token })
    peer.session = session
    const describe = (): PeerEventInfo => ({ address: peer.address, id: peer.id, transport: channel.kind, direction: 'outgoing' })
    this.report.watch(session, describe)
    this.forks.watch(session, describe)
    let accepted = false
    const up = new Promise<void>((resolve, reject) => {
      session.on('handshake', (writer: string) => {
        peer.id = writer
      })
      session.on('accepted', () => {
        accepted = true
        this.setState(peer, 'connected')
        resolve()
      })
      session.on('synced', () => {
        this.setState(peer, 'synced')
        // Reset only after a completed catch-up: a peer that accepts and then
        // drops us at once keeps backing off.
        peer.attempt = 0
        peer.resolveSynced()
        peer.lastSynced = Date.now()
        if (peer.remember) this.save(peer)
      })
      session.on('close', (err?: Error) => {
        if (peer.session === session) peer.session = undefined
        if (!accepted) {
          reject(err ?? new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `${peer.address} closed the connection during the handshake`))
          return
        }
        this.lost(peer, err)
      })
    })
    session.start()
    await up
  }

  /** A connection that was up ended: retry it unless closing or the cause is permanent. */
  private lost(peer: Peer, err: Error | undefined): void {
    if (this.closing || peer.state === 'closed') return
    if (err && isPermanent(err)) {
      this.fail(peer, err)
      return
    }
    this.scheduleReconnect(peer)
  }

  /** An attempt of a peer we keep retrying failed before the connection was up. */
  private retry(peer: Peer, err: unknown): void {
    if (this.closing || peer.state === 'closed') return
    const error = err instanceof Error ? err : new Error(String(err))
    if (isPermanent(error)) {
      this.fail(peer, error)
      return
    }
    // Dial failures have no session to report them: do it here, once.
    this.report.attemptFailed(peer.address, peer.id, error)
    this.scheduleReconnect(peer)
  }

  /**
   * Stop retrying a peer for good and say so (status 'peer:failed'). The
   * store keeps its record: the next start tries it once more, and a
   * connect() with a new token replaces the stored one.
   */
  private fail(peer: Peer, err: HyperEmitterError): void {
    if (this.outgoing.get(peer.address) === peer) this.outgoing.delete(peer.address)
    // Recorded before the state change, so that onChange already sees why.
    this.failed.set(peer.address, err.code)
    const error = refusedKnown(peer, err)
    this.giveUp(peer, error)
    this.options.status.emit('peer:failed', { address: peer.address, id: peer.id, error })
  }

  private giveUp(peer: Peer, err: unknown): void {
    clearTimeout(peer.timer)
    peer.timer = undefined
    this.setState(peer, 'closed')
    peer.rejectSynced(err instanceof Error ? err : new Error(String(err)))
  }

  /** Full-jitter exponential backoff: delay uniform in [0, min(max, base * 2^attempt)]. */
  private scheduleReconnect(peer: Peer): void {
    if (this.closing || peer.state === 'closed' || peer.timer !== undefined) return
    const delay = backoffDelay(
      peer.attempt,
      this.options.reconnectTimeout ?? 1000,
      this.options.maxReconnectTimeout ?? 30_000,
      this.options.random ?? Math.random,
    )
    peer.attempt++
    this.setState(peer, 'reconnecting')
    this.options.status.emit('peer:reconnecting', { address: peer.address, id: peer.id, attempt: peer.attempt, delay })
    peer.timer = setTimeout(() => {
      peer.timer = undefined
      if (this.closing || peer.state === 'closed') return
      this.attempt(peer).catch((err) => this.retry(peer, err))
    }, delay)
  }

  private error(err: unknown): void {
    this.options.status.emit('error', err instanceof Error ? err : new Error(String(err)))
  }
}

/**
 * For a peer dialed from the store with what was stored for it, an
 * UNAUTHORIZED that says so: it is the remembered credentials that were
 * refused, and the application has to give new ones. Same code, the remote's
 * error as cause.
 */
function refusedKnown(peer: Peer, err: HyperEmitterError): HyperEmitterError {
  if (err.code !== ErrorCodes.UNAUTHORIZED || !peer.restored) return err
  const what = peer.token !== undefined ? 'the token stored for it in the db' : 'a connection without a token (none is stored for it in the db)'
  return new HyperEmitterError(
    ErrorCodes.UNAUTHORIZED,
    `${peer.address}, a remembered peer, refused ${what}; not retried until connect() is called for it with a token`,
    { cause: err, details: { address: peer.address, storedToken: peer.token !== undefined } },
  )
}

function isPermanent(err: Error): err is HyperEmitterError {
  return err instanceof HyperEmitterError && PERMANENT.has(err.code)
}

/** Sessions leave the manager's sets when they close, so any session passed here is still open. */
function closeSession(session: SyncSession): Promise<void> {
  return new Promise((resolve) => {
    session.once('close', () => resolve())
    session.close()
  })
}
