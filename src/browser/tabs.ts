/**
 * Tabs of one origin sharing one IndexedDB log.
 *
 * The design, in four rules:
 *  1. One writer. The tab holding the Web Lock `hyperemitter:<name>` (the
 *     leader) is the only one that opens the IndexedDB database. A tab that
 *     gets the lock at start-up runs its emitter straight on IndexedDB; the
 *     others run theirs on memory-level, each as its own writer.
 *  2. One hub per origin. The leader's log (the "host" log) is the one that
 *     connects to the WebSocket hubs, and it listens on BroadcastChannel.
 *     Every other tab replicates with it over a BroadcastChannel frame
 *     channel, with the same SyncSession protocol as over a WebSocket: tabs
 *     exchange events with each other whether or not a hub is reachable, and
 *     what a follower wrote reaches the hub through the leader.
 *  3. Handover. Followers queue for the lock; when the leader's page goes,
 *     the browser grants it to one of them. That tab opens the IndexedDB log
 *     as the new host log (next to its memory log, which connects to it like
 *     any follower), takes over the hub connections and announces itself.
 *     Followers reconnect; each catch-up sends the new host whatever it lacks,
 *     so events a follower wrote while the old leader was dying are not lost,
 *     and the log's content addressing makes every duplicate a no-op.
 *  4. Hub state is relayed. The host tells all tabs, over a control
 *     BroadcastChannel, how each hub connection stands, and each tab combines
 *     that with its own link to the host into its "synced?" answer.
 *
 * A follower's emit resolves only once the host log stored the event (its
 * memory log dies with the tab): the emitter's EmitGate is the coordinator's
 * HostGate, which the link's SyncSession moves on as the host acks our nodes
 * (SyncSession.storedByPeer). Without a host, emits wait for the next one.
 */
import type { Db, EmitGate, HeldEmit, StatusEvents } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { HashFn } from '../core/types.js'
import { Log } from '../core/log/log.js'
import type { TypedEmitter } from '../core/emitter/typed-emitter.js'
import type { SyncableLog } from '../core/types.js'
import { DbKnownPeers } from '../sync/known-peers.js'
import { PeerManager, type PeerState } from '../sync/peers.js'
import { SyncSession, type SessionOptions } from '../sync/session.js'
import { connectBroadcast, holdLifeLock, listenBroadcast } from '../transport/broadcast.js'
import type { FrameChannel } from '../transport/channel.js'
import { memoryDb, onVersionChange, openIndexedDb, storageError, TabDb, versionChangeError } from './storage.js'

export type TabRole = 'leader' | 'follower' | 'single'

/** How long a closing follower waits for the host to store its emits in flight, and how often it looks. */
const FLUSH_MS = 2000
const FLUSH_POLL_MS = 10

/** How the host's connection to one hub stands. */
export interface HubState {
  address: string
  state: PeerState
  /** The hub's writer id, once known. */
  id?: string
  /** The code of the error the host gave up on this hub for (UNAUTHORIZED, VERSION_MISMATCH). */
  failed?: string
}

/** This tab's own link to the host log: 'self' when its emitter's log is the host log. */
export type LinkState = 'self' | 'connecting' | 'connected' | 'synced'

/** What the tab machinery needs from its emitter. */
export interface TabEnvironment {
  log: Log
  status: TypedEmitter<StatusEvents>
  reportError(err: unknown): void
  dial(url: string): Promise<FrameChannel>
  reconnectTimeout?: number
  maxReconnectTimeout?: number
  session?: Omit<SessionOptions, 'authenticate' | 'token'>
  maxFrameSize?: number
  hash?: HashFn
  /** Told whenever the hub states or this tab's link change. */
  onChange(): void
  /** Told when this tab becomes the leader after start-up. */
  onRole(role: TabRole): void
}

type ControlMessage =
  | { t: 'leader' }
  | { t: 'hello' }
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
 * The log that owns the hub connections: the leader's, which also serves the
 * other tabs (listen()), or without tab coordination the emitter's own.
 */
export class Host {
  readonly hubs: PeerManager
  private readonly sessions = new Set<SyncSession>()
  private stopListening: (() => void) | undefined

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

