/**
 * Building one group-commit batch: local appends written straight into
 * chunks, verified foreign nodes copied in, then the db ops that store it
 * all at once. Nothing here touches the log's state; commit-queue.ts moves
 * it once the batch is durable.
 */
import { compareBytes, equalBytes, uint64BE, view } from '../bytes/bytes.js'
import { varintLength } from '../bytes/varint.js'
import { KEY_BYTES, MAX_LINKS_PER_APPEND, type NodeHead, nodeSize, WRITER_BYTES, writeNodeWithValue } from '../codec/node.js'
import type { HashFn, LogEntry } from '../types.js'
import { type Allocate, ChunkSequence } from './chunk.js'
import { clockKey, clockRecord, encodeHeadsRecord, HEADS_KEY, KEY_CHECKPOINT, numberedKey, P_CHUNK, P_KEYS, type PutOp, type Sub, writerIndexKey } from './format.js'
import { LazyKeySet } from './keyset.js'
import { ADD, type AddRequest, APPEND, type AppendRequest, type Incoming, type Request, valueSize, valueSource, valueStart } from './requests.js'
import type { LogState } from './state.js'
import { signatureOp, WriterKeys } from './signatures.js'
import type { WriterKey } from '../identity/writer-key.js'

/**
 * The entry of a local append: the log's own writer id, and views into
 * `bytes` found by arithmetic rather than decoding (writer field 2+16 bytes,
 * then the seq field, then 34 bytes per link, value last), made only when
 * first read, since most readers of a fresh entry want only some fields.
 */
class AppendedEntry implements LogEntry {
  private valueView: Uint8Array | undefined
  private linkViews: Uint8Array[] | undefined

  constructor(
    readonly key: Uint8Array,
    readonly writer: Uint8Array,
    readonly seq: number,
    private readonly linkCount: number,
    private readonly valueLength: number,
    readonly bytes: Uint8Array,
    readonly change: number,
  ) {}

  get value(): Uint8Array {
    return (this.valueView ??= view(this.bytes, this.bytes.length - this.valueLength, this.valueLength))
  }

  get links(): Uint8Array[] {
    if (this.linkViews === undefined) {
      const start = 2 + WRITER_BYTES + 1 + varintLength(this.seq)
      this.linkViews = []
      for (let i = 0; i < this.linkCount; i++) this.linkViews.push(view(this.bytes, start + i * (2 + KEY_BYTES) + 2, KEY_BYTES))
    }
    return this.linkViews
  }
}

/** One batch being built: everything that moves only once it is durable. */
export class PendingBatch {
  readonly ops: PutOp[] = []
  readonly entries: LogEntry[] = []
  /** Per entry: the request's origin (undefined for local appends). */
  readonly origins: unknown[] = []
  change: number
  heads: Uint8Array[]
  ownSeq: number
  /** The node stored just before the next: a next node of its writer with the next seq continues its writer-index run. */
  runWriter: Uint8Array | undefined
  runSeq: number
  /** Foreign writers touched, with their new seq, and the keys stored: made when a foreign request comes. */
  touched: Map<string, { writer: Uint8Array; seq: number; key: Uint8Array }> | undefined
  keys: LazyKeySet | undefined
  /** Keys of writers first stored by this batch. */
  newKeys: Map<string, { writer: Uint8Array; key: WriterKey }> | undefined
  checkpoint = false
  /** Reused for every append: only written, then copied into the chunk. */
  readonly appendFields: NodeHead

  /** Starts from a state of the log (committed, or where the batch before ends): change count, heads, own seq, last stored node; and the log's writer. */
  constructor(
    readonly chunks: ChunkSequence,
    change: number,
    heads: Uint8Array[],
    ownSeq: number,
    last: { writer: Uint8Array | undefined; seq: number },
    writer: Uint8Array,
  ) {
    this.change = change
    this.heads = heads
    this.ownSeq = ownSeq
    this.runWriter = last.writer
    this.runSeq = last.seq
    this.appendFields = { writer, seq: 0, links: heads }
  }

  /** The key of this writer's last node in the batch, once it has one. */
  ownTip: Uint8Array | undefined

  foreignWriters(): Map<string, { writer: Uint8Array; seq: number; key: Uint8Array }> {
    return (this.touched ??= new Map())
  }

  foreignKeys(): LazyKeySet {
    return (this.keys ??= new LazyKeySet())
  }

