/**
 * Chunks: how the log packs a run of consecutive changes into one db record
 * instead of writing records per node.
 *
 *   c + first(8 BE) -> varint(count) || count keys, 32 bytes each
 *                      || for each node: varint(length) || canonical node bytes
 *
 * `first` is the change number of the chunk's first node; node i is change
 * first + i. Keys come first so the key index can be rebuilt from a chunk
 * without parsing its nodes. Packed, because a batch's speed is bound by
 * its record count: an awaited append is one record instead of three.
 */
import { grown, view, writeUint64BE } from '../bytes/bytes.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { decodeCanonicalNode, decodeNode, KEY_BYTES } from '../codec/node.js'
import type { LogEntry } from '../types.js'
import { VarintReader, varintLength, writeVarint } from '../bytes/varint.js'

/** Nodes per chunk at most; a bigger batch writes several chunks. */
const CHUNK_MAX_NODES = 1024
/** A chunk is closed once its node bytes pass this (so one huge batch is not one huge record). */
const CHUNK_MAX_BYTES = 1 << 20

export const P_CHUNK = 0x63 // 'c'

/** A db key: prefix || n (8 BE). */
export function numberedKey(prefix: number, n: number): Uint8Array {
  const k = new Uint8Array(9)
  k[0] = prefix
  writeUint64BE(k, 1, n)
  return k
}

/** Makes a chunk's buffer of `size` bytes. */
export type Allocate = (size: number) => Uint8Array

/**
 * A buffer of the chunk's own, the default: IndexedDB's structured clone
 * stores a view's whole underlying buffer, so a record there needs a buffer
 * of its own.
 */
function ownBuffer(size: number): Uint8Array {
  return new Uint8Array(size)
}

/**
 * Builds one chunk while a batch is committed, in its record layout: room
 * for the count and `capacity` keys first, then the nodes, written straight
 * in (entries handed to listeners are views into it). When the batch fills
 * it as sized, the buffer is the record itself: one allocation per chunk
 * instead of a buffer for nodes, one for keys and a record copied from both
 * (for a one-node batch, the awaited emit, allocations cost more than copies).
 */
export class ChunkBuilder {
  count = 0
  /** The buffer nodes are written into; replaced (not moved) when it grows. */
  buffer: Uint8Array
  /** Where the keys start (after the count) and the nodes start (after `capacity` keys). */
  private readonly keysAt: number
  private readonly nodesAt: number
  private pos: number

  /**
   * `expectedNodes` is an upper bound on the nodes to come; `expectedBytes`
   * the bytes they take (each a varint length and the node), exact when
   * known: a wrong guess only costs a copy.
   */
  constructor(
    readonly first: number,
    expectedBytes: number,
    expectedNodes: number,
    allocate: Allocate = ownBuffer,
  ) {
    const capacity = Math.max(1, Math.min(expectedNodes, CHUNK_MAX_NODES))
    this.keysAt = varintLength(capacity)
    this.nodesAt = this.keysAt + capacity * KEY_BYTES
    this.pos = this.nodesAt
    this.buffer = allocate(this.nodesAt + Math.max(16, Math.min(expectedBytes, CHUNK_MAX_BYTES + 4096)))
  }

  /** Whether the next node belongs in a new chunk. */
  get full(): boolean {
    return this.keysAt + this.count * KEY_BYTES >= this.nodesAt || this.pos - this.nodesAt >= CHUNK_MAX_BYTES
  }

  /** Makes room for the next node of `size` bytes; returns its offset in `buffer`. */
  reserve(size: number): number {
    this.buffer = grown(this.buffer, this.pos, this.pos + varintLength(size) + size)
    this.pos = writeVarint(this.buffer, this.pos, size)
    const at = this.pos
    this.pos += size
    return at
  }

  /** Stores (a copy of) the key of the node just reserved. */
  pushKey(key: Uint8Array): void {
    const at = this.keysAt + this.count * KEY_BYTES
    const buffer = this.buffer
    for (let i = 0; i < KEY_BYTES; i++) buffer[at + i] = key[i]
    this.count++
  }

