/**
 * The Merkle DAG log over an injected abstract-level db.
 *
 * Storage, all inside one sublevel (`hyperemitter`, view encodings) with a
 * one-byte prefix per record kind:
 *   c + change(8 BE)           -> key(32) || canonical node bytes
 *   k + key(32)                -> change(8 BE)
 *   w + writer(16) + seq(8 BE) -> change(8 BE)   (sparse: see below)
 *   l + writer(16)             -> seq(8 BE)        (clock)
 *   h                          -> heads, 32 bytes each, sorted
 *   m                          -> format version(1) || writer(16)
 * The change record carries the key so read() and readMissing() stream
 * entries with one lookup and no re-hashing. The writer index is sparse: a
 * writer's seqs stored at consecutive change numbers form a run, and only
 * the first seq of each run (per batch) is indexed; seq s of a run that
 * starts at (seq0, change0) is at change0 + (s - seq0). A batch of local
 * appends is one run, so an append costs two records, not three. (Logs
 * written with an entry per seq read correctly: every seq is then a run.)
 *
 * Writes are group-committed: append/add only queue a request; one loop takes
 * everything queued (up to maxBatch nodes) into one db.batch(), then updates
 * the in-memory state, tells listeners and resolves the requests. Nothing in
 * memory changes until the batch is durable, so a failed batch leaves the log
 * exactly as it was.
 */
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { compareBytes, equalBytes, fromHex, readUint64BE, toHex, uint64BE, writeUint64BE } from './bytes.js'
import { ErrorCodes, HyperEmitterError } from './errors.js'
import { KeySet, RecentKeys } from './keyset.js'
import { sha256 } from './hash.js'
import { decodeNode, encodedNodeSize, KEY_BYTES, varintLength, WRITER_BYTES, writeNode } from './node.js'
import type { ChangeListener, Clock, HashFn, LogEntry, ReadOptions, SyncableLog } from './types.js'

export { decodeNode, encodeNode } from './node.js'
export type { NodeFields } from './node.js'

export interface LogOptions {
  /** SHA-256 (default: @noble/hashes, sync, works in browsers). The Node entry injects node:crypto's. */
  hash?: HashFn
  /** Max nodes per group-commit batch (default 1000; measured: bigger batches add nothing). */
  maxBatch?: number
  /**
   * How many keys of recently stored nodes to remember, so link checks of
   * live foreign nodes need no db read (default 16384; older ones fall back
   * to the db).
   */
  recentKeys?: number
  /**
   * Entries a live read() buffers for a slow consumer before it drops them
   * and pages from the db instead (default 8192), so memory stays bounded.
   */
  liveBuffer?: number
}

const SUBLEVEL = 'hyperemitter'
const FORMAT_VERSION = 1
const DEFAULT_MAX_BATCH = 1000
const DEFAULT_RECENT_KEYS = 16384
const READ_PAGE = 512
const MISSING_PAGE = 1000
// A live reader whose consumer falls this far behind drops its buffer and
// pages from the db instead, so a slow consumer cannot grow memory.
const DEFAULT_LIVE_BUFFER = 8192

const P_CHANGE = 0x63 // 'c'
const P_KEY = 0x6b // 'k'
const P_WRITER = 0x77 // 'w'
const P_CLOCK = 0x6c // 'l'
const HEADS_KEY = Uint8Array.of(0x68) // 'h'
const META_KEY = Uint8Array.of(0x6d) // 'm'
const CHANGE_END = Uint8Array.of(P_CHANGE + 1)
const CLOCK_START = Uint8Array.of(P_CLOCK)
const CLOCK_END = Uint8Array.of(P_CLOCK + 1)
const EMPTY = new Uint8Array(0)

type Sub = AbstractSublevel<AbstractLevel<any, any, any>, any, Uint8Array, Uint8Array>
type PutOp = { type: 'put'; sublevel: Sub; key: Uint8Array; value: Uint8Array }

const SLAB_BYTES = 64 * 1024

/**
 * Carves the many small arrays of a batch (records, index keys) out of shared
 * 64 KiB buffers. Each standalone Uint8Array over 64 bytes gets its own
 * off-heap backing store: measured ~500 ns per allocation plus GC pressure,
 * against ~60 ns for a view into a slab.
 */
class Slab {
  private buf = new ArrayBuffer(0)
  private pos = 0
  alloc(n: number): Uint8Array {
    if (n > SLAB_BYTES / 4) return new Uint8Array(n)
    if (this.pos + n > this.buf.byteLength) {
      this.buf = new ArrayBuffer(SLAB_BYTES)
      this.pos = 0
    }
    const v = new Uint8Array(this.buf, this.pos, n)
    this.pos += n
    return v
  }
}

/** A view of `length` bytes of `arr` from `start` (cheaper than subarray in V8). */
function view(arr: Uint8Array, start: number, length: number): Uint8Array {
  return new Uint8Array(arr.buffer, arr.byteOffset + start, length)
}

function changeKey(change: number): Uint8Array {
  const k = new Uint8Array(9)
  k[0] = P_CHANGE
  writeUint64BE(k, 1, change)
  return k
}

function keyIndexKey(key: Uint8Array): Uint8Array {
  const k = new Uint8Array(1 + KEY_BYTES)
  k[0] = P_KEY
  k.set(key, 1)
  return k
}