  /** Serve followers on `rendezvous`. */
  listen(rendezvous: string, life: string | undefined): void {
    this.stopListening = listenBroadcast(rendezvous, (channel) => this.accept(channel), {
      life,
      maxFrameSize: this.env.maxFrameSize,
    })
  }

  /** Every hub: those being dialed or connected, and those given up on (with the error code). */
  hubStates(): HubState[] {
    const states: HubState[] = this.hubs.peers.map((p) => ({ address: p.address, state: p.state, id: p.id }))
    for (const [address, code] of this.hubs.failed) {
      if (!states.some((s) => s.address === address)) states.push({ address, state: 'closed', failed: code })
    }
    return states
  }

  private accept(channel: FrameChannel): void {
    const session = new SyncSession(this.log, channel, { ...this.env.session })
    this.sessions.add(session)
    session.on('close', () => this.sessions.delete(session))
    session.start()
  }

  async close(): Promise<void> {
    this.stopListening?.()
    const closing = [...this.sessions].map(
      (session) =>
        new Promise<void>((resolve) => {
          session.once('close', () => resolve())
          session.close()
        }),
    )
    await Promise.all([...closing, this.hubs.close()])
  }
}

/**
 * Holds the emits of a tab whose emitter log is not the host log until the
 * host log has stored them: `advance(seq)` with the highest seq of this tab's
 * writer the host acked (each session's SyncSession.storedByPeer; the host
 * logs of successive leaders are one IndexedDB database, so it only grows).
 * Holds at most the emits in flight, in seq order.
 */
export class HostGate implements EmitGate {
  /** Highest seq of this tab's writer the host log is known to have stored. */
  stored = 0
  /** This tab's emitter log is the host log: nothing to wait for. */
  bypassed = false
  private closed = false
  private seqs: number[] = []
  private emits: Array<HeldEmit | undefined> = []
  private head = 0

  /** Emits waiting for the host. */
  get size(): number {
    return this.emits.length - this.head
  }

  hold(seq: number, emit: HeldEmit): void {
    if (this.bypassed || seq <= this.stored) emit.resolve()
    else if (this.closed) emit.reject(notHandedOn())
    else {
      this.seqs.push(seq)
      this.emits.push(emit)
    }
  }

  /** The host log holds this tab's writer's nodes through `seq`. */
  advance(seq: number): void {
    if (seq <= this.stored) return
    this.stored = seq
    let i = this.head
    while (i < this.emits.length && this.seqs[i] <= seq) {
      const emit = this.emits[i]!
      this.emits[i++] = undefined
      emit.resolve()
    }
    this.drop(i)
  }

  /** From now on this tab's emitter log is the host log: resolve everything. */
  open(): void {
    this.bypassed = true
    this.advance(Number.MAX_SAFE_INTEGER)
  }

  /** The link to the host is gone for good: what waits now will never be handed on. */
  close(): void {
    if (this.bypassed || this.closed) return
    this.closed = true
    const waiting = this.emits.slice(this.head)
    this.drop(this.emits.length)
    for (const emit of waiting) emit!.reject(notHandedOn())
  }

  private drop(upTo: number): void {
    if (upTo >= this.emits.length) {
      this.seqs = []
      this.emits = []
      this.head = 0
    } else if (upTo > 1024 && upTo * 2 >= this.emits.length) {
      this.seqs = this.seqs.slice(upTo)
      this.emits = this.emits.slice(upTo)
      this.head = 0
    } else this.head = upTo
  }
}

/** A fresh error per emit (one object rejected twice would be shared, mutable state). */
function notHandedOn(): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter closed before the leader tab stored this event (it was written in a follower tab)')
}

/** A follower's link to the host log: reconnects until closed. */
class Client {
  state: LinkState = 'connecting'
  private session: SyncSession | undefined
  private closed = false
  private wake: (() => void) | undefined
  private readonly done: Promise<void>

  constructor(
    private readonly log: SyncableLog,
    private readonly rendezvous: string,
    private readonly life: string | undefined,
    private readonly env: TabEnvironment,
    private readonly onState: () => void,
    private readonly gate: HostGate,
  ) {
    this.done = this.run()
  }