  /** The record's value: the buffer as allocated when the chunk filled it, else a standalone copy. */
  value(): Uint8Array {
    if (this.keysAt + this.count * KEY_BYTES === this.nodesAt && this.pos === this.buffer.length) {
      writeVarint(this.buffer, 0, this.count)
      return this.buffer
    }
    // Fewer nodes or bytes than sized for (refused or duplicate nodes, a guess off): pack a copy.
    const keyBytes = this.count * KEY_BYTES
    const head = varintLength(this.count)
    const out = new Uint8Array(head + keyBytes + this.pos - this.nodesAt)
    writeVarint(out, 0, this.count)
    out.set(this.buffer.subarray(this.keysAt, this.keysAt + keyBytes), head)
    out.set(this.buffer.subarray(this.nodesAt, this.pos), head + keyBytes)
    return out
  }
}

/**
 * The chunks of one batch: starts a new one when the current is full, and
 * sizes each from what the batch still expects, so one buffer usually fits.
 */
export class ChunkSequence {
  /** The chunk the last reserve() made room in. */
  current: ChunkBuilder | undefined
  private readonly done: ChunkBuilder[] = []

  constructor(
    private bytesLeft: number,
    private nodesLeft: number,
    private readonly allocate: Allocate = ownBuffer,
  ) {}

  /** Room for the node at change `change`, of `size` bytes: its offset in `current.buffer`. */
  reserve(size: number, change: number): number {
    let chunk = this.current
    if (chunk === undefined || chunk.full) {
      if (chunk !== undefined) this.done.push(chunk)
      chunk = this.current = new ChunkBuilder(change, this.bytesLeft, this.nodesLeft, this.allocate)
    }
    this.bytesLeft -= size
    this.nodesLeft--
    return chunk.reserve(size)
  }

  /** Nodes that will not come after all (a refused request): for sizing only. */
  skip(nodes: number): void {
    this.nodesLeft -= nodes
  }

  /** The chunks with at least one node, in order. */
  finish(): ChunkBuilder[] {
    if (this.current !== undefined && this.current.count > 0) this.done.push(this.current)
    this.current = undefined
    return this.done
  }
}

function corrupt(first: number, why: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `The chunk at change ${first} is corrupt: ${why}`, { details: { change: first } })
}

/** A stored chunk, read back: entries decoded on demand. Throws STORAGE_FAILED on a malformed record. */
export class Chunk {
  readonly count: number
  private readonly keysAt: number
  private readonly nodesAt: number
  // Where each node's bytes start and end in the record, parsed on first use.
  private starts: Uint32Array | undefined
  private ends: Uint32Array | undefined
  /** The writer of the entry made last: its runs share one array. */
  private lastWriter: Uint8Array | undefined

  constructor(
    readonly first: number,
    private readonly record: Uint8Array,
  ) {
    const reader = new VarintReader(record)
    const count = reader.next()
    if (count <= 0 || reader.pos + count * KEY_BYTES > record.length) throw corrupt(first, `it cannot hold ${count} keys`)
    this.count = count
    this.keysAt = reader.pos
    this.nodesAt = reader.pos + count * KEY_BYTES
  }

  /** Change number of the last node. */
  get last(): number {
    return this.first + this.count - 1
  }

  has(change: number): boolean {
    return change >= this.first && change <= this.last
  }

  key(change: number): Uint8Array {
    return view(this.record, this.keysAt + (change - this.first) * KEY_BYTES, KEY_BYTES)
  }

  /** The entry at `change` (which must be in this chunk). */
  entry(change: number): LogEntry {
    if (this.starts === undefined) this.parse()
    const i = change - this.first
    const start = this.starts![i]
    const bytes = view(this.record, start, this.ends![i] - start)
    let node
    try {
      // Stored nodes are canonical: the fixed-layout reader takes them (decodeNode judges anything else).
      node = decodeCanonicalNode(bytes, this.lastWriter) ?? decodeNode(bytes)
    } catch (err) {
      throw corrupt(this.first, `node ${change} does not decode (${(err as Error).message})`)
    }
    this.lastWriter = node.writer
    return { key: this.key(change), writer: node.writer, seq: node.seq, links: node.links, value: node.value, bytes, change }
  }

  private parse(): void {
    const record = this.record
    const starts = new Uint32Array(this.count)
    const ends = new Uint32Array(this.count)
    const reader = new VarintReader(record, this.nodesAt)
    for (let i = 0; i < this.count; i++) {
      const length = reader.next()
      if (length < 0 || reader.pos + length > record.length) throw corrupt(this.first, `node ${this.first + i} has a malformed length`)
      starts[i] = reader.pos
      reader.pos = ends[i] = reader.pos + length
    }
    if (reader.pos !== record.length) throw corrupt(this.first, 'bytes left over after its last node')
    this.starts = starts
    this.ends = ends
  }
}
