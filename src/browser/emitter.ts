import { withCallback, type Callback } from '../core/callback.js'
import type { Db, EventMap } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError, isHyperEmitterError, type ErrorCode } from '../core/errors.js'
import { TypedEmitter } from '../core/emitter/typed-emitter.js'
import type { StatusEvents } from '../core/emitter.js'
import { Peer, type PeerState } from '../sync/peers.js'
import { connectOptionsOf, ReplicatedEmitter, type ConnectOptions, type EventPeerMessage, type ReplicationOptions } from '../sync/replicated.js'
import type { FrameChannel } from '../transport/channel.js'
import { isPrivateHost } from '../sync/addresses.js'
import { connectWebSocket } from '../transport/websocket.js'
import { DEFAULT_DB_NAME, memoryDb, onVersionChange, openIndexedDb, storageError, versionChangeError } from './storage.js'
import { canCoordinateTabs, coordinatorOf, Host, isHubUrl, TabCoordinator, type HubState, type TabEnvironment, type TabRole } from './tabs.js'
import type { DbLock } from '../core/log/log.js'

export interface BrowserOptions extends ReplicationOptions {
  /** The IndexedDB database name (default 'hyperemitter'); tabs on the same name share one log. */
  name?: string
  /**
   * Coordinate the tabs of this origin that use the same `name` (default
   * true where Web Locks and BroadcastChannel exist, i.e. secure contexts):
   * they share the IndexedDB log and its writer id, take turns writing it,
   * and one of them connects to the hubs for all (see ./tabs.ts). With
   * false, this emitter uses the database alone: then only one tab may use
   * `name` at a time.
   */
  tabs?: boolean
  /** ms a WebSocket gets to open before the attempt counts as failed (default 10000). */
  connectTimeout?: number
}

/** Where this tab stands with its hubs, for a status line. */
export interface ConnectionState {
  /**
   * 'synced': caught up with every hub; 'connecting': on the way;
   * 'offline': the browser is offline or no hub can be reached; 'local':
   * connect() was never called (and no hub is remembered).
   */
  state: 'synced' | 'connecting' | 'offline' | 'local'
  /** navigator.onLine. */
  online: boolean
  /** 'leader': this tab connects to the hubs for all tabs; 'follower': another tab does; 'single': no tab coordination. */
  role: TabRole | undefined
  /** Events emitted in this tab since it was last synced with its hubs (this page load). */
  pending: number
  hubs: Array<{ address: string; state: PeerState }>
}

/** Host-side status events forwarded as they are (the others are derived per tab from the peer views). */
const FORWARDED = ['peer:error', 'peer:progress'] as const

/**
 * HyperEmitter for browsers: the core, IndexedDB storage (browser-level),
 * WebSocket replication through hubs, and coordination of the tabs that
 * share one database (see ./tabs.ts for the design).
 */
export class BrowserHyperEmitter<E extends EventMap = EventMap> extends ReplicatedEmitter<E> {
  private readonly tabs: TabCoordinator | undefined
  /** Without tab coordination, this tab hosts its own hub connections. */
  private single: Host | undefined
  /** This tab's view of each hub connection (what `peers` returns). */
  private readonly views = new Map<string, Peer>()
  private readonly started: Promise<void>
  private current: ConnectionState
  private currentKey = ''
  /** Events this tab emitted (this page load), and how many of them its hubs had when it was last synced. */
  private emitted = 0
  private syncedEmitted = 0
  private readonly windowListeners: Array<[string, () => void]> = []

  protected static override defaultOptions(): BrowserOptions {
    // Hubs are dialed by the tab that hosts the log, not by ReplicatedEmitter.
    return { discover: false, reconnectKnown: false }
  }