function writerIndexKey(writer: Uint8Array, seq: number): Uint8Array {
  const k = new Uint8Array(1 + WRITER_BYTES + 8)
  k[0] = P_WRITER
  k.set(writer, 1)
  writeUint64BE(k, 1 + WRITER_BYTES, seq)
  return k
}

function copyInto(out: Uint8Array, at: number, src: Uint8Array): void {
  for (let i = 0; i < src.length; i++) out[at + i] = src[i]
}

function clockKey(writer: Uint8Array): Uint8Array {
  const k = new Uint8Array(1 + WRITER_BYTES)
  k[0] = P_CLOCK
  k.set(writer, 1)
  return k
}

/** An entry from a stored record (key || node bytes). */
function entryFromRecord(record: Uint8Array, change: number): LogEntry {
  const bytes = record.subarray(KEY_BYTES)
  const node = decodeNode(bytes)
  return { key: record.subarray(0, KEY_BYTES), writer: node.writer, seq: node.seq, links: node.links, value: node.value, bytes, change }
}

function storageFailed(message: string, cause: unknown): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, message, { cause })
}

function closedError(): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.CLOSED, 'The log is closed')
}

function rethrowAsync(err: unknown): void {
  // A throwing listener must not undo a committed batch or starve the other
  // listeners; surface it the way EventTarget does, outside our call stack.
  setTimeout(() => {
    throw err
  }, 0)
}

/** A foreign node, decoded, re-encoded canonically and hashed. */
interface Incoming {
  record: Uint8Array
  key: Uint8Array
  bytes: Uint8Array
  writer: Uint8Array
  writerHex: string
  seq: number
  links: Uint8Array[]
  value: Uint8Array
}

const APPEND = 0
const ADD = 1

interface AppendRequest {
  kind: typeof APPEND
  size: number
  value: Uint8Array
  resolve: (entry: LogEntry) => void
  reject: (err: unknown) => void
  result: LogEntry | undefined
}

interface AddRequest {
  kind: typeof ADD
  size: number
  nodes: Incoming[]
  origin: unknown
  single: boolean
  resolve: (result: any) => void
  reject: (err: unknown) => void
  result: LogEntry[] | undefined
  failed: boolean
}

type Request = AppendRequest | AddRequest

/** What a reader needs of the log; keeps the log's internals private. */
interface ReaderSource {
  readonly liveBuffer: number
  ready(): Promise<void>
  readPage(after: number, limit: number): Promise<LogEntry[]>
  length(): number
  closed(): boolean
  subscribe(reader: ChangeReader): void
  unsubscribe(reader: ChangeReader): void
}

/**
 * The persistent Merkle DAG log: local appends, verified foreign nodes,
 * change-ordered reads and what-a-peer-lacks queries, over any abstract-level db.
 */
export class Log implements SyncableLog {
  private readonly db: AbstractLevel<any, any, any>
  private readonly sub: Sub
  private readonly hash: HashFn
  private readonly maxBatch: number
  private readonly recent: RecentKeys
  private readonly slab = new Slab()

  private state: 'new' | 'opening' | 'open' | 'closing' | 'closed' = 'new'
  private loaded = false
  private openPromise: Promise<void> | undefined
  private closePromise: Promise<void> | undefined

  private writerBytes: Uint8Array = EMPTY
  private writerHex = ''
  private changes = 0
  private clockMap: Clock = new Map()
  private headKeys: Uint8Array[] = []

  private queue: Request[] = []
  private queueHead = 0
  private pumping = false
  private idleWaiters: (() => void)[] = []
  private listeners: ChangeListener[] = []
  private readers = new Set<ChangeReader>()
  private readonly runLoop = (): void => {
    void this.run()
  }
  private readonly source: ReaderSource