  /** Whether a node of this batch has `key`. */
  hasKey(key: Uint8Array): boolean {
    return this.keys !== undefined && this.keys.has(key)
  }
}

/** Builds batches over the log's committed state; shared by every batch. */
export class BatchBuilder {
  constructor(
    private readonly state: LogState,
    private readonly sub: Sub,
    private readonly hash: HashFn,
    /** How chunk buffers are made (undefined: a buffer each). */
    private readonly allocateChunk: Allocate | undefined,
  ) {}

  /**
   * A batch for `taken`, its chunks sized from what is queued, starting from
   * what the log holds or, given `after`, from where that batch ends.
   */
  start(taken: Request[], after: PendingBatch | undefined): PendingBatch {
    const state = this.state
    const heads = after?.heads ?? state.heads
    let bytesLeft = 0
    let nodesLeft = 0
    let sizedHeads = heads.length
    const ownSeq = after?.ownSeq ?? state.clock.get(state.writerHex) ?? 0
    let sizedSeq = ownSeq
    for (const req of taken) {
      nodesLeft += req.size
      if (req.kind === APPEND) {
        for (let i = 0; i < req.values.length; i++) {
          const links = Math.min(sizedHeads, MAX_LINKS_PER_APPEND)
          const size = nodeSize(++sizedSeq, links, valueSize(req.values, i))
          bytesLeft += varintLength(size) + size
          sizedHeads += 1 - links
        }
      } else if (req.kind === ADD) {
        // Exact unless some are refused or duplicates; the heads after them are a guess.
        for (const n of req.nodes) bytesLeft += varintLength(n.bytes.length) + n.bytes.length
        sizedHeads = heads.length + 1
      }
    }
    const chunks = new ChunkSequence(bytesLeft, nodesLeft, this.allocateChunk)
    const last = after === undefined ? { writer: state.lastWriter, seq: state.lastSeq } : { writer: after.runWriter, seq: after.runSeq }
    return new PendingBatch(chunks, after?.change ?? state.changes, heads, ownSeq, last, state.writer)
  }

  /** Writes a local append request's nodes into the batch. */
  appendValues(batch: PendingBatch, req: AppendRequest): void {
    const writer = this.state.writer
    const fields = batch.appendFields
    const values = req.values
    for (let i = 0; i < values.length; i++) {
      const valueLength = valueSize(values, i)
      const seq = ++batch.ownSeq
      const heads = batch.heads
      // At most MAX_LINKS_PER_APPEND heads (the first, in key order); the rest wait for the next node.
      const links = heads.length > MAX_LINKS_PER_APPEND ? heads.slice(0, MAX_LINKS_PER_APPEND) : heads
      fields.seq = seq
      fields.links = links
      const size = nodeSize(seq, links.length, valueLength)
      const at = batch.chunks.reserve(size, batch.change + 1)
      const chunk = batch.chunks.current!
      writeNodeWithValue(chunk.buffer, at, fields, valueSource(values, i), valueStart(values, i), valueLength)
      const bytes = view(chunk.buffer, at, size)
      // The hash's own array is the key (HashFn returns a new one); the chunk keeps a copy.
      const key = this.hash(bytes)
      chunk.pushKey(key)
      if (!(batch.runWriter === writer && batch.runSeq === seq - 1)) batch.ops.push(this.runStartOp(writer, seq, batch.change + 1))
      batch.runWriter = writer
      batch.runSeq = seq
      const entry = new AppendedEntry(key, writer, seq, links.length, valueLength, bytes, ++batch.change)
      batch.heads = links === heads ? [key] : insertSorted(heads.slice(MAX_LINKS_PER_APPEND), key)
      batch.ownTip = key
      batch.entries.push(entry)
      batch.origins.push(undefined)
      req.result = entry
    }
  }

