/**
 * Tabs of one origin sharing one IndexedDB log.
 *
 * The design, in four rules:
 *  1. One log, read in place. Every tab opens the same IndexedDB database
 *     and reads its history there: a new tab copies nothing, so it opens in
 *     the same time and memory whatever the log's size.
 *  2. One writer, taking turns. Every tab writes its own emits, under the
 *     Web Lock `hyperemitter:<name>` (LogOptions.lock): inside
 *     it the tab's log first loads what the others committed, then appends
 *     on top. All tabs share the writer id stored in the database, so
 *     `getId()` is the same in every tab and after every reload, and the
 *     clock grows with devices, not with tab sessions. An emit is durable
 *     when it resolves, in any tab: nothing is handed over, so nothing is
 *     lost or written twice when a tab goes.
 *  3. One hub connection per origin. The tab holding the Web Lock
 *     `hyperemitter:<name>:hubs` (the leader) dials the WebSocket hubs from its
 *     log. When its page goes, the browser grants the lock to another tab,
 *     which takes the hubs over; emits never wait for that.
 *  4. Tabs tell each other. On the BroadcastChannel `hyperemitter:<name>:tabs`
 *     a tab that committed says so (the others load it: Log.refresh()), the
 *     leader tells how each hub connection stands, and followers pass on
 *     connect() calls to the leader.
 *
 * The write lock has the name the leader lock had in 0.1.0, whose leader
 * tab wrote IndexedDB alone, holding it for its whole life: a tab of that
 * version still open (after a deploy) keeps this version's tabs from
 * writing under it, rather than both writing change N + 1.
 */
import type { Db, StatusEvents } from '../core/emitter.js'
import type { TypedEmitter } from '../core/emitter/typed-emitter.js'
import { COMMITTED_ELSEWHERE, type DbLock, type Log } from '../core/log/log.js'
import type { SyncableLog } from '../core/types.js'
import { DbKnownPeers } from '../sync/known-peers.js'
import { PeerManager, type PeerState } from '../sync/peers.js'
import type { SessionOptions } from '../sync/session.js'
import type { FrameChannel } from '../transport/channel.js'
import { openIndexedDb } from './storage.js'

export type TabRole = 'leader' | 'follower' | 'single'

/** How the host's connection to one hub stands. */
export interface HubState {
  address: string
  state: PeerState
  /** The hub's writer id, once known. */
  id?: string
  /** The code of the error the host gave up on this hub for (UNAUTHORIZED, VERSION_MISMATCH). */
  failed?: string
}

/** What the tab machinery needs from its emitter. */
export interface TabEnvironment {
  log: Log
  status: TypedEmitter<StatusEvents>
  reportError(err: unknown): void
  dial(url: string): Promise<FrameChannel>
  reconnectTimeout?: number
  maxReconnectTimeout?: number
  session?: Omit<SessionOptions, 'authenticate' | 'token'>
  /** Told whenever the hub states change. */
  onChange(): void
  /** Told when this tab becomes the leader after start-up. */
  onRole(role: TabRole): void
}

type ControlMessage =
  | { t: 'leader' }
  | { t: 'hello' }
  | { t: 'committed' }
  | { t: 'hub'; hubs: HubState[] }
  | { t: 'dial'; url: string; token?: string; remember?: boolean }

/** The addresses a page can dial: WebSocket URLs. */
export function isHubUrl(address: string): boolean {
  return /^wss?:\/\//.test(address)
}

/** True where tabs can be coordinated: Web Locks and BroadcastChannel (secure contexts of browsers). */
export function canCoordinateTabs(): boolean {
  return typeof navigator === 'object' && navigator !== null && 'locks' in navigator && !!navigator.locks && typeof BroadcastChannel === 'function'
}

/**
 * The log that owns the hub connections: the leader tab's, or without tab
 * coordination the emitter's own.
 */
export class Host {
  readonly hubs: PeerManager

  constructor(
    readonly log: SyncableLog,
    private readonly env: TabEnvironment,
    knownPeersDb: Db | undefined,
    onHubChange: () => void,
  ) {
    const known = knownPeersDb ? new DbKnownPeers(knownPeersDb) : undefined
    this.hubs = new PeerManager(log, {
      dial: env.dial,
      status: env.status,
      reconnectTimeout: env.reconnectTimeout,
      maxReconnectTimeout: env.maxReconnectTimeout,
      session: env.session,
      store: known && {
        // The db may also remember peers of other runtimes (TCP), which a page cannot dial.
        list: async () => (await known.list()).filter((peer) => isHubUrl(peer.address)),
        remember: (address, lastSynced, token) => known.remember(address, lastSynced, token),
        forget: (address) => known.forget(address),
      },
      onChange: onHubChange,
    })
  }

  /** Dial every remembered hub, in the background. */
  reconnectKnown(): void {
    this.hubs.reconnectKnown().catch((err) => this.env.status.emit('error', err))
  }

  /** The page came back online: hubs waiting out a backoff try now. */
  online(): void {
    this.hubs.reconnectNow()
  }

  /** The page went offline: stop trusting the hub sockets. */
  offline(): void {
    this.hubs.dropOutgoing('the browser went offline')
  }

  /** Every hub: those being dialed or connected, and those given up on (with the error code). */
  hubStates(): HubState[] {
    const states: HubState[] = this.hubs.peers.map((p) => ({ address: p.address, state: p.state, id: p.id }))
    for (const [address, code] of this.hubs.failed) {
      if (!states.some((s) => s.address === address)) states.push({ address, state: 'closed', failed: code })
    }
    return states
  }

  close(): Promise<void> {
    return this.hubs.close()
  }
}

