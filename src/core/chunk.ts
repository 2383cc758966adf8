/**
 * Chunks: how the log packs a run of consecutive changes into two db records
 * instead of writing records per node.
 *
 *   c + first(8 BE) -> for each node: varint(length) || canonical node bytes
 *   k + first(8 BE) -> the same nodes' keys, 32 bytes each, in order
 *
 * `first` is the change number of the chunk's first node; node i is change
 * first + i. The keys live apart so opening the log reads 32 bytes a node to
 * rebuild its key index, not the whole log.
 *
 * Measured on classic-level with batches of 1000 nodes: one record per node
 * plus a key record per node ~150k nodes/s, packed like this ~1M nodes/s.
 */
import { writeUint64BE } from './bytes.js'
import { HyperEmitterError, ErrorCodes } from './errors.js'
import { decodeNode, KEY_BYTES } from './node.js'
import type { LogEntry } from './types.js'
import { varintLength, writeVarint } from './varint.js'

/** Nodes per chunk at most; a bigger batch writes several chunks. */
export const CHUNK_MAX_NODES = 1024
/** A chunk is closed once its node bytes pass this (so one huge batch is not one huge record). */
const CHUNK_MAX_BYTES = 1 << 20

export const P_NODES = 0x63 // 'c'
export const P_KEYS = 0x6b // 'k'

/** The db key of a chunk record: prefix || first change (8 BE). */
export function chunkRecordKey(prefix: number, first: number): Uint8Array {
  const k = new Uint8Array(9)
  k[0] = prefix
  writeUint64BE(k, 1, first)
  return k
}

/** A view of `length` bytes of `arr` from `start` (cheaper than subarray in V8). */
export function view(arr: Uint8Array, start: number, length: number): Uint8Array {
  return new Uint8Array(arr.buffer, arr.byteOffset + start, length)
}

/** A value the db may store as is: IndexedDB's structured clone stores a view's whole ArrayBuffer. */
function standalone(arr: Uint8Array, length: number): Uint8Array {
  return length === arr.buffer.byteLength && arr.byteOffset === 0 ? arr : arr.slice(0, length)
}

/**
 * Builds one chunk while a batch is committed: nodes are written straight
 * into its buffer (entries handed to listeners are views into it).
 */
export class ChunkBuilder {
  count = 0
  /** The buffer nodes are written into; replaced (not moved) when it grows. */
  buffer: Uint8Array
  private pos = 0
  private keys: Uint8Array

  constructor(
    readonly first: number,
    expectedBytes: number,
    expectedNodes: number,
  ) {
    this.buffer = new Uint8Array(Math.max(64, Math.min(expectedBytes, CHUNK_MAX_BYTES + 4096)))
    this.keys = new Uint8Array(KEY_BYTES * Math.max(1, Math.min(expectedNodes, CHUNK_MAX_NODES)))
  }

  /** Whether the next node belongs in a new chunk. */
  get full(): boolean {
    return this.count >= CHUNK_MAX_NODES || this.pos >= CHUNK_MAX_BYTES
  }

  /** Makes room for the next node of `size` bytes; returns its offset in `buffer`. */
  reserve(size: number): number {
    const need = this.pos + varintLength(size) + size
    if (need > this.buffer.length) {
      // Earlier entries keep their views into the old buffer: only the
      // bytes move, and the db gets the new one.
      const grown = new Uint8Array(Math.max(need, this.buffer.length * 2))
      grown.set(this.buffer.subarray(0, this.pos))
      this.buffer = grown
    }
    this.pos = writeVarint(this.buffer, this.pos, size)
    const at = this.pos
    this.pos += size
    return at
  }

  /** Stores the key of the node just reserved; returns a view of it. */
  pushKey(key: Uint8Array): Uint8Array {
    const at = this.count * KEY_BYTES
    if (at + KEY_BYTES > this.keys.length) {
      const grown = new Uint8Array(Math.min(this.keys.length * 2, CHUNK_MAX_NODES * KEY_BYTES))
      grown.set(this.keys)
      this.keys = grown
    }
    for (let i = 0; i < KEY_BYTES; i++) this.keys[at + i] = key[i]
    this.count++
    return view(this.keys, at, KEY_BYTES)
  }

  /** The two record values, each a standalone array of exactly its bytes. */
  values(): { nodes: Uint8Array; keys: Uint8Array } {
    return { nodes: standalone(this.buffer, this.pos), keys: standalone(this.keys, this.count * KEY_BYTES) }
  }
}

function corrupt(first: number, why: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `The chunk at change ${first} is corrupt: ${why}`, { details: { change: first } })
}

/** A stored chunk, read back: entries decoded on demand. Without its nodes record it answers key() only. */
export class Chunk {
  readonly count: number
  // Where each node's bytes start and end in the nodes record, parsed once.
  private starts: Uint32Array | undefined
  private ends: Uint32Array | undefined

  constructor(
    readonly first: number,
    private readonly keys: Uint8Array,
    private readonly nodes?: Uint8Array,
  ) {
    if (keys.length === 0 || keys.length % KEY_BYTES !== 0) throw corrupt(first, `its key record holds ${keys.length} bytes`)
    this.count = keys.length / KEY_BYTES
  }

  /** Change number of the last node. */
  get last(): number {
    return this.first + this.count - 1
  }

  has(change: number): boolean {
    return change >= this.first && change <= this.last
  }

  key(change: number): Uint8Array {
    return view(this.keys, (change - this.first) * KEY_BYTES, KEY_BYTES)
  }

  /** The entry at `change` (which must be in this chunk). Throws STORAGE_FAILED on a corrupt record. */
  entry(change: number): LogEntry {
    if (this.starts === undefined) this.parse()
    const i = change - this.first
    const start = this.starts![i]
    const bytes = view(this.nodes!, start, this.ends![i] - start)
    let node
    try {
      node = decodeNode(bytes)
    } catch (err) {
      throw corrupt(this.first, `node ${change} does not decode (${(err as Error).message})`)
    }
    return { key: this.key(change), writer: node.writer, seq: node.seq, links: node.links, value: node.value, bytes, change }
  }

  private parse(): void {
    const nodes = this.nodes
    if (nodes === undefined) throw new Error('Chunk read without its nodes record')
    const starts = new Uint32Array(this.count)
    const ends = new Uint32Array(this.count)
    let pos = 0
    for (let i = 0; i < this.count; i++) {
      // The length varint, read inline: this runs once per node on catch-up.
      let length = 0
      let scale = 1
      let b = 0x80
      while (b >= 0x80) {
        if (pos >= nodes.length || scale > 2 ** 28) throw corrupt(this.first, `node ${this.first + i} has a malformed length`)
        b = nodes[pos++]
        length += (b & 0x7f) * scale
        scale *= 128
      }
      if (pos + length > nodes.length) throw corrupt(this.first, `node ${this.first + i} runs past the record`)
      starts[i] = pos
      pos = ends[i] = pos + length
    }
    if (pos !== nodes.length) throw corrupt(this.first, 'bytes left over after its last node')
    this.starts = starts
    this.ends = ends
  }
}