  constructor(db: AbstractLevel<any, any, any>, options: LogOptions = {}) {
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
    this.db = db
    this.sub = db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL, { keyEncoding: 'view', valueEncoding: 'view' }) as Sub
    this.hash = options.hash ?? sha256
    this.maxBatch = maxBatch
    this.recent = new RecentKeys(recentKeys)
    this.source = {
      liveBuffer,
      ready: () => this.ready(),
      readPage: (after, limit) => this.readPage(after, limit),
      length: () => this.changes,
      closed: () => this.state === 'closed' || this.state === 'new',
      subscribe: (r) => {
        this.readers.add(r)
      },
      unsubscribe: (r) => {
        this.readers.delete(r)
      },
    }
  }

  /** This log's 16-byte writer id; throws CLOSED before open() has resolved. */
  get writer(): Uint8Array {
    if (this.writerBytes.length === 0) throw new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first')
    return this.writerBytes
  }

  /** Lowercase hex of `writer`; throws CLOSED before open() has resolved. */
  get writerId(): string {
    if (this.writerHex === '') throw new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first')
    return this.writerHex
  }

  /** Highest change number committed (0 when empty). */
  get length(): number {
    return this.changes
  }

  /**
   * Opens the db if needed and loads writer id, change counter, heads and
   * clock. Idempotent. Rejects with STORAGE_FAILED (db error) or CLOSED
   * (called while closing).
   */
  open(): Promise<void> {
    if (this.state === 'open') return Promise.resolve()
    if (this.state === 'opening') return this.openPromise!
    if (this.state === 'closing') return Promise.reject(closedError())
    this.state = 'opening'
    this.openPromise = this.load().then(
      () => {
        this.state = 'open'
        this.loaded = true
      },
      (err) => {
        this.state = 'new'
        throw err
      },
    )
    return this.openPromise
  }

  private async load(): Promise<void> {
    try {
      await this.db.open()
      const sub = this.sub
      let meta = await sub.get(META_KEY)
      if (meta === undefined) {
        const writer = crypto.getRandomValues(new Uint8Array(WRITER_BYTES))
        meta = new Uint8Array(1 + WRITER_BYTES)
        meta[0] = FORMAT_VERSION
        meta.set(writer, 1)
        await sub.put(META_KEY, meta)
      } else if (meta.length !== 1 + WRITER_BYTES || meta[0] !== FORMAT_VERSION) {
        throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, 'Unknown hyperemitter storage format in this db', {
          details: { version: meta[0] },
        })
      }
      const writer = meta.slice(1)

      let changes = 0
      const last = await sub.keys({ gte: changeKey(0), lt: CHANGE_END, reverse: true, limit: 1 }).all()
      if (last.length > 0) changes = readUint64BE(last[0], 1)

      const heads: Uint8Array[] = []
      const headsRecord = await sub.get(HEADS_KEY)
      if (headsRecord !== undefined) {
        for (let i = 0; i + KEY_BYTES <= headsRecord.length; i += KEY_BYTES) heads.push(headsRecord.slice(i, i + KEY_BYTES))
      }

      const clock: Clock = new Map()
      // One entry per writer ever seen: paged so a db with many writers never
      // materialises twice in memory.
      const it = sub.iterator({ gte: CLOCK_START, lt: CLOCK_END })
      try {
        for (;;) {
          const rows = await it.nextv(1000)
          if (rows.length === 0) break
          for (const [k, v] of rows) clock.set(toHex(k.subarray(1)), readUint64BE(v, 0))
        }
      } finally {
        await it.close()
      }

      this.writerBytes = writer
      this.writerHex = toHex(writer)
      this.changes = changes
      this.headKeys = heads
      this.clockMap = clock
      this.recent.clear()
    } catch (err) {
      if (err instanceof HyperEmitterError) throw err
      throw storageFailed('Could not open the log', err)
    }
  }

  /** Resolves when open; opens first if open() is in progress; else rejects CLOSED. */
  private ready(): Promise<void> {
    if (this.state === 'open') return Promise.resolve()
    if (this.state === 'opening') return this.openPromise!
    return Promise.reject(this.state === 'new' ? new HyperEmitterError(ErrorCodes.CLOSED, 'The log is not open yet: await open() first') : closedError())
  }

  /**
   * Waits for queued writes to commit, ends live readers, then marks the log
   * closed: later append/add reject with CLOSED. Does not close the db.
   */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise
    if (this.state === 'closed') return Promise.resolve()
    this.closePromise = (async () => {
      if (this.state === 'opening') await this.openPromise!.catch(() => {})
      this.state = 'closing'
      await this.idle()
      this.state = 'closed'
      this.loaded = false
      for (const r of this.readers) r.wakeUp()
      this.readers.clear()
    })().finally(() => {
      this.closePromise = undefined
    })
    return this.closePromise
  }

  private idle(): Promise<void> {
    if (!this.pumping && this.queueHead >= this.queue.length) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Appends `value` as a new node of this writer linking the current heads;
   * resolves to its entry once committed. The log keeps a reference to
   * `value` until then: do not mutate it. Rejects with INVALID_ARGUMENT,
   * CLOSED or STORAGE_FAILED.
   */
  append(value: Uint8Array): Promise<LogEntry> {
    if (!(value instanceof Uint8Array)) {
      return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'append() takes a Uint8Array'))
    }
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(closedError())
    return new Promise<LogEntry>((resolve, reject) => {
      this.queue.push({ kind: APPEND, size: 1, value, resolve, reject, result: undefined })
      this.pump()
    })
  }

  /**
   * Verifies and stores one foreign node (any valid encoding; stored
   * canonically). Resolves to its entry, or null if already held. Rejects
   * with INVALID_NODE, MISSING_LINK, SEQ_MISMATCH, CLOSED or STORAGE_FAILED.
   */
  add(bytes: Uint8Array, origin?: unknown): Promise<LogEntry | null> {
    return this.enqueueAdd([bytes], origin, true) as Promise<LogEntry | null>
  }

  /**
   * Verifies and stores foreign nodes, in order, all or nothing, atomically
   * with whatever else is queued. Resolves to the entries actually stored
   * (duplicates skipped). Rejects with INVALID_NODE, MISSING_LINK,
   * SEQ_MISMATCH, CLOSED, INVALID_ARGUMENT or STORAGE_FAILED, storing none.
   */
  addMany(nodes: Uint8Array[], origin?: unknown): Promise<LogEntry[]> {
    if (!Array.isArray(nodes)) {
      return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'addMany() takes an array of Uint8Array'))
    }
    return this.enqueueAdd(nodes, origin, false) as Promise<LogEntry[]>
  }

  private enqueueAdd(raw: Uint8Array[], origin: unknown, single: boolean): Promise<LogEntry[] | LogEntry | null> {
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(closedError())
    let nodes: Incoming[]
    try {
      // Decoding and hashing happen here, in the caller's turn, so a garbage
      // node is refused before it can delay anyone's batch.
      const lastWriter = { bytes: EMPTY, hex: '' }
      nodes = raw.map((b, i) => this.prepare(b, i, lastWriter))
    } catch (err) {
      return Promise.reject(err)
    }
    if (nodes.length === 0) return Promise.resolve([])
    return new Promise((resolve, reject) => {
      this.queue.push({ kind: ADD, size: nodes.length, nodes, origin, single, resolve, reject, result: undefined, failed: false })
      this.pump()
    })
  }

  private prepare(raw: Uint8Array, index: number, lastWriter: { bytes: Uint8Array; hex: string }): Incoming {
    let decoded
    try {
      decoded = decodeNode(raw)
    } catch (err) {
      const e = err as HyperEmitterError
      throw new HyperEmitterError(ErrorCodes.INVALID_NODE, `${e.message} (node ${index})`, { cause: err, details: { ...e.details, index } })
    }
    // Re-encode and hash the canonical form, so another encoding of the same
    // content can never become a second node.
    const size = encodedNodeSize(decoded)
    const record = this.slab.alloc(KEY_BYTES + size)
    writeNode(record, KEY_BYTES, decoded)
    const bytes = view(record, KEY_BYTES, size)
    record.set(this.hash(bytes), 0)
    const node = decodeNode(bytes)
    // Runs of nodes from one writer are the norm: reuse its hex.
    if (!equalBytes(node.writer, lastWriter.bytes)) {
      lastWriter.bytes = node.writer
      lastWriter.hex = toHex(node.writer)
    }
    return {
      record,
      key: view(record, 0, KEY_BYTES),
      bytes,
      writer: node.writer,
      writerHex: lastWriter.hex,
      seq: node.seq,
      links: node.links,
      value: node.value,
    }
  }

  /** Puts of change record and key index for one node, and of the writer index when it starts a run. */
  private pushNodeOps(
    ops: PutOp[],
    slab: Slab,
    change: number,
    record: Uint8Array,
    key: Uint8Array,
    writer: Uint8Array,
    seq: number,
    startsRun: boolean,
  ): void {
    const sub = this.sub
    const changeBytes = slab.alloc(8)
    writeUint64BE(changeBytes, 0, change)
    const ck = slab.alloc(9)
    ck[0] = P_CHANGE
    writeUint64BE(ck, 1, change)
    const kk = slab.alloc(1 + KEY_BYTES)
    kk[0] = P_KEY
    copyInto(kk, 1, key)
    ops.push({ type: 'put', sublevel: sub, key: ck, value: record }, { type: 'put', sublevel: sub, key: kk, value: changeBytes })
    if (!startsRun) return
    const wk = slab.alloc(1 + WRITER_BYTES + 8)
    wk[0] = P_WRITER
    copyInto(wk, 1, writer)
    writeUint64BE(wk, 1 + WRITER_BYTES, seq)
    ops.push({ type: 'put', sublevel: sub, key: wk, value: changeBytes })
  }

  private pump(): void {
    if (this.pumping) return
    this.pumping = true
    queueMicrotask(this.runLoop)
  }

  private async run(): Promise<void> {
    try {
      // Closing after a successful open still drains the queue; only a log
      // that never loaded has to open (or refuse) first.
      if (!this.loaded) {
        try {
          if (this.state !== 'new' && this.state !== 'opening') throw closedError()
          await this.open()
        } catch (err) {
          const queued = this.queue.slice(this.queueHead)
          this.queue = []
          this.queueHead = 0
          for (const r of queued) {
            r.reject(
              err instanceof HyperEmitterError && err.code === ErrorCodes.CLOSED
                ? closedError()
                : storageFailed('Could not open the log', err),
            )
          }
          return
        }
      }
      while (this.queueHead < this.queue.length) {
        const taken = this.take()
        try {
          await this.commit(taken)
        } catch (err) {
          // commit() handles its own failures; this is a bug guard so no
          // caller is left hanging.
          for (const r of taken) r.reject(storageFailed('Unexpected failure while committing', err))
        }
      }
    } finally {
      this.pumping = false
      if (this.queueHead < this.queue.length) {
        this.pump()
      } else {
        const waiters = this.idleWaiters
        this.idleWaiters = []
        for (const w of waiters) w()
      }
    }
  }

  /** The next requests, up to maxBatch nodes (an addMany larger than that goes whole). */
  private take(): Request[] {
    const q = this.queue
    let i = this.queueHead
    let n = 0
    while (i < q.length) {
      const size = q[i].size
      if (n > 0 && n + size > this.maxBatch) break
      n += size
      i++
    }
    const taken = q.slice(this.queueHead, i)
    if (i >= q.length) {
      this.queue = []
      this.queueHead = 0
    } else if (i * 2 >= q.length) {
      // Drop the consumed prefix once it is half the array: amortised O(1),
      // and taken requests (with their values and results) are not pinned
      // while a steady stream of appends keeps the queue from ever emptying.
      this.queue = q.slice(i)
      this.queueHead = 0
    } else {
      this.queueHead = i
    }
    return taken
  }

  private async commit(taken: Request[]): Promise<void> {
    const ops: PutOp[] = []
    const slab = this.slab
    const entries: LogEntry[] = []
    const origins: unknown[] = []
    let change = this.changes
    let heads = this.headKeys
    let headsChanged = false
    const writerHex = this.writerHex
    const writer = this.writerBytes
    let ownSeq = this.clockMap.get(writerHex) ?? 0
    const ownSeqBefore = ownSeq
    // Foreign writers touched in this batch: hex -> [writer bytes, seq].
    const touched = new Map<string, [Uint8Array, number]>()
    const batchKeys = new KeySet()
    const localKeys: Uint8Array[] = []
    // The node just added to `ops` (its change is change - 1 of the next): a
    // next node of the same writer with the next seq continues its run.
    let runWriter: Uint8Array | undefined
    let runSeq = 0
    const clockAt = (hex: string): number =>
      hex === writerHex ? ownSeq : (touched.get(hex)?.[1] ?? this.clockMap.get(hex) ?? 0)

    for (const req of taken) {
      if (req.kind === APPEND) {
        const seq = ++ownSeq
        const fields = { writer, seq, links: heads, value: req.value }
        const size = encodedNodeSize(fields)
        const record = slab.alloc(KEY_BYTES + size)
        writeNode(record, KEY_BYTES, fields)
        const bytes = view(record, KEY_BYTES, size)
        record.set(this.hash(bytes), 0)
        const key = view(record, 0, KEY_BYTES)
        this.pushNodeOps(ops, slab, ++change, record, key, writer, seq, !(runWriter === writer && runSeq === seq - 1))
        runWriter = writer
        runSeq = seq
        // Views by arithmetic rather than decoding: writer field is 2+16 bytes,
        // then the seq field, then 34 bytes per link, value last.
        const linksStart = 2 + WRITER_BYTES + 1 + varintLength(seq)
        const links = new Array<Uint8Array>(heads.length)
        for (let i = 0; i < heads.length; i++) links[i] = view(bytes, linksStart + i * (2 + KEY_BYTES) + 2, KEY_BYTES)
        const entry: LogEntry = {
          key,
          writer: view(bytes, 2, WRITER_BYTES),
          seq,
          links,
          value: view(bytes, size - req.value.length, req.value.length),
          bytes,
          change,
        }
        heads = [key]
        headsChanged = true
        localKeys.push(key)
        entries.push(entry)
        origins.push(undefined)
        req.result = entry
        continue
      }

      // A foreign request: verify it alone against the batch so far, and only
      // then merge it, so its failure costs nobody else anything.
      let accepted: Incoming[]
      try {
        accepted = await this.verify(req, clockAt, batchKeys)
      } catch (err) {
        req.failed = true
        req.reject(err)
        continue
      }
      const stored: LogEntry[] = []
      for (const n of accepted) {
        const continuesRun = runWriter !== undefined && runSeq === n.seq - 1 && equalBytes(runWriter, n.writer)
        this.pushNodeOps(ops, slab, ++change, n.record, n.key, n.writer, n.seq, !continuesRun)
        runWriter = n.writer
        runSeq = n.seq
        const entry: LogEntry = { key: n.key, writer: n.writer, seq: n.seq, links: n.links, value: n.value, bytes: n.bytes, change }
        touched.set(n.writerHex, [n.writer, n.seq])
        batchKeys.add(n.key)
        heads = mergeHeads(heads, n.links, n.key)
        headsChanged = true
        entries.push(entry)
        origins.push(req.origin)
        stored.push(entry)
      }
      req.result = stored
    }

    if (entries.length > 0) {
      if (headsChanged) {
        const record = new Uint8Array(heads.length * KEY_BYTES)
        for (let i = 0; i < heads.length; i++) record.set(heads[i], i * KEY_BYTES)
        ops.push({ type: 'put', sublevel: this.sub, key: HEADS_KEY, value: record })
      }
      if (ownSeq !== ownSeqBefore) ops.push({ type: 'put', sublevel: this.sub, key: clockKey(writer), value: uint64BE(ownSeq) })
      for (const [w, seq] of touched.values()) ops.push({ type: 'put', sublevel: this.sub, key: clockKey(w), value: uint64BE(seq) })

      try {
        // Through `db` with `sublevel` on each op (abstract-level's way to
        // batch into a sublevel atomically): one validation pass where
        // sub.batch() runs two. No batch-wide options: abstract-level spreads
        // them into every op, which measured ~3x slower in V8.
        await this.db.batch(ops as any)
      } catch (err) {
        for (const r of taken) {
          if (r.kind === ADD && r.failed) continue
          r.reject(storageFailed('Could not write a batch to the db; nothing of it was stored', err))
        }
        return
      }

      // Durable: now, and only now, the in-memory state moves.
      this.changes = change
      this.headKeys = heads
      if (ownSeq !== ownSeqBefore) this.clockMap.set(writerHex, ownSeq)
      for (const [hex, [, seq]] of touched) this.clockMap.set(hex, seq)
      for (const key of batchKeys.keys()) this.recent.add(key)
      for (const key of localKeys) this.recent.add(key)
      this.emit(entries, origins)
    }

    for (const r of taken) {
      if (r.kind === APPEND) r.resolve(r.result!)
      else if (!r.failed) r.resolve(r.single ? (r.result![0] ?? null) : r.result!)
    }
  }

  /**
   * Checks one foreign request against committed state plus the batch so far;
   * resolves to the nodes to store (duplicates dropped) or rejects with the
   * coded reason.
   */
  private async verify(
    req: AddRequest,
    clockAt: (hex: string) => number,
    batchKeys: KeySet,
  ): Promise<Incoming[]> {
    const nodes = req.nodes
    const recent = this.recent
    let inRequest: KeySet | undefined
    if (nodes.length > 1) {
      inRequest = new KeySet()
      for (const n of nodes) inRequest.add(n.key)
    }

    // Pass 1: which keys could only be settled by the db (links and possible
    // duplicates that are neither in this batch nor recently stored).
    let lookup: KeySet | undefined
    const need = (key: Uint8Array) => {
      if (batchKeys.has(key) || recent.has(key)) return
      ;(lookup ??= new KeySet()).add(key)
    }
    for (const n of nodes) {
      if (n.seq <= clockAt(n.writerHex)) need(n.key)
      for (const link of n.links) if (inRequest === undefined || !inRequest.has(link)) need(link)
    }
    let inDb: KeySet | undefined
    if (lookup !== undefined) inDb = await this.lookupKeys(lookup.keys())

    // Pass 2: in order, as if each node were stored right after the previous.
    const held = new KeySet()
    const reqClock = new Map<string, number>()
    const isHeld = (key: Uint8Array) => held.has(key) || batchKeys.has(key) || recent.has(key) || (inDb !== undefined && inDb.has(key))
    const accepted: Incoming[] = []
    for (let index = 0; index < nodes.length; index++) {
      const n = nodes[index]
      const current = reqClock.get(n.writerHex) ?? clockAt(n.writerHex)
      const details = () => ({ index, writer: n.writerHex, seq: n.seq, expected: current + 1 })
      if (n.seq <= current) {
        if (isHeld(n.key)) {
          held.add(n.key)
          continue
        }
        throw new HyperEmitterError(
          ErrorCodes.SEQ_MISMATCH,
          n.writerHex === this.writerHex
            ? `node ${index} claims to be from this log's own writer, but this log never wrote it`
            : `node ${index} forks writer ${n.writerHex}: another node already holds seq ${n.seq}`,
          { details: details() },
        )
      }
      if (n.writerHex === this.writerHex) {
        throw new HyperEmitterError(ErrorCodes.SEQ_MISMATCH, `node ${index} claims to be from this log's own writer, but this log never wrote it`, {
          details: details(),
        })
      }
      if (n.seq !== current + 1) {
        throw new HyperEmitterError(ErrorCodes.SEQ_MISMATCH, `node ${index} has seq ${n.seq}, expected ${current + 1} for writer ${n.writerHex}`, {
          details: details(),
        })
      }
      for (const link of n.links) {
        if (!isHeld(link)) {
          const hex = toHex(link)
          throw new HyperEmitterError(ErrorCodes.MISSING_LINK, `node ${index} links to ${hex}, which this log does not hold`, {
            details: { index, link: hex },
          })
        }
      }
      held.add(n.key)
      reqClock.set(n.writerHex, n.seq)
      accepted.push(n)
    }
    return accepted
  }

  /** Which of `keys` the db holds. Rejects STORAGE_FAILED. */
  private async lookupKeys(keys: Uint8Array[]): Promise<KeySet> {
    let values: (Uint8Array | undefined)[]
    try {
      values = await this.sub.getMany(keys.map((k) => keyIndexKey(k)))
    } catch (err) {
      throw storageFailed('Could not look up links in the db', err)
    }
    const found = new KeySet()
    for (let i = 0; i < keys.length; i++) if (values[i] !== undefined) found.add(keys[i])
    return found
  }

  private emit(entries: LogEntry[], origins: unknown[]): void {
    const listeners = this.listeners
    for (const r of this.readers) r.push(entries)
    if (listeners.length === 0) return
    let start = 0
    for (let i = 1; i <= entries.length; i++) {
      if (i < entries.length && origins[i] === origins[start]) continue
      const run = start === 0 && i === entries.length ? entries : entries.slice(start, i)
      for (const l of listeners) {
        try {
          l(run, origins[start])
        } catch (err) {
          rethrowAsync(err)
        }
      }
      start = i
    }
  }

  /**
   * Calls `listener(entries, origin)` synchronously after each committed
   * batch, once per run of one origin, in change order, before the
   * append/add promises resolve. Returns an unsubscribe function.
   */
  onChange(listener: ChangeListener): () => void {
    if (typeof listener !== 'function') throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'onChange() takes a function')
    // Copy-on-write: emit() iterates a snapshot without copying.
    this.listeners = [...this.listeners, listener]
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  /** Keys of the nodes nobody links to, sorted by bytes. */
  heads(): Uint8Array[] {
    return this.headKeys.slice()
  }

  /** A copy of the clock: writer hex -> highest seq held. */
  clock(): Clock {
    return new Map(this.clockMap)
  }

  /** The entry stored under `key`, or undefined. Rejects INVALID_ARGUMENT, CLOSED, STORAGE_FAILED. */
  async get(key: Uint8Array): Promise<LogEntry | undefined> {
    checkKey(key)
    await this.ready()
    try {
      const changeBytes = await this.sub.get(keyIndexKey(key))
      if (changeBytes === undefined) return undefined
      const change = readUint64BE(changeBytes, 0)
      const record = await this.sub.get(changeKey(change))
      if (record === undefined) throw new Error(`change ${change} is indexed but missing`)
      return entryFromRecord(record, change)
    } catch (err) {
      throw storageFailed('Could not read a node from the db', err)
    }
  }

  /** Whether a node with `key` is stored. Rejects INVALID_ARGUMENT, CLOSED, STORAGE_FAILED. */
  async has(key: Uint8Array): Promise<boolean> {
    checkKey(key)
    await this.ready()
    if (this.recent.has(key)) return true
    try {
      return (await this.sub.get(keyIndexKey(key))) !== undefined
    } catch (err) {
      throw storageFailed('Could not read the key index', err)
    }
  }

  private async readPage(after: number, limit: number): Promise<LogEntry[]> {
    const it = this.sub.iterator({ gt: changeKey(after), lt: CHANGE_END, limit })
    try {
      const out: LogEntry[] = []
      // nextv() may return fewer than asked (classic-level caps by bytes), so
      // only an empty answer means the end.
      while (out.length < limit) {
        const rows = await it.nextv(limit - out.length)
        if (rows.length === 0) break
        for (let i = 0; i < rows.length; i++) out.push(entryFromRecord(rows[i][1], readUint64BE(rows[i][0], 1)))
      }
      return out
    } catch (err) {
      throw storageFailed('Could not read the change index', err)
    } finally {
      await it.close().catch(() => {})
    }
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
   * absent), in local change order, as of the call. Cost grows with what is
   * missing. Iteration rejects CLOSED or STORAGE_FAILED.
   */
  async *readMissing(remote: Clock): AsyncGenerator<LogEntry, void, undefined> {
    if (!(remote instanceof Map)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'readMissing() takes a Clock (Map of writer hex to seq)')
    }
    await this.ready()
    const length = this.changes
    const remoteSeq = (hex: string): number => {
      const r = remote.get(hex)
      return typeof r === 'number' && r > 0 ? Math.floor(r) : 0
    }
    const cursors: WriterCursor[] = []
    let missing = 0
    for (const [hex, seq] of this.clockMap) {
      const from = remoteSeq(hex)
      if (seq > from) {
        cursors.push(new WriterCursor(this.sub, fromHex(hex)!, from, seq))
        missing += seq - from
      }
    }
    if (missing === 0) return

    if (missing * 2 >= length) {
      // Most of the log is missing: one sequential scan of the change index
      // beats index lookups, and costs at most twice the missing count.
      let after = 0
      let sent = 0
      let lastWriter: Uint8Array = EMPTY
      let lastKnown = 0
      while (sent < missing && after < length && this.state === 'open') {
        const page = await this.readPage(after, Math.min(MISSING_PAGE, length - after))
        if (page.length === 0) break
        for (const e of page) {
          if (!equalBytes(e.writer, lastWriter)) {
            lastWriter = e.writer
            lastKnown = remoteSeq(toHex(e.writer))
          }
          if (e.seq > lastKnown) {
            sent++
            yield e
          }
        }
        after = page[page.length - 1].change
      }
      return
    }

    // Few missing: walk each writer's index from the peer's seq, merge by change number.
    const heap = new CursorHeap()
    for (const c of cursors) {
      await c.fill()
      if (c.current() !== undefined) heap.push(c)
    }
    while (heap.size() > 0 && this.state === 'open') {
      const changes: number[] = []
      while (changes.length < MISSING_PAGE && heap.size() > 0) {
        const c = heap.peek()
        changes.push(c.current()!)
        c.advance()
        if (c.current() === undefined) await c.fill()
        if (c.current() === undefined) heap.pop()
        else heap.fix()
      }
      let records: (Uint8Array | undefined)[]
      try {
        records = await this.sub.getMany(changes.map((c) => changeKey(c)))
      } catch (err) {
        throw storageFailed('Could not read nodes from the db', err)
      }
      for (let i = 0; i < changes.length; i++) {
        const record = records[i]
        if (record === undefined) throw storageFailed(`change ${changes[i]} is indexed but missing`, undefined)
        yield entryFromRecord(record, changes[i])
      }
    }
  }
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `A node key is ${KEY_BYTES} bytes`, {
      details: { length: key instanceof Uint8Array ? key.length : undefined },
    })
  }
}