  protected static override defaultDb(options: BrowserOptions): Db {
    const name = options.name ?? DEFAULT_DB_NAME
    if (typeof name !== 'string' || name === '') throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'name must be a non-empty string')
    if (typeof indexedDB === 'undefined') return memoryDb()
    if (options.tabs !== false && canCoordinateTabs()) return new TabCoordinator(name).db
    return openIndexedDb(name)
  }

  protected static override sharedDbLock(db: Db): DbLock | undefined {
    return coordinatorOf(db)?.lock
  }

  constructor(...args: ConstructorParameters<typeof ReplicatedEmitter>) {
    super(...args)
    this.tabs = coordinatorOf(this.db)
    onVersionChange(this.db, () => this.reportError(versionChangeError()))
    this.current = { state: 'local', online: isOnline(), role: undefined, pending: 0, hubs: [] }
    const hostStatus = new TypedEmitter<StatusEvents>()
    for (const event of FORWARDED) hostStatus.on(event, (info: any) => this.forward(event, info))
    // Failures of the host's own bookkeeping (remembering hubs) are this emitter's to report.
    hostStatus.on('error', (err: Error) => this.reportError(err))
    const options = this.options as BrowserOptions
    const env: TabEnvironment = {
      log: this.log,
      status: hostStatus,
      reportError: (err) => this.reportError(err),
      dial: (url) => connectWebSocket(url, { maxFrameSize: options.maxFrameSize, timeout: options.connectTimeout ?? 10_000 }),
      reconnectTimeout: options.reconnectTimeout,
      maxReconnectTimeout: options.maxReconnectTimeout,
      session: options.session,
      onChange: () => this.refresh(),
      onRole: (role) => this.status.emit('role', role),
    }
    this.log.onChange((entries, origin) => {
      // This tab's own appends carry no origin.
      if (origin !== undefined) return
      this.emitted += entries.length
      if (this.current.state === 'synced') this.syncedEmitted = this.emitted
      this.refresh()
    })
    this.started = this.ready().then(async () => {
      if (this.closed) return
      if (this.tabs) {
        await this.tabs.start(env)
        this.status.emit('role', this.tabs.role)
      } else {
        this.single = new Host(this.log, env, this.db, () => this.refresh())
        this.single.reconnectKnown()
        this.status.emit('role', 'single')
      }
      this.refresh()
    })
    this.started.catch(() => {})
    if (typeof addEventListener === 'function') {
      this.listen('online', () => {
        this.tabs?.online()
        this.single?.online()
        this.status.emit('online')
        this.refresh()
      })
      this.listen('offline', () => {
        this.tabs?.offline()
        this.single?.offline()
        this.status.emit('offline')
        this.refresh()
      })
    }
    this.onClose(async () => {
      for (const [type, listener] of this.windowListeners) removeEventListener(type, listener)
      await this.started.catch(() => {})
      await this.tabs?.close()
      await this.single?.close()
      for (const view of this.views.values()) {
        view.state = 'closed'
        view.rejectSynced(new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter closed before the first catch-up with this peer'))
      }
    })
  }

  /** 'leader', 'follower' or 'single' once ready (see BrowserOptions.tabs). */
  get role(): TabRole | undefined {
    return this.tabs ? this.tabs.role : this.single ? 'single' : undefined
  }

  /** Where this tab stands with its hubs; status 'connection' fires when it changes. */
  get connection(): ConnectionState {
    return this.current
  }

  /** This tab's view of every hub connection of the origin's log. */
  override get peers(): Peer[] {
    return [...this.views.values()]
  }

  /**
   * Replicate with a hub at `ws://…` or `wss://…`. Resolves with the Peer
   * once the hub accepted the connection (`peer.synced` resolves when this
   * tab is caught up with it). Unlike Node, a first attempt that fails is
   * retried too (with backoff, reported as status 'peer:error' /
   * 'peer:reconnecting'): a page may load offline. Rejects INVALID_ARGUMENT,
   * NOT_SUPPORTED (not a WebSocket URL), UNAUTHORIZED, VERSION_MISMATCH or CLOSED.
   */
  override connect(
    target: string | number,
    host?: string | ConnectOptions | Callback<Peer>,
    options?: ConnectOptions | Callback<Peer>,
    cb?: Callback<Peer>,
  ): Promise<Peer> {
    const args = [host, options, cb].filter((a) => a !== undefined)
    const callback = typeof args[args.length - 1] === 'function' ? (args.pop() as Callback<Peer>) : undefined
    if (typeof args[0] === 'string') args.shift()
    let promise: Promise<Peer>
    try {
      const { token, remember } = connectOptionsOf(args.shift())
      if (this.closed) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
      const url = this.toAddress(target)
      const view = this.view(url, token, true)
      promise = this.started.then(() => {
        if (this.closed) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
        if (this.tabs) this.tabs.dial(url, token, remember)
        else this.single!.hubs.keepConnected(url, token, remember)
        this.refresh()
        return whenConnected(view, this.status)
      })
    } catch (err) {
      promise = Promise.reject(err)
    }
    return withCallback(promise, callback)
  }

  /**
   * As in the core; a storage failure (quota exceeded, IndexedDB gone) also
   * goes to status 'error', and rejects STORAGE_FAILED saying what IndexedDB
   * did, with the original error as cause. In every tab it resolves once
   * IndexedDB committed the event.
   */
  override emit<K extends keyof E & string>(name: K, message: E[K], cb?: Callback): Promise<void> {
    const promise = super.emit(name, message).catch((err: unknown) => {
      if (!isHyperEmitterError(err, ErrorCodes.STORAGE_FAILED)) throw err
      this.reportError(storageError('could not store an event', err))
      throw storageError(`could not store the ${String(name)} event`, err)
    })
    return withCallback(promise, cb)
  }

  protected dial(address: string, { publicOnly = false }: { publicOnly?: boolean } = {}): Promise<FrameChannel> {
    // A browser cannot see what a name resolves to: with publicOnly, private IP addresses and localhost names are refused.
    if (publicOnly && isPrivateHost(new URL(address).hostname) === true) {
      return Promise.reject(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `refused to dial a private address announced by a peer (${address})`))
    }
    const { maxFrameSize, maxBufferedBytes, stallTimeout } = this.replication
    return connectWebSocket(address, { maxFrameSize, maxBufferedBytes, stallTimeout })
  }

  protected pickAddress(addresses: EventPeerMessage['addresses']): string | undefined {
    return addresses.find((a) => a.url)?.url
  }

  protected toAddress(target: string | number): string {
    if (typeof target === 'string' && isHubUrl(target)) {
      try {
        new URL(target)
      } catch (cause) {
        throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `not a valid URL: ${target}`, { cause })
      }
      return target
    }
    throw new HyperEmitterError(
      ErrorCodes.NOT_SUPPORTED,
      `browsers connect over WebSocket only: pass a ws:// or wss:// URL, not ${String(target)}`,
    )
  }

  private listen(type: string, listener: () => void): void {
    addEventListener(type, listener)
    this.windowListeners.push([type, listener])
  }

  private forward(event: (typeof FORWARDED)[number], info: any): void {
    this.status.emit(event, info)
    // A hub whose nodes this tab could not store: the storage failure is the emitter's error too.
    if (event === 'peer:error' && isHyperEmitterError(info?.error, ErrorCodes.STORAGE_FAILED)) {
      this.reportError(storageError('could not store events from a hub', info.error))
    }
  }

  private view(url: string, token?: string, revive = false): Peer {
    let view = this.views.get(url)
    // A hub given up on gets a new view when connect() is called for it again.
    if (!view || (view.state === 'closed' && revive)) {
      view = new Peer(url, token)
      this.views.set(url, view)
    }
    return view
  }

  /** Recompute every view and the connection state from the host's hub states. */
  private refresh(): void {
    if (this.closed) return
    const hubs: HubState[] = this.tabs ? this.tabs.hubs : (this.single?.hubStates() ?? [])
    for (const hub of hubs) if (hub.state !== 'closed') this.view(hub.address)
    for (const view of this.views.values()) {
      if (view.state === 'closed') continue
      const hub = hubs.find((h) => h.address === view.address)
      // 'closed' without a failure: the host is going away, and the next one dials again.
      const state: PeerState = !hub || (hub.state === 'closed' && !hub.failed) ? 'connecting' : hub.state
      if (hub?.id) view.id = hub.id
      this.transition(view, state, hub?.failed)
    }
    const online = isOnline()
    const views = [...this.views.values()].filter((v) => v.state !== 'closed')
    let state: ConnectionState['state']
    if (views.length === 0) state = 'local'
    else if (views.every((v) => v.state === 'synced')) state = 'synced'
    else if (!online || views.every((v) => v.state === 'reconnecting')) state = 'offline'
    else state = 'connecting'
    if (state === 'synced') this.syncedEmitted = this.emitted
    const next: ConnectionState = {
      state,
      online,
      role: this.role,
      pending: this.emitted - this.syncedEmitted,
      hubs: views.map((v) => ({ address: v.address, state: v.state })),
    }
    const key = JSON.stringify(next)
    if (key === this.currentKey) return
    this.current = next
    this.currentKey = key
    this.status.emit('connection', next)
  }

  private transition(view: Peer, state: PeerState, failed?: string): void {
    const before = view.state
    if (before === state) return
    view.state = state
    const info = { address: view.address, id: view.id, transport: 'websocket' as const, direction: 'outgoing' as const }
    const wasUp = before === 'connected' || before === 'synced'
    const isUp = state === 'connected' || state === 'synced'
    if (wasUp && !isUp) this.status.emit('peer:disconnected', info)
    if (!wasUp && isUp) this.status.emit('peer:connected', info)
    if (state === 'synced') {
      view.attempt = 0
      view.resolveSynced()
      this.status.emit('peer:synced', info)
    }
    if (state === 'reconnecting') this.status.emit('peer:reconnecting', info)
    if (state === 'closed') {
      const code = (Object.values(ErrorCodes) as string[]).includes(failed ?? '') ? (failed as ErrorCode) : ErrorCodes.CONNECTION_FAILED
      const gaveUp = () => new HyperEmitterError(code, `gave up on ${view.address} (${code})`)
      view.rejectSynced(gaveUp())
      this.status.emit('peer:failed', { ...info, error: gaveUp() })
    }
  }
}

function isOnline(): boolean {
  return typeof navigator === 'object' && navigator !== null && typeof navigator.onLine === 'boolean' ? navigator.onLine : true
}

/** Resolves with `view` once it is connected or synced; rejects if it is given up. */
function whenConnected(view: Peer, status: TypedEmitter<StatusEvents>): Promise<Peer> {
  if (view.state === 'connected' || view.state === 'synced') return Promise.resolve(view)
  return new Promise((resolve, reject) => {
    const onConnected = (info: { address?: string }) => {
      if (info.address !== view.address) return
      cleanup()
      resolve(view)
    }
    const onFailed = (info: { address?: string; error?: Error }) => {
      if (info.address !== view.address) return
      cleanup()
      reject(info.error ?? new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `gave up on ${view.address}`))
    }
    const onClose = () => {
      cleanup()
      reject(new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed'))
    }
    const cleanup = () => {
      status.off('peer:connected', onConnected)
      status.off('peer:failed', onFailed)
      status.off('close', onClose)
    }
    status.on('peer:connected', onConnected)
    status.on('peer:failed', onFailed)
    status.on('close', onClose)
  })
}