/**
 * One tab's part in the origin's set of tabs on database `name`: its
 * IndexedDB database, the write lock its log takes turns with, the leader
 * election, and the host (when leading). Created with the emitter's db,
 * started once the emitter is ready.
 */
export class TabCoordinator {
  role: TabRole | undefined
  /** The latest hub states: this tab's own when hosting, else as the host last told. */
  hubs: HubState[] = []
  readonly db: Db
  private readonly leaderLock: string
  private readonly writeLock: string
  private readonly controlName: string
  private env: TabEnvironment | undefined
  private control: BroadcastChannel | undefined
  private host: Host | undefined
  private releaseLeader: (() => void) | undefined
  private readonly abortQueue = new AbortController()
  private readonly dials = new Map<string, { token?: string; remember?: boolean }>()
  private stopWatching: (() => void) | undefined
  private closed = false

  constructor(readonly name: string) {
    this.leaderLock = `hyperemitter:${name}:hubs`
    this.writeLock = `hyperemitter:${name}`
    this.controlName = `hyperemitter:${name}:tabs`
    this.db = openIndexedDb(name)
    coordinators.set(this.db, this)
  }

  /** The log's turn to write (exclusive) or open (shared) on the database (see LogOptions.lock). */
  readonly lock: DbLock = <T>(mode: 'exclusive' | 'shared', fn: () => Promise<T>): Promise<T> =>
    navigator.locks.request(this.writeLock, { mode }, fn) as Promise<T>

  /** Called once the emitter's log is open. */
  async start(env: TabEnvironment): Promise<void> {
    this.env = env
    this.control = new BroadcastChannel(this.controlName)
    this.control.onmessage = (event: MessageEvent) => this.onControl(event.data as ControlMessage)
    // What this tab commits, the others load; what they loaded, they need not hear again.
    this.stopWatching = env.log.onChange((_entries, origin) => {
      if (origin !== COMMITTED_ELSEWHERE) this.post({ t: 'committed' })
    })
    // Whatever the others committed before the channel was open.
    this.refresh()
    const leading = await new Promise<boolean>((resolve, reject) => {
      navigator.locks
        .request(this.leaderLock, { ifAvailable: true }, (lock) => {
          if (!lock) {
            resolve(false)
            return undefined
          }
          resolve(true)
          return new Promise<void>((release) => (this.releaseLeader = release))
        })
        .catch(reject)
    })
    if (this.closed) {
      this.releaseLeader?.()
      return
    }
    if (leading) {
      this.role = 'leader'
      this.becomeHost()
      return
    }
    this.role = 'follower'
    this.post({ t: 'hello' })
    // Wait for the leader to go; then take over.
    navigator.locks
      .request(this.leaderLock, { signal: this.abortQueue.signal }, () => {
        if (this.closed) return
        const released = new Promise<void>((release) => (this.releaseLeader = release))
        this.role = 'leader'
        this.becomeHost()
        env.onRole('leader')
        return released
      })
      .catch(() => {})
  }

  /** Dial `url` from the host log (directly if this tab hosts, else by asking the host). */
  dial(url: string, token: string | undefined, remember?: boolean): void {
    const before = this.dials.get(url)
    this.dials.set(url, { token: token ?? before?.token, remember: remember ?? before?.remember })
    if (this.host) this.host.hubs.keepConnected(url, token, remember)
    else this.post({ t: 'dial', url, token, remember })
  }

  /** The window's 'online' event, for the host (if this tab is it). */
  online(): void {
    this.host?.online()
  }

  /** The window's 'offline' event, for the host (if this tab is it). */
  offline(): void {
    this.host?.offline()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.abortQueue.abort()
    this.stopWatching?.()
    if (this.control) {
      this.control.onmessage = null
      this.control.close()
    }
    await this.host?.close()
    this.releaseLeader?.()
  }

  private refresh(): void {
    this.env?.log.refresh().catch((err) => {
      if (!this.closed) this.env?.reportError(err)
    })
  }

  private post(message: ControlMessage): void {
    try {
      this.control?.postMessage(message)
    } catch {
      // Closed meanwhile.
    }
  }

  private onControl(msg: ControlMessage): void {
    if (this.closed || typeof msg !== 'object' || msg === null) return
    switch (msg.t) {
      case 'committed':
        this.refresh()
        return
      case 'leader':
        // Everything this tab asked of the old host, it asks of the new one.
        for (const [url, { token, remember }] of this.dials) this.post({ t: 'dial', url, token, remember })
        return
      case 'hello':
        if (this.host) this.publish()
        return
      case 'dial':
        if (this.host && typeof msg.url === 'string' && isHubUrl(msg.url)) {
          const token = typeof msg.token === 'string' ? msg.token : undefined
          this.host.hubs.keepConnected(msg.url, token, typeof msg.remember === 'boolean' ? msg.remember : undefined)
        }
        return
      case 'hub':
        if (!this.host && Array.isArray(msg.hubs)) {
          this.hubs = msg.hubs
          this.env?.onChange()
        }
        return
    }
  }

  private becomeHost(): void {
    const env = this.env!
    this.host = new Host(env.log, env, this.db, () => this.publish())
    for (const [url, { token, remember }] of this.dials) this.host.hubs.keepConnected(url, token, remember)
    this.host.reconnectKnown()
    this.post({ t: 'leader' })
    this.publish()
  }

  private publish(): void {
    if (!this.host) return
    this.hubs = this.host.hubStates()
    this.post({ t: 'hub', hubs: this.hubs })
    this.env?.onChange()
  }
}

const coordinators = new WeakMap<Db, TabCoordinator>()

/** The coordinator that made `db`, if any. */
export function coordinatorOf(db: Db): TabCoordinator | undefined {
  return coordinators.get(db)
}
