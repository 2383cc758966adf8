import { create, toBinary } from '@bufbuild/protobuf'
import { checkCallbackLast, checkPortFirst } from '../core/arguments.js'
import { withCallback, type Callback } from '../core/callback.js'
import { equalBytes } from '../core/bytes/bytes.js'
import { HyperEmitterCore, type EventMap, type HyperEmitterOptions } from '../core/emitter.js'
import { DEFAULT_MAX_FRAME_SIZE } from '../transport/channel.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { EventPeerSchema, type Address } from '../gen/hyperemitter/v1/peer_pb.js'
import type { FrameChannel } from '../transport/channel.js'
import { isPrivateHost } from './addresses.js'
import { DbKnownPeers } from './known-peers.js'
import { checkPeerOptions, PeerManager, type Authenticate, type Peer } from './peers.js'
import type { SessionOptions } from './session.js'

/** Options for replication, on top of the core's. */
export interface ReplicationOptions extends HyperEmitterOptions {
  /** ms: the first reconnect delay cap; it doubles per failed attempt (full jitter). Default 1000. */
  reconnectTimeout?: number
  /** ms: the largest reconnect delay cap. Default 30000. */
  maxReconnectTimeout?: number
  /** Refuse incoming peers: sees the transport, writer, token and (WebSocket) upgrade request. */
  authenticate?: Authenticate
  /**
   * Dial peers that other writers announce in EventPeer events. true: only
   * at public addresses (never private, loopback or link-local ones, nor
   * names resolving to them). A function decides for each announced peer
   * (private ones included, flagged): an allow-list of writers or
   * addresses, say. false: never. Default: true, unless this emitter
   * accepts peers (listen(), attach()): a hub dials nobody a peer names.
   * Discovered peers are never stored as known peers.
   */
  discover?: boolean | DiscoverPolicy
  /** Reconnect at start-up to peers this db connected to before. Default true. */
  reconnectKnown?: boolean
  /** Largest frame accepted or sent, bytes. Default 4 MiB. */
  maxFrameSize?: number
  /** Most bytes queued to one peer, control frames included (default 1 MiB + 2 x maxFrameSize); over it: LIMIT_EXCEEDED. */
  maxBufferedBytes?: number
  /** ms a peer may leave what we queued to it unread before it is dropped with LIMIT_EXCEEDED (default 30 s). */
  stallTimeout?: number
  /** Most nodes in one frame from a peer (default 8192); more: LIMIT_EXCEEDED. */
  maxNodesPerFrame?: number
  /** Most links of one node from a peer (default 8192); more: LIMIT_EXCEEDED. */
  maxLinksPerNode?: number
  /** Most writers a peer's Clock may name (default 65536); more: LIMIT_EXCEEDED. */
  maxClockWriters?: number
  /** Tuning for each replication session. */
  session?: Omit<SessionOptions, 'authenticate' | 'token'>
}

export interface ConnectOptions {
  /**
   * Credentials for the remote's authenticate hook. Stored in clear with the
   * remembered peer (unless `remember` is false), so a restart on the same db
   * reconnects with it; a later connect() with another token replaces it.
   */
  token?: string
  /**
   * Remember this peer, with its token, in the db so a restart reconnects by
   * itself. Default true. With false nothing of it is stored (a record from an
   * earlier run is removed): the application connects again after a restart.
   */
  remember?: boolean
}

/** The options argument of connect(), checked: throws INVALID_ARGUMENT for a token that is not a string, a remember that is not a boolean. */
export function connectOptionsOf(value: unknown): ConnectOptions {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object') {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `connect() options must be an object, got ${typeof value}`)
  }
  const { token, remember } = value as ConnectOptions
  checkPeerOptions(token, remember)
  return { token, remember }
}

/**
 * maxEventSize checked against the frame size: a node must fit one frame
 * with room for its links and framing (64 KiB, or a quarter of a small frame).
 * Default: all that fits.
 */
