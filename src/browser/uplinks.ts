/**
 * The WebSocket connections of a browser's log to its hubs ("uplinks").
 *
 * Same policy as the Node PeerManager (full-jitter exponential backoff from
 * `backoffDelay`, give up only on UNAUTHORIZED / VERSION_MISMATCH, the same
 * `peer:*` status events and `Peer.synced` signal), with what a page needs
 * on top: a first attempt that fails is retried too (a page may well load
 * offline), `reconnectNow()` for the window's 'online' event, and
 * `dropAll()` for 'offline' so the page stops believing in a socket the OS
 * may keep half-open for minutes.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { StatusEvents } from '../core/emitter.js'
import type { TypedEmitter } from '../core/typed-emitter.js'
import type { SyncableLog } from '../core/types.js'
import { backoffDelay, Peer, type KnownPeerStore, type PeerEventInfo, type PeerState } from '../sync/peers.js'
import { SyncSession, type SessionOptions } from '../sync/session.js'
import type { FrameChannel } from '../transport/channel.js'

/** Codes that no retry can fix. */
const PERMANENT = new Set<string>([ErrorCodes.UNAUTHORIZED, ErrorCodes.VERSION_MISMATCH])

export interface UplinkOptions {
  /** Opens a channel to a ws:// or wss:// URL; rejects CONNECTION_FAILED. */
  dial: (url: string) => Promise<FrameChannel>
  status: TypedEmitter<StatusEvents>
  reconnectTimeout?: number
  maxReconnectTimeout?: number
  session?: Omit<SessionOptions, 'authenticate' | 'token'>
  /** Where connected URLs are remembered, so the next page load reconnects by itself. */
  store?: KnownPeerStore
  random?: () => number
  /** Told after every state change of a peer. */
  onChange?: (peer: Peer) => void
}

export class Uplinks {
  private readonly peerMap = new Map<string, Peer>()
  /** URLs given up on for good, with the error code (until connect() is called for them again). */
  readonly failed = new Map<string, string>()
  private closing = false

  constructor(
    private readonly log: SyncableLog,
    private readonly options: UplinkOptions,
  ) {}

  get peers(): Peer[] {
    return [...this.peerMap.values()]
  }

  /** Every hub: those being dialed or connected, and those given up on (with the error code). */
  states(): Array<{ address: string; state: PeerState; id?: string; failed?: string }> {
    const states: Array<{ address: string; state: PeerState; id?: string; failed?: string }> = this.peers.map((p) => ({
      address: p.address,
      state: p.state,
      id: p.id,
    }))
    for (const [address, code] of this.failed) if (!this.peerMap.has(address)) states.push({ address, state: 'closed', failed: code })
    return states
  }

  /**
   * The peer for `url`, dialing it (and retrying with backoff until close())
   * if it is new. A token given later replaces the earlier one. Throws CLOSED.
   */
  connect(url: string, token?: string): Peer {
    if (this.closing) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    const existing = this.peerMap.get(url)
    if (existing) {
      if (token !== undefined) existing.token = token
      return existing
    }
    const peer = new Peer(url, token)
    this.peerMap.set(url, peer)
    this.failed.delete(url)
    void this.attempt(peer)
    return peer
  }

  /** Dial every remembered URL (in the background). */
  async reconnectKnown(): Promise<void> {
    const store = this.options.store
    if (!store) return
    let urls: string[]
    try {
      urls = await store.list()
    } catch (err) {
      this.options.status.emit('error', err as Error)
      return
    }
    for (const url of urls) if (!this.closing && /^wss?:\/\//.test(url)) this.connect(url)
  }

  /** Peers waiting out a backoff delay try again now (the page came back online). */
  reconnectNow(): void {
    for (const peer of this.peerMap.values()) {
      if (peer.timer === undefined || peer.state === 'closed') continue
      clearTimeout(peer.timer)
      peer.timer = undefined
      peer.attempt = 0
      void this.attempt(peer)
    }
  }

  /** Close every live session; each is retried with backoff as after any loss (the page went offline). */
  dropAll(reason: string): void {
    for (const peer of this.peerMap.values()) {
      peer.session?.close(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, reason))
    }
  }

  async close(): Promise<void> {
    this.closing = true
    const sessions: SyncSession[] = []
    for (const peer of this.peerMap.values()) {
      clearTimeout(peer.timer)
      peer.timer = undefined
      peer.state = 'closed'
      peer.rejectSynced(new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter closed before the first catch-up with this peer'))
      if (peer.session) sessions.push(peer.session)
      this.changed(peer)
    }
    await Promise.all(
      sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            session.once('close', () => resolve())
            session.close()
          }),
      ),
    )
  }

  private changed(peer: Peer): void {
    this.options.onChange?.(peer)
  }

  private async attempt(peer: Peer): Promise<void> {
    const status = this.options.status
    peer.state = 'connecting'
    this.changed(peer)
    let channel: FrameChannel
    try {
      channel = await this.options.dial(peer.address)
    } catch (err) {
      if (this.closing || (peer.state as PeerState) === 'closed') return
      status.emit('peer:error', { address: peer.address, id: peer.id, error: err as Error })
      this.lost(peer, err)
      return
    }
    if (this.closing || (peer.state as PeerState) === 'closed') {
      channel.close()
      return
    }
    const session = new SyncSession(this.log, channel, { ...this.options.session, token: peer.token })
    peer.session = session
    const info = (): PeerEventInfo => ({ address: peer.address, id: peer.id, transport: channel.kind, direction: 'outgoing' })
    session.on('handshake', (writer: string) => {
      peer.id = writer
    })
    session.on('accepted', () => {
      peer.state = 'connected'
      status.emit('peer:connected', info())
      this.changed(peer)
    })
    session.on('progress', (progress: { received: number; sent: number }) => status.emit('peer:progress', { ...info(), ...progress }))
    session.on('synced', () => {
      peer.state = 'synced'
      peer.attempt = 0
      peer.resolveSynced()
      status.emit('peer:synced', { ...info(), ...session.stats })
      this.changed(peer)
      void this.options.store?.remember(peer.address, Date.now()).catch((err) => status.emit('error', err))
    })
    session.on('close', (err?: Error) => {
      if (peer.session === session) peer.session = undefined
      status.emit('peer:disconnected', { ...info(), error: err })
      if (err && !this.closing) status.emit('peer:error', { ...info(), error: err })
      if (this.closing || peer.state === 'closed') return
      this.lost(peer, err)
    })
    session.start()
  }

  /** A connection failed or ended: retry with backoff unless the cause is permanent. */
  private lost(peer: Peer, err: unknown): void {
    if (err instanceof HyperEmitterError && PERMANENT.has(err.code)) {
      peer.state = 'closed'
      peer.rejectSynced(err)
      this.peerMap.delete(peer.address)
      this.failed.set(peer.address, err.code)
      this.options.status.emit('peer:failed', { address: peer.address, id: peer.id, error: err })
      this.changed(peer)
      return
    }
    const delay = backoffDelay(
      peer.attempt,
      this.options.reconnectTimeout ?? 1000,
      this.options.maxReconnectTimeout ?? 30_000,
      this.options.random ?? Math.random,
    )
    peer.attempt++
    peer.state = 'reconnecting'
    this.options.status.emit('peer:reconnecting', { address: peer.address, id: peer.id, attempt: peer.attempt, delay })
    this.changed(peer)
    peer.timer = setTimeout(() => {
      peer.timer = undefined
      if (this.closing || peer.state === 'closed') return
      void this.attempt(peer)
    }, delay)
  }
}