/** New heads after storing a node: its links leave, it joins, order stays sorted. */
function mergeHeads(heads: Uint8Array[], links: Uint8Array[], key: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  for (const h of heads) {
    let linked = false
    for (const l of links) {
      if (equalBytes(h, l)) {
        linked = true
        break
      }
    }
    if (!linked) out.push(h)
  }
  let i = out.length
  while (i > 0 && compareBytes(out[i - 1], key) > 0) i--
  out.splice(i, 0, key)
  return out
}

/** One writer's missing range in the writer index, paged. */
class WriterCursor {
  private changes: number[] = []
  private index = 0
  constructor(
    private readonly sub: Sub,
    private readonly writer: Uint8Array,
    private after: number,
    private readonly to: number,
  ) {}

  current(): number | undefined {
    return this.index < this.changes.length ? this.changes[this.index] : undefined
  }

  advance(): void {
    this.index++
  }

  /** Loads the next page once the current one is used up. */
  async fill(): Promise<void> {
    if (this.index < this.changes.length || this.after >= this.to) return
    const first = this.after + 1
    const last = Math.min(this.to, this.after + MISSING_PAGE)
    // Runs covering first..last: the one holding `first` (greatest indexed
    // seq <= first), then every run that starts after it up to `last`.
    const runs: Array<[seq: number, change: number]> = []
    try {
      const back = this.sub.iterator({ gte: writerIndexKey(this.writer, 0), lte: writerIndexKey(this.writer, first), reverse: true, limit: 1 })
      const head = await back.all()
      if (head.length === 0) throw new Error(`no run holds seq ${first}`)
      const later = await this.sub.iterator({ gt: writerIndexKey(this.writer, first), lte: writerIndexKey(this.writer, last) }).all()
      for (const [k, v] of [...head, ...later]) runs.push([readUint64BE(k, 1 + WRITER_BYTES), readUint64BE(v, 0)])
    } catch (err) {
      throw storageFailed('Could not read the writer index', err)
    }
    const changes: number[] = []
    let r = 0
    for (let seq = first; seq <= last; seq++) {
      while (r + 1 < runs.length && runs[r + 1][0] <= seq) r++
      changes.push(runs[r][1] + (seq - runs[r][0]))
    }
    this.changes = changes
    this.index = 0
    this.after = last
  }
}

