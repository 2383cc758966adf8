/**
 * One remote peer as the application sees it (address, state, its first
 * catch-up), the types a peer manager is wired with, and the reconnect backoff.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { FrameChannel } from '../transport/channel.js'
import type { SyncSession } from './session.js'

/**
 * Opens a channel to "tcp://host:port" or "ws(s)://host:port/path"; rejects
 * CONNECTION_FAILED. With `publicOnly` (an address a remote announced), it
 * refuses one that is or resolves to a private address.
 */
export type Dial = (address: string, options: { token?: string; publicOnly?: boolean }) => Promise<FrameChannel>

/** What an authenticate hook sees of a peer that connects to us. */
export interface IncomingPeer {
  transport: FrameChannel['kind']
  remote: string
  /** The remote's writer id (hex), bound to `publicKey`. */
  writer: string
  /** The remote's Ed25519 public key (hex), proven: it signed our fresh challenge. */
  publicKey: string
  /** The token from its Identity ('' when none). */
  token: string
  /** The HTTP upgrade request, for WebSocket peers (a Node http.IncomingMessage). */
  request?: unknown
}

export type Authenticate = (peer: IncomingPeer) => boolean | Promise<boolean>

/** A remembered peer, as the store gives it back at start-up. */
export interface KnownPeerRecord {
  address: string
  /** Unix ms of the last completed catch-up with it (0: never). */
  lastSynced: number
  /** The token it was last dialed with, if one was stored. */
  token?: string
}

/** Where outgoing peers are remembered across restarts (the db's `hyperemitter-peers` sublevel). */
export interface KnownPeerStore {
  list(): Promise<KnownPeerRecord[]>
  /** Store the peer (replacing what was stored for `address`): with `token` if given, without one otherwise. */
  remember(address: string, lastSynced: number, token?: string): Promise<void>
  forget(address: string): Promise<void>
}

export type PeerState = 'connecting' | 'connected' | 'synced' | 'reconnecting' | 'closed'

/** Status event payload describing one peer. */
export interface PeerEventInfo {
  address?: string
  id?: string
  transport: FrameChannel['kind'] | 'unknown'
  direction: 'outgoing' | 'incoming'
}

/** A peer this emitter dialed: reconnected with backoff until close. */
export class Peer {
  state: PeerState = 'connecting'
  /** The remote's writer id, once a handshake was seen. */
  id: string | undefined
  session: SyncSession | undefined
  /**
   * Resolves at the end of the first completed catch-up with this peer;
   * rejects (CLOSED, UNAUTHORIZED, VERSION_MISMATCH) if the peer is given up
   * or the emitter closes before that.
   */
  readonly synced: Promise<void>
  /** Reconnect attempts since the last completed catch-up. */
  attempt = 0
  timer: ReturnType<typeof setTimeout> | undefined
  /** @internal */
  resolveSynced!: () => void
  /** @internal */
  rejectSynced!: (err: Error) => void
  /** @internal Kept in the store (with its token) so a restart reconnects; connect()'s `remember` option. */
  remember = true
  /** @internal A record of this peer is in the store (it came from there, or was saved since). */
  stored = false
  /** @internal Dialed at start-up with what the store held for it (the application gave it no token since). */
  restored = false
  /** @internal Unix ms of the last completed catch-up (0: never), as stored. */
  lastSynced = 0
  /** @internal Announced by a remote, not given by the application: never stored, and dialed only at public addresses unless allowed. */
  discovered = false
  /** @internal Refuse to reach it at a private address (see Dial). */
  publicOnly = false

  constructor(
    readonly address: string,
    /** Credentials for the remote's authenticate hook (a later connect() with a token replaces it). */
    public token: string | undefined,
  ) {
    this.synced = new Promise((resolve, reject) => {
      this.resolveSynced = resolve
      this.rejectSynced = reject
    })
    // Callers that never await `synced` must not see an unhandled rejection.
    this.synced.catch(() => {})
  }

  /** True while connected and caught up with the peer. */
  get isSynced(): boolean {
    return this.state === 'synced'
  }
}

/** Throws INVALID_ARGUMENT unless `token` is a string and `remember` a boolean (each may be undefined). */
export function checkPeerOptions(token: unknown, remember: unknown): void {
  if (token !== undefined && typeof token !== 'string') {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `token must be a string, got ${typeof token}`, { details: { option: 'token' } })
  }
  if (remember !== undefined && typeof remember !== 'boolean') {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `remember must be a boolean, got ${typeof remember}`, {
      details: { option: 'remember' },
    })
  }
}

/**
 * The next reconnect delay: full jitter over an exponentially growing cap,
 * `random() * min(max, base * 2^attempt)` ms, so peers that lost the same hub
 * at the same instant spread their retries instead of storming it together.
 */
export function backoffDelay(attempt: number, base: number, max: number, random: () => number): number {
  const cap = Math.min(max, base * 2 ** Math.min(attempt, 52))
  return Math.round(random() * cap)
}
