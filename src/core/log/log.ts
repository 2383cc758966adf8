/**
 * The persistent Merkle DAG log over an injected abstract-level db: its
 * public face. Each concern lives beside it: format.ts (records), open.ts,
 * commit-queue.ts and batch.ts (writes), verify.ts (received nodes),
 * reader.ts, cursor.ts and missing.ts (reads), listeners.ts.
 */
import type { AbstractLevel } from 'abstract-level'
import { equalBytes, toHex } from '../bytes/bytes.js'
import { PackedBytes } from '../bytes/packed.js'
import { Slab } from '../bytes/slab.js'
import { sha256 } from '../bytes/hash.js'
import { checkSecretKey, defaultEd25519, type Ed25519 } from '../identity/ed25519.js'
import type { Identity } from '../identity/stored-key.js'
import { nodeMessage, type WriterKey } from '../identity/writer-key.js'
import { KEY_BYTES } from '../codec/node.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { AddOptions, Author, ChangeListener, Clock, HashFn, LogEntry, NodeSignature, ReadOptions, SyncableLog } from '../types.js'
import { BatchBuilder } from './batch.js'
import { closedError, CommitQueue, type CommitTarget } from './commit-queue.js'
import { ChunkCursor } from './cursor.js'
import { META_KEY, openSublevel, storageFailed } from './format.js'
import { ChangeListeners } from './listeners.js'
import { missingPages } from './missing.js'
import { loadLog } from './open.js'
import { ChangeReader, type ReaderSource } from './reader.js'
import type { DbLock } from './shared.js'
import { ADD, APPEND, type AppendSink, type Incoming, RUN, type SignatureCheck } from './requests.js'
import { type Rechained, rechain } from './rechain.js'
import { changeOfSeq } from './missing.js'
import { HELD, LogState, UNKNOWN } from './state.js'
import { ChunkStore } from './store.js'
import { type LastWriter, lookupKeys, prepareIncoming, Verifier } from './verify.js'
import { attachSignatures, checkSignatures, storedSignature } from './signatures.js'

export { decodeNode, encodeNode } from '../codec/node.js'
export type { NodeFields } from '../codec/node.js'
export type { AppendSink } from './requests.js'
export type { Rechained } from './rechain.js'
export { COMMITTED_ELSEWHERE, type DbLock } from './shared.js'

export interface LogOptions {
  /** SHA-256 (default: @noble/hashes, sync, works in browsers). The Node entry injects node:crypto's. */
  hash?: HashFn
  /** Max nodes per group-commit batch (default 1000; bigger batches add nothing). */
  maxBatch?: number
  /**
   * How many keys of recently stored nodes to remember whole, so link checks
   * of live foreign nodes need no db read (default 16384; older ones are
   * confirmed against the db).
   */
  recentKeys?: number
  /**
   * Entries a live read() buffers for a slow consumer before it drops them
   * and pages from the db instead (default 8192), so memory stays bounded.
   */
  liveBuffer?: number
  /**
   * Whether the db may be handed records that are views into a buffer
   * shared with other records (default false). Small records (an awaited
   * emit's) then come from a slab instead of an allocation each. True suits
   * dbs that copy a value when batch() is called (classic-level) or keep the
   * view as it is (memory-level); not a raw IndexedDB store, whose
   * structured clone keeps a view's whole buffer.
   */
  sharedRecordBuffers?: boolean
  /** Ed25519 for signing and verifying (default: WebCrypto, or @noble/curves where it lacks Ed25519). The Node entry injects node:crypto's. */
  ed25519?: Ed25519
  /**
   * The 32-byte Ed25519 secret key of this log's writer, for an application
   * that keeps its own; then the db stores only the public key, and every
   * open needs the same key. Default: a key made at first open, kept in the db.
   */
  secretKey?: Uint8Array
  /**
   * For several Logs on one db at once (browser tabs on one IndexedDB log):
   * a lock they all take (a Web Lock, say). The log writes only holding it
   * 'exclusive', each time first loading what the others committed (see
   * refresh()), so all of them write as one writer, one batch after
   * another; it opens holding it 'shared' (or 'exclusive' on a db that has
   * no log yet, so two never make up two writer ids).
   */
  lock?: DbLock
}

