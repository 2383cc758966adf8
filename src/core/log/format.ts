/**
 * The log's storage format: every record kind, its key and its value, in one
 * place. All records live in one sublevel (`hyperemitter`, view encodings)
 * with a one-byte prefix per kind:
 *
 *   c + first(8 BE)            -> a chunk: the keys and nodes of a run of
 *                                 changes from `first` (see chunk.ts)
 *   k + first(8 BE)            -> keys of changes first.. (key index checkpoint)
 *   w + writer(16) + seq(8 BE) -> change(8 BE)   (sparse: see below)
 *   l + writer(16)             -> seq(8 BE) || tip(32)  (clock of other writers;
 *                                 tip: the key of the node at seq; dbs written
 *                                 before tips hold the seq alone)
 *   h                          -> change(8 BE) || own seq(8 BE) || heads (32 each, sorted)
 *   m                          -> format version(1) || writer(16)
 *
 * Each batch is packed into one chunk record rather than records per node,
 * since per-record cost bounds a batch's speed. What other records would say
 * is derived instead:
 * - Lookups by key go through an in-memory KeyIndex, rebuilt at open from
 *   the k records (written once KEY_CHECKPOINT keys have gathered, in a
 *   batch that commits anyway) plus the chunks after the last of them.
 * - `h` is written only by batches that stored foreign nodes or whose
 *   appends left more than one head (a node links at most
 *   MAX_LINKS_PER_APPEND heads). Changes after its `change` are all local
 *   appends that left one head, so the heads are then the last key and the
 *   own seq is the last node's.
 * - The writer index is sparse: a writer's seqs stored at consecutive change
 *   numbers form a run, and only the first seq of each run is indexed; seq s
 *   of a run starting at (seq0, change0) is at change0 + (s - seq0). Local
 *   appends continue one run across batches.
 */
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { readUint64BE, writeUint64BE } from '../bytes/bytes.js'
import { KEY_BYTES, WRITER_BYTES } from '../codec/node.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { numberedKey, P_CHUNK } from './chunk.js'

export { numberedKey, P_CHUNK }

export const SUBLEVEL = 'hyperemitter'
// Format 1 stored a record per node; format 2 packs chunks.
export const FORMAT_VERSION = 3

export const P_KEYS = 0x6b // 'k'
export const P_WRITER = 0x77 // 'w'
export const P_CLOCK = 0x6c // 'l'
export const HEADS_KEY = Uint8Array.of(0x68) // 'h'
export const META_KEY = Uint8Array.of(0x6d) // 'm'
export const KEYS_START = Uint8Array.of(P_KEYS)
export const KEYS_END = Uint8Array.of(P_KEYS + 1)
export const CHUNKS_START = Uint8Array.of(P_CHUNK)
export const CHUNKS_END = Uint8Array.of(P_CHUNK + 1)
export const CLOCK_START = Uint8Array.of(P_CLOCK)
export const CLOCK_END = Uint8Array.of(P_CLOCK + 1)
// Keys gathered in memory before a k record holds them (32 KiB).
export const KEY_CHECKPOINT = 1024

export type Sub = AbstractSublevel<AbstractLevel<any, any, any>, any, Uint8Array, Uint8Array>
export type PutOp = { type: 'put'; sublevel: Sub; key: Uint8Array; value: Uint8Array }

/** The sublevel all of the log's records live in. */
export function openSublevel(db: AbstractLevel<any, any, any>): Sub {
  return db.sublevel<Uint8Array, Uint8Array>(SUBLEVEL, { keyEncoding: 'view', valueEncoding: 'view' }) as Sub
}

/** w record key: the writer-index run of `writer` starting at `seq`. */
export function writerIndexKey(writer: Uint8Array, seq: number): Uint8Array {
  const k = new Uint8Array(1 + WRITER_BYTES + 8)
  k[0] = P_WRITER
  k.set(writer, 1)
  writeUint64BE(k, 1 + WRITER_BYTES, seq)
  return k
}

/** The seq a w record key names. */
export function writerIndexSeq(key: Uint8Array): number {
  return readUint64BE(key, 1 + WRITER_BYTES)
}

/** l record key: another writer's highest seq held. */
export function clockKey(writer: Uint8Array): Uint8Array {
  const k = new Uint8Array(1 + WRITER_BYTES)
  k[0] = P_CLOCK
  k.set(writer, 1)
  return k
}

/** l record value: `seq` and the key of the writer's node at it. */
export function clockRecord(seq: number, tip: Uint8Array): Uint8Array {
  const v = new Uint8Array(8 + KEY_BYTES)
  writeUint64BE(v, 0, seq)
  v.set(tip, 8)
  return v
}

/** The m record of a new log: the format version and a fresh random writer id. */
export function newMetaRecord(writer: Uint8Array): Uint8Array {
  const meta = new Uint8Array(1 + WRITER_BYTES)
  meta[0] = FORMAT_VERSION
  meta.set(writer, 1)
  return meta
}

/** The writer id an m record holds; throws STORAGE_FAILED for another format. */
export function metaWriter(meta: Uint8Array): Uint8Array {
  if (meta.length !== 1 + WRITER_BYTES || meta[0] !== FORMAT_VERSION) {
    throw new HyperEmitterError(
      ErrorCodes.STORAGE_FAILED,
      `This db holds a hyperemitter log in storage format ${meta[0]}; this version reads format ${FORMAT_VERSION} only`,
      { details: { version: meta[0], expected: FORMAT_VERSION } },
    )
  }
  return meta.slice(1)
}

export interface HeadsRecord {
  /** The change this record was written at; later changes are all local appends. */
  change: number
  ownSeq: number
  heads: Uint8Array[]
}

export function encodeHeadsRecord(change: number, ownSeq: number, heads: Uint8Array[]): Uint8Array {
  const record = new Uint8Array(16 + heads.length * KEY_BYTES)
  writeUint64BE(record, 0, change)
  writeUint64BE(record, 8, ownSeq)
  for (let i = 0; i < heads.length; i++) record.set(heads[i], 16 + i * KEY_BYTES)
  return record
}

export function decodeHeadsRecord(record: Uint8Array): HeadsRecord {
  const heads: Uint8Array[] = []
  for (let i = 16; i + KEY_BYTES <= record.length; i += KEY_BYTES) heads.push(record.slice(i, i + KEY_BYTES))
  return { change: readUint64BE(record, 0), ownSeq: readUint64BE(record, 8), heads }
}

export function storageFailed(message: string, cause: unknown): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, message, { cause })
}