/** Min-heap of cursors by their current change number. */
class CursorHeap {
  private items: WriterCursor[] = []
  size(): number {
    return this.items.length
  }
  peek(): WriterCursor {
    return this.items[0]
  }
  push(c: WriterCursor): void {
    this.items.push(c)
    let i = this.items.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.items[p].current()! <= this.items[i].current()!) break
      ;[this.items[p], this.items[i]] = [this.items[i], this.items[p]]
      i = p
    }
  }
  pop(): void {
    const last = this.items.pop()!
    if (this.items.length > 0) {
      this.items[0] = last
      this.fix()
    }
  }
  /** Restores order after the top's current() grew. */
  fix(): void {
    const items = this.items
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < items.length && items[l].current()! < items[m].current()!) m = l
      if (r < items.length && items[r].current()! < items[m].current()!) m = r
      if (m === i) return
      ;[items[m], items[i]] = [items[i], items[m]]
      i = m
    }
  }
}

/**
 * The iterator behind read(): pages the change index from the db, then (live)
 * takes committed entries straight from the write path. Switching to live
 * happens synchronously once the db page came back short and the log's length
 * equals the last change read, so no entry is missed or seen twice.
 */
class ChangeReader implements AsyncIterableIterator<LogEntry> {
  private cursor: number
  private remaining: number
  private buf: LogEntry[] = []
  private bi = 0
  private subscribed = false
  private liveBuf: LogEntry[] = []
  private liveCursor = 0
  private exhausted = false
  private finished = false
  private started = false
  private wake: (() => void) | null = null
  private tail: Promise<unknown> = Promise.resolve()
  private inFlight = 0