const DEFAULT_MAX_BATCH = 1000
const DEFAULT_RECENT_KEYS = 16384
// A live reader whose consumer falls this far behind drops its buffer and
// pages from the db instead, so a slow consumer cannot grow memory.
const DEFAULT_LIVE_BUFFER = 8192
const EMPTY = new Uint8Array(0)

/**
 * The persistent Merkle DAG log: local appends, verified foreign nodes,
 * change-ordered reads and what-a-peer-lacks queries, over any abstract-level db.
 */
export class Log implements SyncableLog {
  private readonly hash: HashFn
  private readonly ed25519: Ed25519
  private readonly secretKey: Uint8Array | undefined
  private readonly store: ChunkStore
  private readonly state: LogState
  private readonly listeners = new ChangeListeners()
  private readonly queue: CommitQueue
  // Incoming nodes' private copies (see Slab).
  private readonly slab = new Slab(64 * 1024)
  private readonly source: ReaderSource

  private status: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new'
  private loaded = false
  private openPromise: Promise<void> | undefined
  private closePromise: Promise<void> | undefined
  private readonly lock: DbLock | undefined

  constructor(
    private readonly db: AbstractLevel<any, any, any>,
    options: LogOptions = {},
  ) {
    if (db === null || typeof db !== 'object' || typeof db.sublevel !== 'function') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'Log needs an abstract-level database')
    }
    const maxBatch = options.maxBatch ?? DEFAULT_MAX_BATCH
    const recentKeys = options.recentKeys ?? DEFAULT_RECENT_KEYS
    const liveBuffer = options.liveBuffer ?? DEFAULT_LIVE_BUFFER
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'maxBatch must be a positive integer', { details: { maxBatch } })
    }
    if (!Number.isSafeInteger(recentKeys) || recentKeys < 0) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'recentKeys must be a non-negative integer', { details: { recentKeys } })
    }
    if (!Number.isSafeInteger(liveBuffer) || liveBuffer < 1) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'liveBuffer must be a positive integer', { details: { liveBuffer } })
    }
    if (options.hash !== undefined && typeof options.hash !== 'function') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'hash must be a function')
    }
    if (options.sharedRecordBuffers !== undefined && typeof options.sharedRecordBuffers !== 'boolean') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'sharedRecordBuffers must be a boolean')
    }
    if (options.secretKey !== undefined) checkSecretKey(options.secretKey)
    if (options.ed25519 !== undefined && (typeof options.ed25519?.signer !== 'function' || typeof options.ed25519?.verify !== 'function')) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'ed25519 must have signer() and verify()')
    }
    if (options.lock !== undefined && typeof options.lock !== 'function') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'lock must be a function')
    }
    this.lock = options.lock
    const sub = openSublevel(db)
    this.hash = options.hash ?? sha256
    this.ed25519 = options.ed25519 ?? defaultEd25519
    this.secretKey = options.secretKey?.slice()
    this.store = new ChunkStore(sub)
    this.state = new LogState(recentKeys)
    const allocateChunk = options.sharedRecordBuffers === true ? (size: number) => this.slab.alloc(size) : undefined
    const target: CommitTarget = {
      db,
      state: this.state,
      builder: new BatchBuilder(this.state, sub, this.hash, allocateChunk),
      verifier: new Verifier(this.state, this.store),
      listeners: this.listeners,
      maxBatch,
      store: this.store,
      lock: options.lock,
      openForCommit: () => this.openForCommit(),
    }
    this.queue = new CommitQueue(target)
    this.source = {
      liveBuffer,
      ready: () => this.ready(),
      pages: (after) => new ChunkCursor(this.store, after + 1),
      length: () => this.state.changes,
      closed: () => this.status === 'closed' || this.status === 'new',
      subscribe: (r) => this.listeners.addReader(r),
      unsubscribe: (r) => this.listeners.removeReader(r),
    }
  }

  /** This log's 16-byte writer id; throws CLOSED before open() has resolved. */
  get writer(): Uint8Array {
    if (this.state.writer.length === 0) throw new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first')
    return this.state.writer
  }

  /** Lowercase hex of `writer`; throws CLOSED before open() has resolved. */
  get writerId(): string {
    if (this.state.writerHex === '') throw new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first')
    return this.state.writerHex
  }

  /** The public key and chain this log's writer id is bound to; throws CLOSED before open() has resolved. */
  get writerKey(): WriterKey {
    return this.opened().key
  }

  /** Signs `message` with this log's writer key. Rejects CLOSED before open() has resolved. */
  async sign(message: Uint8Array): Promise<Uint8Array> {
    return this.opened().signer.sign(message)
  }

  /** Who wrote the nodes of `writer` (16 bytes), as this log verified them; undefined for a writer it holds nothing of. */
  authorOf(writer: Uint8Array): Author | undefined {
    return this.state.writerKeys.author(toHex(writer))
  }

  /** Whether `signature` is `publicKey`'s over `message`, with this log's Ed25519. */
  verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    return this.ed25519.verify(publicKey, message, signature)
  }

  private opened(): Identity {
    const identity = this.state.identity
    if (identity === undefined) throw new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first')
    return identity
  }

  /** Highest change number committed (0 when empty). */
  get length(): number {
    return this.state.changes
  }

  /**
   * Opens the db if needed and loads writer id, change counter, heads and
   * clock. Idempotent. Rejects with STORAGE_FAILED (db error) or CLOSED
   * (called while closing).
   */
  open(): Promise<void> {
    if (this.status === 'open') return Promise.resolve()
    if (this.status === 'opening') return this.openPromise!
    if (this.status === 'closing') return Promise.reject(closedError())
    this.status = 'opening'
    this.openPromise = (this.lock ? this.openLocked(this.lock) : this.load()).then(
      () => {
        this.status = 'open'
        this.loaded = true
      },
      (err) => {
        this.status = 'new'
        throw err
      },
    )
    return this.openPromise
  }

  /** Loads the log holding `lock`: shared with other openers, exclusive where it may have to make the log up. */
  private async openLocked(lock: DbLock): Promise<void> {
    let fresh: boolean
    try {
      await this.db.open()
      fresh = (await this.store.sub.get(META_KEY)) === undefined
    } catch (err) {
      throw storageFailed('Could not open the log', err)
    }
    await lock(fresh ? 'exclusive' : 'shared', () => this.load())
  }

  private load(): Promise<void> {
    return loadLog(this.db, this.store, this.state, { ed25519: this.ed25519, hash: this.hash, secretKey: this.secretKey })
  }

  /** For the commit queue: nothing to wait for once loaded; else open, unless closing. */
  private openForCommit(): Promise<void> | undefined {
    if (this.loaded) return undefined
    if (this.status !== 'new' && this.status !== 'opening') return Promise.reject(closedError())
    return this.open()
  }

  /** Resolves when open; opens first if open() is in progress; else rejects CLOSED. */
  private ready(): Promise<void> {
    if (this.status === 'open') return Promise.resolve()
    if (this.status === 'opening') return this.openPromise!
    return Promise.reject(this.status === 'new' ? new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first') : closedError())
  }

  /**
   * Waits for queued writes to commit, ends live readers, then marks the log
   * closed: later append/add reject with CLOSED. Does not close the db.
   */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise
    if (this.status === 'closed') return Promise.resolve()
    this.closePromise = (async () => {
      if (this.status === 'opening') await this.openPromise!.catch(() => {})
      this.status = 'closing'
      await this.queue.idle()
      this.status = 'closed'
      this.loaded = false
      this.listeners.endReaders()
    })().finally(() => {
      this.closePromise = undefined
    })
    return this.closePromise
  }

  /**
   * Appends `value` as a new node of this writer linking the current heads;
   * resolves to its entry once committed. The log keeps a reference to
   * `value` until then: do not mutate it. Rejects with INVALID_ARGUMENT,
   * CLOSED or STORAGE_FAILED.
   */
  append(value: Uint8Array): Promise<LogEntry> {
    if (!(value instanceof Uint8Array)) return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'append() takes a Uint8Array'))
    return new Promise<LogEntry>((resolve, reject) => this.appendAll([value], { appended: resolve, failed: reject }))
  }

  /**
   * Appends `values` as consecutive nodes of this writer, all in one batch
   * (all stored or none), and tells `sink` once; a refusal (as append()
   * lists) goes to sink.failed at once. The log keeps the array and its
   * values until then: do not mutate them.
   */
  appendAll(values: Uint8Array[] | PackedBytes, sink: AppendSink): void {
    const valid = values instanceof PackedBytes || (Array.isArray(values) && values.every((v) => v instanceof Uint8Array))
    if (!valid || values.length === 0) {
      sink.failed(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'appendAll() takes a non-empty array of Uint8Array, or PackedBytes'))
    } else if (this.status === 'closing' || this.status === 'closed') {
      sink.failed(closedError())
    } else {
      this.queue.push({ kind: APPEND, size: values.length, values, sink, result: undefined })
    }
  }

  /**
   * Verifies and stores one foreign node (any valid encoding; stored
   * canonically). Resolves to its entry, or null if already held. Rejects
   * with INVALID_NODE, MISSING_LINK, SEQ_MISMATCH, CLOSED or STORAGE_FAILED.
   */
  add(bytes: Uint8Array, origin?: unknown): Promise<LogEntry | null> {
    return this.enqueueAdd([bytes], origin, true, undefined) as Promise<LogEntry | null>
  }

  /**
   * Verifies and stores foreign nodes, in order, all or nothing, atomically
   * with whatever else is queued. Resolves to the entries actually stored
   * (duplicates skipped). Rejects with INVALID_NODE, MISSING_LINK,
   * SEQ_MISMATCH, CLOSED, INVALID_ARGUMENT or STORAGE_FAILED, storing none;
   * with `options.onRefused`, refuses writer by writer instead and stores
   * the rest (see AddOptions). The log works on copies of `nodes`, unless `options.owned` says the
   * caller hands them over and never writes to them again.
   */
  addMany(nodes: Uint8Array[], origin?: unknown, options?: AddOptions): Promise<LogEntry[]> {
    if (!Array.isArray(nodes)) {
      return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'addMany() takes an array of Uint8Array'))
    }
    return this.enqueueAdd(nodes, origin, false, options) as Promise<LogEntry[]>
  }

  private enqueueAdd(raw: Uint8Array[], origin: unknown, single: boolean, options: AddOptions | undefined): Promise<LogEntry[] | LogEntry | null> {
    if (this.status === 'closing' || this.status === 'closed') return Promise.reject(closedError())
    const signatures = options?.signatures ?? []
    if (!Array.isArray(signatures)) return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'signatures must be an array'))
    const onRefused = options?.onRefused
    if (onRefused !== undefined && typeof onRefused !== 'function') return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'onRefused must be a function'))
    let nodes: Incoming[]
    let signed: SignatureCheck
    try {
      // Decoding, hashing and the signature checks start here, in the
      // caller's turn, so a garbage node is refused before it can delay
      // anyone's batch, and verifying overlaps the batches before.
      const lastWriter: LastWriter = { bytes: EMPTY, hex: '' }
      const owned = options?.owned === true
      nodes = raw.map((b, i) => prepareIncoming(b, i, lastWriter, owned, this.slab, this.hash))
      if (nodes.length === 0) return Promise.resolve([])
      // The writers' keys are known once open.
      if (this.state.identity === undefined) return this.open().then(() => this.enqueueAdd(raw, origin, single, options))
      signed = checkSignatures(nodes, signatures, this.state.writerKeys, this.hash, this.ed25519, onRefused !== undefined)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: ADD, size: nodes.length, nodes, origin, signed, single, onRefused, resolve, reject, result: undefined, failed: false })
    })
  }

  /**
   * Load what other Logs on the same db (see LogOptions.lock) committed
   * since this one last looked, as if committed here: listeners and live
   * readers get it, with origin COMMITTED_ELSEWHERE. Resolves once loaded;
   * rejects CLOSED or STORAGE_FAILED.
   */
  refresh(): Promise<void> {
    if (this.status !== 'open' && this.status !== 'opening') return this.ready()
    return this.queue.refresh()
  }

  /**
   * Calls `listener(entries, origin)` synchronously after each committed
   * batch, once per run of one origin, in change order, before the
   * append/add promises resolve. Returns an unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void {
    return this.listeners.add(listener)
  }

  /** The key of `writerHex`'s node at its clock seq, where known (a db written before tips were kept may not know a writer's until its next node). */
  tipOf(writerHex: string): Uint8Array | undefined {
    return this.state.tips.get(writerHex)
  }

  /** The key of `writer`'s node at `seq`, or undefined when the log holds no such node. Rejects CLOSED, STORAGE_FAILED. */
  async keyAt(writer: Uint8Array, seq: number): Promise<Uint8Array | undefined> {
    await this.ready()
    if (!(writer instanceof Uint8Array) || !Number.isSafeInteger(seq) || seq < 1) return undefined
    const hex = toHex(writer)
    if (seq > (this.state.clock.get(hex) ?? 0)) return undefined
    if (seq === this.state.clock.get(hex) && this.state.tips.has(hex)) return this.state.tips.get(hex)
    const change = await changeOfSeq(this.store.sub, writer, seq)
    return change === undefined ? undefined : (await this.store.chunkAt(change, 'Could not read a node')).key(change).slice()
  }

  /**
   * Heals a fork of this log's own writer: the network holds other nodes of
   * it from `fromSeq` on (a copy of this db wrote them), so this log's own
   * nodes from there move to a fresh chain of the same key, hence a new
   * writer id, in place (see rechain.ts). Resolves what moved, or undefined
   * when nothing could (nothing of ours from `fromSeq`, another writer's
   * node links one of ours there, or the db is shared with other Logs, whose
   * state the rewrite would leave stale). Listeners hear nothing: the events
   * were theirs already. Rejects INVALID_ARGUMENT, CLOSED or STORAGE_FAILED.
   */
  rechain(fromSeq: number): Promise<Rechained | undefined> {
    if (this.status === 'closing' || this.status === 'closed') return Promise.reject(closedError())
    if (this.lock !== undefined) return Promise.resolve(undefined)
    return new Promise((resolve, reject) => {
      const run = async (): Promise<Rechained | undefined> => {
        const moved = await rechain(this.db, this.store, this.state, this.hash, this.opened().signer, fromSeq)
        if (moved !== undefined) {
          this.store.forget()
          await this.load()
        }
        return moved
      }
      this.queue.push({ kind: RUN, size: 1, run, resolve, reject })
    })
  }

  /** Keys of the nodes nobody links to, sorted by bytes. */
  heads(): Uint8Array[] {
    return this.state.heads.slice()
  }

  /** A copy of the clock: writer hex -> highest seq held. */
  clock(): Clock {
    return new Map(this.state.clock)
  }

  /** The entry stored under `key`, or undefined. Rejects INVALID_ARGUMENT, CLOSED, STORAGE_FAILED, or CHECKSUM_MISMATCH when its stored bytes were damaged. */
  async get(key: Uint8Array): Promise<LogEntry | undefined> {
    checkKey(key)
    await this.ready()
    for (const change of this.state.index.candidates(key)) {
      const chunk = await this.store.chunkAt(change, 'Could not read a node from the db')
      if (!equalBytes(chunk.key(change), key)) continue
      const entry = chunk.entry(change)
      // Asked for by key, it is cheap to prove: a node that no longer hashes
      // to its key was damaged at rest.
      if (!equalBytes(this.hash(entry.bytes), key)) {
        throw new HyperEmitterError(ErrorCodes.CHECKSUM_MISMATCH, `The node stored at change ${change} no longer hashes to its key ${toHex(key)}`, {
          details: { change, key: toHex(key) },
        })
      }
      return entry
    }
    return undefined
  }

  /** Whether a node with `key` is stored. Rejects INVALID_ARGUMENT, CLOSED, STORAGE_FAILED. */
  async has(key: Uint8Array): Promise<boolean> {
    checkKey(key)
    await this.ready()
    const located = this.state.locate(key)
    if (located !== UNKNOWN) return located === HELD
    return (await lookupKeys(this.state, this.store, [key])).has(key)
  }

  /**
   * Entries in change order with change > `since`, at most `limit`; with
   * `live`, keeps waiting for new ones. Ends when the log closes or the
   * consumer returns. Throws INVALID_ARGUMENT on bad options; next() rejects
   * CLOSED (log never opened) or STORAGE_FAILED.
   */
  read(opts: ReadOptions = {}): AsyncIterableIterator<LogEntry> {
    const since = opts.since ?? 0
    const limit = opts.limit ?? Infinity
    if (!Number.isSafeInteger(since) || since < 0) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'read(): since must be a non-negative integer', { details: { since } })
    }
    if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'read(): limit must be a non-negative integer', { details: { limit } })
    }
    return new ChangeReader(this.source, since, opts.live === true, limit)
  }

  /**
   * The entries a peer holding `remote` lacks (seq > remote[writer], 0 when
   * absent), in local change order, as of the call, a page (up to ~1000
   * entries) at a time: what the sync layer reads. Cost grows with what is
   * missing. Iteration rejects INVALID_ARGUMENT, CLOSED or STORAGE_FAILED.
   */
  async *readMissingPages(remote: Clock): AsyncGenerator<LogEntry[], void, undefined> {
    if (!(remote instanceof Map)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'readMissingPages() takes a Clock (Map of writer hex to seq)')
    }
    await this.ready()
    for await (const page of missingPages(this.state, this.store, remote, () => this.status === 'open')) {
      // Received nodes go on with their writers' signatures.
      await attachSignatures(this.store.sub, page)
      yield page
    }
  }

  /**
   * The signatures a peer needs for `entries` (a run about to be sent, in
   * change order): for each writer, over its last entry there, this log's
   * own signed now, others' as stored. A writer whose last entry has no
   * stored signature gets none (a sender ends each writer's run at a signed
   * node; see SyncSession). `withKey` says which writers' keys to include.
   * Rejects CLOSED before open.
   */
  async signaturesFor(entries: readonly LogEntry[], withKey: (writerHex: string) => boolean = () => true): Promise<NodeSignature[]> {
    const last = new Map<string, LogEntry>()
    for (const e of entries) last.set(toHex(e.writer), e)
    const out: NodeSignature[] = []
    for (const [hex, e] of last) {
      // A received entry that came without its signature (another Log on the db stored it) has it in the db.
      const signature = hex === this.state.writerHex ? await this.sign(nodeMessage(e.key)) : (e.signature ?? (await storedSignature(this.store.sub, e.change)))
      if (signature === undefined) continue
      const key = withKey(hex) ? this.state.writerKeys.get(hex) : undefined
      out.push(key === undefined ? { writer: e.writer, signature } : { writer: e.writer, signature, key })
    }
    return out
  }
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `A node key is ${KEY_BYTES} bytes`, {
      details: { length: key instanceof Uint8Array ? key.length : undefined },
    })
  }
}
