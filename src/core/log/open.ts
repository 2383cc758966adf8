/**
 * Opening a log: reads the writer id, the clock, the key index and the heads
 * back from the db into a LogState. Everything else is derived (format.ts).
 */
import type { AbstractLevel } from 'abstract-level'
import { equalBytes, readUint64BE, toHex, view } from '../bytes/bytes.js'
import { KEY_BYTES } from '../codec/node.js'
import { HyperEmitterError } from '../errors.js'
import type { Clock, HashFn } from '../types.js'
import type { Ed25519 } from '../identity/ed25519.js'
import { loadIdentity } from '../identity/stored-key.js'
import { Chunk } from './chunk.js'
import {
  CHUNKS_END,
  CLOCK_END,
  CLOCK_START,
  decodeHeadsRecord,
  HEADS_KEY,
  KEYS_END,
  KEYS_START,
  META_KEY,
  metaWriter,
  newMetaRecord,
  numberedKey,
  P_CHUNK,
  storageFailed,
} from './format.js'
import type { LogState } from './state.js'
import { type ChunkStore, eachRecord } from './store.js'
import { changeOfSeq } from './missing.js'

/** How the log's key is found or made (see identity/stored-key.ts). */
export interface KeyOptions {
  ed25519: Ed25519
  hash: HashFn
  secretKey: Uint8Array | undefined
}

/**
 * Opens `db` and loads the log it holds (a new one if none) into `state`.
 * Rejects STORAGE_FAILED, or INVALID_ARGUMENT for a secretKey that is not the db's.
 */
export async function loadLog(db: AbstractLevel<any, any, any>, store: ChunkStore, state: LogState, keys: KeyOptions): Promise<void> {
  try {
    await db.open()
    const sub = store.sub
    let meta = await sub.get(META_KEY)
    // The format first: nothing is written into a db of another format.
    if (meta !== undefined) metaWriter(meta)
    const identity = await loadIdentity(sub, keys.ed25519, keys.hash, keys.secretKey)
    if (meta === undefined) {
      meta = newMetaRecord(identity.writer)
      await sub.put(META_KEY, meta)
    }
    const writer = metaWriter(meta)
    if (!equalBytes(writer, identity.writer)) throw storageFailed("The log's writer id is not bound to its key", undefined)
    state.identity = identity
    await state.writerKeys.load(sub, toHex(identity.writer), identity.key)
    const writerHex = toHex(writer)

    const clock: Clock = new Map()
    const tips = new Map<string, Uint8Array>()
    // One entry per writer ever seen: paged so a db with many writers never
    // materialises twice in memory.
    await eachRecord(sub, CLOCK_START, CLOCK_END, (k, v) => {
      const hex = toHex(k.subarray(1))
      clock.set(hex, readUint64BE(v, 0))
      if (v.length >= 8 + KEY_BYTES) tips.set(hex, v.slice(8, 8 + KEY_BYTES))
    })

    // The key index: the checkpoints, then the chunks after the last one
    // (whose keys the next checkpoint will hold).
    const index = state.index
    index.clear()
    index.reserve(await store.lastChange())
    let indexed = 0
    await eachRecord(sub, KEYS_START, KEYS_END, (k, keys) => {
      const first = readUint64BE(k, 1)
      if (first !== indexed + 1 || keys.length % KEY_BYTES !== 0) throw storageFailed(`The key index record at change ${first} is corrupt`, undefined)
      // Keys read in place: a view per key was a million objects for the GC on a 1M-event log.
      for (let i = 0; i * KEY_BYTES < keys.length; i++) index.add(keys, first + i, i * KEY_BYTES)
      indexed += keys.length / KEY_BYTES
    })
    let changes = indexed
    let last: Chunk | undefined
    state.unindexed.clear()
    await eachRecord(sub, numberedKey(P_CHUNK, indexed + 1), CHUNKS_END, (k, record) => {
      last = new Chunk(readUint64BE(k, 1), record)
      if (last.first !== changes + 1) throw storageFailed(`The chunk at change ${last.first} does not follow change ${changes}`, undefined)
      for (let c = last.first; c <= last.last; c++) {
        index.add(last.key(c), c)
        state.unindexed.keep(last.key(c))
      }
      changes = last.last
    })

    const record = await sub.get(HEADS_KEY)
    const saved = record === undefined ? { change: 0, ownSeq: 0, heads: [] } : decodeHeadsRecord(record)
    let ownSeq = saved.ownSeq
    let heads = saved.heads
    if (changes > saved.change) {
      // Only local appends came after: the last one is the one head.
      last ??= await store.chunkAt(changes, 'Could not read the last chunk')
      const entry = last.entry(changes)
      if (!equalBytes(entry.writer, writer)) throw storageFailed(`The node at change ${changes} should be this log's own`, undefined)
      ownSeq = entry.seq
      heads = [entry.key.slice()]
      tips.set(writerHex, entry.key.slice())
    }
    if (ownSeq > 0) {
      clock.set(writerHex, ownSeq)
      if (!tips.has(writerHex)) {
        const change = await changeOfSeq(sub, writer, ownSeq)
        if (change !== undefined) tips.set(writerHex, (await store.chunkAt(change, 'Could not read our last node')).key(change).slice())
      }
    }

    state.writer = writer
    state.writerHex = writerHex
    state.changes = changes
    state.heads = heads
    state.clock = clock
    state.tips = tips
    state.lastWriter = undefined
    state.recent.reset(changes)
  } catch (err) {
    if (err instanceof HyperEmitterError) throw err
    throw storageFailed('Could not open the log', err)
  }
}