  constructor(
    private readonly src: ReaderSource,
    since: number,
    private readonly live: boolean,
    limit: number,
  ) {
    this.cursor = since
    this.remaining = limit
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<LogEntry> {
    return this
  }

  next(): Promise<IteratorResult<LogEntry>> {
    // Fast path: a buffered entry needs no promise chain.
    if (this.inFlight === 0 && this.started && !this.finished && this.bi < this.buf.length && this.remaining > 0) {
      this.remaining--
      return Promise.resolve({ value: this.buf[this.bi++], done: false })
    }
    this.inFlight++
    // Serialise overlapping next() calls so each gets the next entry.
    const p = this.tail.then(() => this.step())
    this.tail = p.then(
      () => {
        this.inFlight--
      },
      () => {
        this.inFlight--
      },
    )
    return p
  }

  return(): Promise<IteratorResult<LogEntry>> {
    this.finish()
    return Promise.resolve({ value: undefined, done: true })
  }

  /** Called by the log on commit while subscribed. */
  push(entries: LogEntry[]): void {
    for (const e of entries) {
      if (e.change > this.liveCursor) {
        this.liveBuf.push(e)
        this.liveCursor = e.change
      }
    }
    if (this.liveBuf.length > this.src.liveBuffer) {
      // Too far behind: forget the buffer and page from the db from `cursor`.
      this.liveBuf = []
      this.subscribed = false
      this.src.unsubscribe(this)
    }
    this.wakeUp()
  }

  wakeUp(): void {
    const w = this.wake
    this.wake = null
    if (w) w()
  }

  private finish(): IteratorResult<LogEntry> {
    this.finished = true
    this.buf = []
    this.liveBuf = []
    if (this.subscribed) {
      this.subscribed = false
      this.src.unsubscribe(this)
    }
    this.wakeUp()
    return { value: undefined, done: true }
  }

  private async step(): Promise<IteratorResult<LogEntry>> {
    if (!this.started) {
      this.started = true
      if (!this.finished) {
        try {
          await this.src.ready()
        } catch (err) {
          this.finish()
          throw err
        }
      }
    }
    for (;;) {
      if (this.finished || this.remaining <= 0) return this.finish()
      if (this.bi < this.buf.length) {
        this.remaining--
        return { value: this.buf[this.bi++], done: false }
      }
      if (this.liveBuf.length > 0) {
        this.buf = this.liveBuf
        this.bi = 0
        this.liveBuf = []
        this.cursor = this.buf[this.buf.length - 1].change
        continue
      }
      // After close, what is already in memory is still delivered, but no
      // new db read starts: the caller may close the db right after the log.
      if (this.exhausted || this.src.closed()) return this.finish()
      if (this.subscribed) {
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        continue
      }
      const want = Math.min(READ_PAGE, this.remaining)
      let page: LogEntry[]
      try {
        page = await this.src.readPage(this.cursor, want)
      } catch (err) {
        this.finish()
        throw err
      }
      if (this.finished) return { value: undefined, done: true }
      if (page.length > 0) {
        this.buf = page
        this.bi = 0
        this.cursor = page[page.length - 1].change
      }
      if (page.length < want) {
        if (!this.live) this.exhausted = true
        else if (this.src.length() <= this.cursor && !this.src.closed()) {
          // Synchronous with the length check: every later commit has a
          // higher change number and will be pushed to us. `<=` because
          // `since` may lie beyond the end; re-reading the db then would spin.
          this.subscribed = true
          this.liveCursor = this.cursor
          this.src.subscribe(this)
        }
      }
    }
  }
}