function eventLimit(maxEventSize: number | undefined, maxFrameSize: number): number {
  const fits = maxFrameSize - Math.min(64 * 1024, Math.floor(maxFrameSize / 4))
  if (maxEventSize === undefined) return fits
  if (!Number.isSafeInteger(maxEventSize) || maxEventSize < 1 || maxEventSize > fits) {
    throw new HyperEmitterError(
      ErrorCodes.INVALID_ARGUMENT,
      `maxEventSize must be an integer from 1 to ${fits} (what fits a frame of maxFrameSize ${maxFrameSize}), got ${maxEventSize}`,
      { details: { option: 'maxEventSize' } },
    )
  }
  return maxEventSize
}

/** What a `discover` function is asked about: a peer announced in an EventPeer event. */
export interface DiscoveredPeer {
  /** The announced writer id (hex): who wrote the EventPeer. */
  id: string
  /** The address this emitter would dial ("tcp://…" or "ws(s)://…"). */
  address: string
  host: string
  /** The host is a private, loopback or link-local address, or a name for this machine. */
  private: boolean
}

/** Decides whether to dial an announced peer; a throw or rejection means no. */
export type DiscoverPolicy = (peer: DiscoveredPeer) => boolean | Promise<boolean>

/** The plain shape of an EventPeer event. */
export interface EventPeerMessage {
  id: string
  addresses: Array<{ ip: string; port: number; url: string }>
}

const EVENT_PEER = 'hyperemitter.v1.EventPeer'

/**
 * The core plus replication: connect(), peers, EventPeer announce and
 * discovery. Runtimes supply how to dial an address.
 */
export abstract class ReplicatedEmitter<E extends EventMap = EventMap> extends HyperEmitterCore<E> {
  protected readonly peerManager: PeerManager
  protected readonly knownPeers: DbKnownPeers
  /** This emitter accepts peers and has told the others where (an EventPeer of ours is in the log). */
  private reachable = false
  /** This emitter accepts peers (listen(), attach()): discovery is off unless asked for. */
  protected acceptsPeers = false

  constructor(...args: ConstructorParameters<typeof HyperEmitterCore>) {
    super(...args)
    const options = this.replication
    this.knownPeers = new DbKnownPeers(this.db)
    this.peerManager = new PeerManager(this.log, {
      dial: (address, o) => this.dial(address, o),
      status: this.status,
      reconnectTimeout: options.reconnectTimeout,
      maxReconnectTimeout: options.maxReconnectTimeout,
      authenticate: options.authenticate,
      session: { maxClockWriters: options.maxClockWriters, ...options.session },
      limits: { maxNodesPerFrame: options.maxNodesPerFrame, maxLinksPerNode: options.maxLinksPerNode },
      store: this.knownPeers,
    })
    this.onClose(() => this.peerManager.close())
    this.ready().then(
      () => this.startReplication(),
      () => {},
    )
  }

  /** Throws INVALID_ARGUMENT for a maxEventSize that would not fit a frame; fills in the default one. */
  protected static override checkOptions(options: ReplicationOptions): void {
    super.checkOptions(options)
    options.maxEventSize = eventLimit(options.maxEventSize, options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE)
  }

  /** The options, with the replication ones typed. */
  protected get replication(): ReplicationOptions {
    return this.options as ReplicationOptions
  }

  /** Open a frame channel to "tcp://host:port" or "ws(s)://..."; rejects CONNECTION_FAILED or NOT_SUPPORTED. */
  protected abstract dial(address: string, options: { token?: string; publicOnly?: boolean }): Promise<FrameChannel>

  /** The address this runtime would dial for an announced peer, or undefined if none fits. */
  protected abstract pickAddress(addresses: EventPeerMessage['addresses']): string | undefined

  /** Normalize the seed's `(port, host)` or a URL into one address string. */
  protected abstract toAddress(target: string | number, host: string | undefined): string

  /** Every peer this emitter dialed, with its state and `synced` promise. */
  get peers(): Peer[] {
    return this.peerManager.peers
  }