  /** Writes a verified foreign request's nodes into the batch; returns their entries. */
  storeForeign(batch: PendingBatch, req: AddRequest, accepted: Incoming[]): LogEntry[] {
    const stored: LogEntry[] = []
    const touched = batch.foreignWriters()
    const keys = batch.foreignKeys()
    let writerState: { writer: Uint8Array; seq: number; key: Uint8Array } | undefined
    for (const n of accepted) {
      const at = batch.chunks.reserve(n.bytes.length, batch.change + 1)
      batch.chunks.current!.buffer.set(n.bytes, at)
      batch.chunks.current!.pushKey(n.key)
      const continuesRun = batch.runWriter !== undefined && batch.runSeq === n.seq - 1 && equalBytes(batch.runWriter, n.writer)
      if (!continuesRun) batch.ops.push(this.runStartOp(n.writer, n.seq, batch.change + 1))
      batch.runWriter = n.writer
      batch.runSeq = n.seq
      // The entry keeps the node's own arrays (same content as the chunk's copy).
      const entry: LogEntry = { key: n.key, writer: n.writer, seq: n.seq, links: n.links, value: n.value, bytes: n.bytes, change: ++batch.change }
      if (n.signature !== undefined) {
        entry.signature = n.signature
        batch.ops.push(signatureOp(this.sub, entry.change, n.signature))
      }
      // Our own nodes, written by a copy of this db: our chain goes on after them.
      if (n.writerHex === this.state.writerHex) {
        batch.ownSeq = n.seq
        batch.ownTip = n.key
      }
      if (writerState === undefined || writerState.writer !== n.writer) {
        writerState = touched.get(n.writerHex)
        if (writerState === undefined) touched.set(n.writerHex, (writerState = { writer: n.writer, seq: 0, key: n.key }))
      }
      writerState.seq = n.seq
      writerState.key = n.key
      keys.add(n.key)
      batch.heads = mergeHeads(batch.heads, n.links, n.key)
      batch.entries.push(entry)
      batch.origins.push(req.origin)
      stored.push(entry)
    }
    if (stored.length > 0) for (const [hex, known] of req.signed.newKeys) if (touched.has(hex)) (batch.newKeys ??= new Map()).set(hex, known)
    return stored
  }

  /** The batch's db ops: its index runs, chunks, and the records foreign nodes or a checkpoint need. */
  finish(batch: PendingBatch): PutOp[] {
    const ops = batch.ops
    const sub = this.sub
    for (const chunk of batch.chunks.finish()) {
      ops.push({ type: 'put', sublevel: sub, key: numberedKey(P_CHUNK, chunk.first), value: chunk.value() })
    }
    const touched = batch.touched
    const foreign = touched !== undefined && touched.size > 0
    // Foreign nodes moved the heads, or appends left some unlinked (over MAX_LINKS_PER_APPEND):
    // only a batch ending on one head, its last append, needs no record (see format.ts).
    if (foreign || batch.heads.length > 1) {
      ops.push({ type: 'put', sublevel: sub, key: HEADS_KEY, value: encodeHeadsRecord(batch.change, batch.ownSeq, batch.heads) })
    }
    if (foreign) for (const { writer: w, seq, key } of touched.values()) ops.push({ type: 'put', sublevel: sub, key: clockKey(w), value: clockRecord(seq, key) })
    if (batch.newKeys !== undefined) for (const { writer, key } of batch.newKeys.values()) ops.push(WriterKeys.op(sub, writer, key))
    const unindexed = this.state.unindexed
    batch.checkpoint = unindexed.count + batch.entries.length >= KEY_CHECKPOINT
    if (batch.checkpoint) {
      ops.push({ type: 'put', sublevel: sub, key: numberedKey(P_KEYS, this.state.changes - unindexed.count + 1), value: unindexed.record(batch.entries) })
    }
    return ops
  }

  /** The writer-index record for a node that starts a run. */
  private runStartOp(writer: Uint8Array, seq: number, change: number): PutOp {
    return { type: 'put', sublevel: this.sub, key: writerIndexKey(writer, seq), value: uint64BE(change) }
  }
}

/** `keys` (sorted) with `key` inserted in order; `keys` is changed and returned. */
function insertSorted(keys: Uint8Array[], key: Uint8Array): Uint8Array[] {
  let i = keys.length
  while (i > 0 && compareBytes(keys[i - 1], key) > 0) i--
  keys.splice(i, 0, key)
  return keys
}

/** New heads after storing a node: its links leave, it joins, order stays sorted. */
export function mergeHeads(heads: Uint8Array[], links: Uint8Array[], key: Uint8Array): Uint8Array[] {
  // A chain: the node replaces the one head it links.
  if (heads.length === 1 && links.length === 1 && equalBytes(heads[0], links[0])) return [key]
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
  return insertSorted(out, key)
}