  /** A new host announced itself: drop the old link (its host is gone) and connect now. */
  reconnect(): void {
    this.session?.close()
    this.wake?.()
  }

  async close(): Promise<void> {
    this.closed = true
    this.session?.close()
    this.wake?.()
    await this.done
  }

  private set(state: LinkState): void {
    if (this.state === state) return
    this.state = state
    this.onState()
  }

  private async run(): Promise<void> {
    let failures = 0
    while (!this.closed) {
      this.set('connecting')
      let channel: FrameChannel
      try {
        channel = await connectBroadcast(this.rendezvous, { timeout: 1000, life: this.life, maxFrameSize: this.env.maxFrameSize })
      } catch {
        // No host yet (a handover in progress): wait a little, or until one announces itself.
        failures++
        await this.sleep(Math.min(1000, 50 * 2 ** Math.min(failures, 5)) * (0.5 + Math.random() / 2))
        continue
      }
      if (this.closed) {
        channel.close()
        break
      }
      failures = 0
      const session = new SyncSession(this.log, channel, { ...this.env.session })
      this.session = session
      await new Promise<void>((resolve) => {
        session.on('accepted', () => this.set('connected'))
        session.on('synced', () => this.set('synced'))
        session.on('stored', (seq: number) => this.gate.advance(seq))
        session.on('close', () => resolve())
        session.start()
      })
      this.session = undefined
      if (!this.closed) await this.sleep(20 + Math.random() * 80)
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.wake = () => {
        this.wake = undefined
        done()
      }
    })
  }
}

/**
 * One tab's part in the origin's set of tabs on database `name`: the Web
 * Lock election, the host (when leading) and the link to the host (when
 * following). Created with the emitter's TabDb (which asks `elect()` which
 * backend to open), started once the emitter is ready.
 */
export class TabCoordinator {
  role: TabRole | undefined
  /** The latest hub states: this tab's own when hosting, else as the host last told. */
  hubs: HubState[] = []
  readonly db: TabDb
  /** The emitter's EmitGate: holds this tab's emits until the host log stored them, unless this tab's log is it. */
  readonly gate = new HostGate()
  private readonly leaderLock: string
  private readonly rendezvous: string
  private readonly controlName: string
  private env: TabEnvironment | undefined
  private control: BroadcastChannel | undefined
  private life: { name: string; release: () => void } | undefined
  private host: Host | undefined
  private client: Client | undefined
  /** The IndexedDB log a promoted follower hosts (the leader at start-up hosts its emitter's own log). */
  private store: { log: Log; db: Db } | undefined
  private releaseLeader: (() => void) | undefined
  /** This tab got the lock after start-up (it hosts a second, IndexedDB log next to its memory one). */
  private promoted = false
  private readonly abortQueue = new AbortController()
  private readonly dials = new Map<string, { token?: string; remember?: boolean }>()
  private closed = false

  constructor(readonly name: string) {
    this.leaderLock = `hyperemitter:${name}`
    this.rendezvous = `hyperemitter:${name}:sync`
    this.controlName = `hyperemitter:${name}:tabs`
    this.db = new TabDb(() => this.elect())
    this.db.afterClose = () => this.releaseLeader?.()
    coordinators.set(this.db, this)
  }

  /** This tab's own link to the host. */
  get link(): LinkState {
    if (this.role === 'leader' && !this.store) return 'self'
    return this.client?.state ?? 'connecting'
  }