  /**
   * Replicate with another emitter: `connect(port, host?, cb?)` over TCP
   * (Node) or `connect('ws://…' | 'wss://…', cb?)`. Resolves with the Peer once
   * the connection is up (`peer.synced` resolves when the first catch-up is
   * done). Rejects with CONNECTION_FAILED, UNAUTHORIZED, VERSION_MISMATCH,
   * INVALID_ARGUMENT or CLOSED. A connection that once succeeded is retried
   * with backoff when lost, and again after a restart on the same db (with
   * `options.token`, stored with it), unless `options.remember` is false.
   */
  connect(target: string | number, host?: string | ConnectOptions | Callback<Peer>, options?: ConnectOptions | Callback<Peer>, cb?: Callback<Peer>): Promise<Peer> {
    const args = [host, options, cb].filter((a) => a !== undefined)
    const callback = typeof args[args.length - 1] === 'function' ? (args.pop() as Callback<Peer>) : undefined
    const hostArg = typeof args[0] === 'string' ? (args.shift() as string) : undefined
    let promise: Promise<Peer>
    try {
      checkPortFirst('connect', target, host)
      checkCallbackLast('connect(port, host, [opts], [cb])', [host, options, cb])
      const { token, remember } = connectOptionsOf(args.shift())
      if (this.closed) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
      const address = this.toAddress(target, hostArg)
      promise = this.ready().then(() => this.peerManager.connect(address, token, remember))
    } catch (err) {
      promise = Promise.reject(err)
    }
    return withCallback(promise, callback)
  }

  /**
   * Announce where this emitter can be reached, as an EventPeer event, unless
   * the same addresses were announced last time (on this db).
   */
  protected async announce(addresses: Address[] | EventPeerMessage['addresses']): Promise<boolean> {
    const id = await this.getId()
    const message = { id, addresses: addresses.map((a) => ({ ip: a.ip, port: a.port, url: a.url ?? '' })) }
    const bytes = toBinary(EventPeerSchema, create(EventPeerSchema, message))
    const last = await this.knownPeers.lastAnnounced()
    this.reachable = true
    if (last && equalBytes(last, bytes)) return false
    await this.emit(EVENT_PEER as keyof E & string, message as E[keyof E & string])
    await this.knownPeers.setLastAnnounced(bytes)
    return true
  }

  private startReplication(): void {
    const options = this.replication
    if (this.closed) return
    // An internal subscription, not a listener: users' listenerCount() and removeListener() never see it.
    if (options.discover !== false) this.subscribe((d) => this.discovered(this.decode(d) as EventPeerMessage), { name: EVENT_PEER })
    if (options.reconnectKnown !== false) this.peerManager.reconnectKnown().catch((err) => this.reportError(err))
  }

  private discovered(peer: EventPeerMessage): void {
    if (this.closed) return
    void this.getId().then((own) => {
      if (peer.id === own || this.peerManager.connectedIds().has(peer.id)) return
      // Two reachable emitters that learn of each other would otherwise dial
      // each other at the same time and keep two connections: only the lower
      // id dials. One that does not listen always dials (nobody can dial it).
      if (this.reachable && own > peer.id) return
      const address = this.pickAddress(peer.addresses)
      if (!address || this.peerManager.peers.some((p) => p.address === address)) return
      return this.discoveryAllows(peer.id, address).then((allowed) => {
        if (allowed === false || this.closed) return
        this.peerManager.connectDiscovered(address, allowed === 'public').catch((error) => this.status.emit('peer:error', { address, id: peer.id, error }))
      })
    })
  }

  /** Whether the `discover` option lets this emitter dial `address`: false, 'public' (only if it is public), or 'any'. */
  private async discoveryAllows(id: string, address: string): Promise<false | 'public' | 'any'> {
    const policy = this.replication.discover ?? !this.acceptsPeers
    if (policy === false) return false
    const host = hostOf(address)
    const isPrivate = isPrivateHost(host) === true
    if (policy === true) return isPrivate ? false : 'public'
    try {
      return (await policy({ id, address, host, private: isPrivate })) === true ? 'any' : false
    } catch {
      return false
    }
  }
}

function hostOf(address: string): string {
  try {
    return new URL(address).hostname.replace(/^\[|\]$/g, '')
  } catch {
    return ''
  }
}
