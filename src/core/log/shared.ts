/**
 * Several Logs on one db (browser tabs on one IndexedDB log: see
 * LogOptions.lock): loading what the others committed, as if this log
 * had committed it. Chunks are only ever added, each batch's atomically, so
 * the chunks after this log's last change are exactly what it lacks.
 */
import { equalBytes, readUint64BE, toHex } from '../bytes/bytes.js'
import { KEY_BYTES } from '../codec/node.js'
import type { LogEntry } from '../types.js'
import { mergeHeads } from './batch.js'
import { Chunk } from './chunk.js'
import { CHUNKS_END, KEYS_END, numberedKey, P_CHUNK, P_KEYS, storageFailed } from './format.js'
import type { ChangeListeners } from './listeners.js'
import type { LogState } from './state.js'
import { type ChunkStore, eachRecord } from './store.js'

/** Runs `fn` holding the lock in `mode`: 'exclusive' while nobody else holds it, 'shared' while nobody holds it 'exclusive'. */
export type DbLock = <T>(mode: 'exclusive' | 'shared', fn: () => Promise<T>) => Promise<T>

/** The origin listeners get for entries another Log on the same db committed. */
export const COMMITTED_ELSEWHERE: unique symbol = Symbol('committed elsewhere')

/** Moves `state` over the chunks and key checkpoints others committed; tells `listeners`, a chunk at a time. Rejects STORAGE_FAILED. */
export async function loadCommittedElsewhere(state: LogState, store: ChunkStore, listeners: ChangeListeners): Promise<void> {
  const indexedBefore = state.changes - state.unindexed.count
  let writer: Uint8Array = new Uint8Array(0)
  let writerHex = ''
  const writers = new Map<string, Uint8Array>()
  await eachRecord(store.sub, numberedKey(P_CHUNK, state.changes + 1), CHUNKS_END, (k, record) => {
    const chunk = new Chunk(readUint64BE(k, 1), record)
    if (chunk.first !== state.changes + 1) throw storageFailed(`The chunk at change ${chunk.first} does not follow change ${state.changes}`, undefined)
    const entries: LogEntry[] = []
    let heads = state.heads
    for (let c = chunk.first; c <= chunk.last; c++) {
      const e = chunk.entry(c)
      if (!equalBytes(e.writer, writer)) {
        writer = e.writer
        writerHex = toHex(writer)
        writers.set(writerHex, writer)
      }
      state.clock.set(writerHex, e.seq)
      state.tips.set(writerHex, e.key.slice())
      heads = mergeHeads(heads, e.links, e.key.slice())
      state.index.add(e.key, c)
      state.recent.add(e.key, c)
      state.unindexed.keep(e.key)
      state.lastWriter = e.writer
      state.lastSeq = e.seq
      entries.push(e)
    }
    state.heads = heads
    state.changes = chunk.last
    listeners.emit(entries, new Array(entries.length).fill(COMMITTED_ELSEWHERE))
  })
  // Key checkpoints the others wrote hold some of the keys kept above; one
  // written since the chunks were read covers changes not loaded yet, and
  // waits for the next load.
  let indexed = indexedBefore
  let beyond = false
  await eachRecord(store.sub, numberedKey(P_KEYS, indexed + 1), KEYS_END, (k, keys) => {
    const first = readUint64BE(k, 1)
    if (beyond) return
    if (first !== indexed + 1 || keys.length % KEY_BYTES !== 0) throw storageFailed(`The key index record at change ${first} is corrupt`, undefined)
    const end = indexed + keys.length / KEY_BYTES
    if (end > state.changes) beyond = true
    else indexed = end
  })
  state.unindexed.drop(indexed - indexedBefore)
  // The keys of writers the others first stored, to check those writers' next nodes.
  await state.writerKeys.loadMissing(store.sub, writers.values())
}