  /** Try for the lock without waiting: IndexedDB if we got it, memory otherwise. */
  private async elect(): Promise<Db> {
    const got = await new Promise<boolean>((resolve, reject) => {
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
    this.role = got ? 'leader' : 'follower'
    if (got) this.gate.open()
    return got ? openIndexedDb(this.name) : memoryDb()
  }

  /** Called once the emitter's log is open. */
  async start(env: TabEnvironment): Promise<void> {
    this.env = env
    this.life = await holdLifeLock()
    if (this.closed) {
      this.life?.release()
      return
    }
    this.control = new BroadcastChannel(this.controlName)
    this.control.onmessage = (event: MessageEvent) => this.onControl(event.data as ControlMessage)
    if (this.role === 'leader') {
      this.becomeHost(env.log, this.db)
    } else {
      this.client = new Client(env.log, this.rendezvous, this.life?.name, env, () => env.onChange(), this.gate)
      this.post({ t: 'hello' })
      // Wait for the leader to go; then take over.
      navigator.locks
        .request(this.leaderLock, { signal: this.abortQueue.signal }, async () => {
          if (this.closed) return
          const released = new Promise<void>((release) => (this.releaseLeader = release))
          await this.promote()
          return released
        })
        .catch(() => {})
    }
    env.onChange()
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

  /**
   * Before close(): while `settled()` is false (emits of this tab in flight)
   * and this tab's emits wait for the host, keep the link up a little longer
   * (at most FLUSH_MS) so they can still be stored and acked.
   */
  async flush(settled: () => boolean): Promise<void> {
    for (let waited = 0; waited < FLUSH_MS && !this.closed && !this.gate.bypassed && !settled(); waited += FLUSH_POLL_MS) {
      await new Promise((resolve) => setTimeout(resolve, FLUSH_POLL_MS))
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.abortQueue.abort()
    if (this.control) {
      this.control.onmessage = null
      this.control.close()
    }
    await this.client?.close()
    this.gate.close()
    await this.host?.close()
    if (this.store) {
      await this.store.log.close().catch(() => {})
      await this.store.db.close().catch(() => {})
    }
    // A leader from start-up releases the lock only once its emitter's IndexedDB is closed
    // (TabDb.afterClose): the log's last batch must not race a new leader's first.
    if (this.promoted) this.releaseLeader?.()
    this.life?.release()
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
      case 'leader':
        // Everything this tab asked of the old host, it asks of the new one.
        for (const [url, { token, remember }] of this.dials) this.post({ t: 'dial', url, token, remember })
        this.client?.reconnect()
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

  private becomeHost(log: SyncableLog, knownPeersDb: Db | undefined): void {
    const env = this.env!
    this.host = new Host(log, env, knownPeersDb, () => this.publish())
    this.host.listen(this.rendezvous, this.life?.name)
    for (const [url, { token, remember }] of this.dials) this.host.hubs.keepConnected(url, token, remember)
    this.host.reconnectKnown()
    this.post({ t: 'leader' })
    this.publish()
  }

  /** The leader went away and the lock is ours: host the IndexedDB log from this tab. */
  private async promote(): Promise<void> {
    const env = this.env!
    this.promoted = true
    const db = openIndexedDb(this.name)
    onVersionChange(db, () => env.reportError(versionChangeError()))
    const log = new Log(db, { hash: env.hash })
    let hostLog: SyncableLog = log
    try {
      await log.open()
      this.store = { log, db }
    } catch (err) {
      // No storage: still serve the other tabs and the hubs, from this tab's memory log.
      env.reportError(storageError('could not open the shared IndexedDB log; this tab serves the others from memory', err))
      await db.close().catch(() => {})
      hostLog = env.log
    }
    if (this.closed) {
      await log.close().catch(() => {})
      await db.close().catch(() => {})
      this.store = undefined
      this.releaseLeader?.()
      return
    }
    this.role = 'leader'
    this.becomeHost(hostLog, this.store?.db)
    if (this.store) this.client?.reconnect()
    else {
      // This tab's memory log is the host log now: its emits have nowhere further to go.
      this.gate.open()
      await this.client?.close()
      this.client = undefined
    }
    env.onRole('leader')
    env.onChange()
  }

  private publish(): void {
    if (!this.host) return
    this.hubs = this.host.hubStates()
    this.post({ t: 'hub', hubs: this.hubs })
    this.env?.onChange()
  }
}

const coordinators = new WeakMap<Db, TabCoordinator>()

/** The coordinator that made `db` (a TabDb), if any. */
export function coordinatorOf(db: Db): TabCoordinator | undefined {
  return coordinators.get(db)
}
