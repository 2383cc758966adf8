/**
 * Reading the log's records back: the chunk holding a change, pages of
 * entries in change order, and paged scans of a record kind. Keeps the
 * chunk read last, since readers page in steps smaller than a chunk.
 */
import { readUint64BE } from '../bytes/bytes.js'
import { HyperEmitterError } from '../errors.js'
import type { LogEntry } from '../types.js'
import { Chunk } from './chunk.js'
import { CHUNKS_END, CHUNKS_START, numberedKey, P_CHUNK, storageFailed, type Sub } from './format.js'

/** Chunk records asked of the db per step when paging. */
export const READ_PAGE = 512
// Records read per step by eachRecord() (at open).
const LOAD_PAGE = 256

export class ChunkStore {
  /** Chunks change only when a fork is healed (forget()), so the last one read stays valid. */
  private lastRead: Chunk | undefined

  constructor(readonly sub: Sub) {}

  /** The chunk holding `change`. Rejects STORAGE_FAILED (`failure` says doing what) when the db fails or lacks it. */
  async chunkAt(change: number, failure: string): Promise<Chunk> {
    if (this.lastRead?.has(change)) return this.lastRead
    let chunk: Chunk | undefined
    try {
      const rows = await this.sub.iterator({ gte: CHUNKS_START, lte: numberedKey(P_CHUNK, change), reverse: true, limit: 1 }).all()
      if (rows.length > 0) chunk = new Chunk(readUint64BE(rows[0][0], 1), rows[0][1])
    } catch (err) {
      throw err instanceof HyperEmitterError ? err : storageFailed(failure, err)
    }
    if (chunk === undefined || !chunk.has(change)) throw storageFailed(`${failure}: change ${change} is missing`, undefined)
    this.lastRead = chunk
    return chunk
  }

  /** Forgets the chunk read last: the chunks were rewritten (see rechain.ts). */
  forget(): void {
    this.lastRead = undefined
  }

  /** The number of the last change stored (0 for an empty log), read off the last chunk's key. */
  async lastChange(): Promise<number> {
    const rows = await this.sub.iterator({ gte: CHUNKS_START, lt: CHUNKS_END, reverse: true, limit: 1 }).all()
    return rows.length === 0 ? 0 : new Chunk(readUint64BE(rows[0][0], 1), rows[0][1]).last
  }

    /** The entries of changes after + 1 .. last, in change order. */
  async readPage(after: number, last: number): Promise<LogEntry[]> {
    const out: LogEntry[] = []
    if (after >= last) return out
    const failure = 'Could not read the change index'
    // The chunk holding after + 1, then the chunks after it: they are
    // contiguous, so their key records come in order from one iterator.
    const head = await this.chunkAt(after + 1, failure)
    for (let c = after + 1; c <= Math.min(head.last, last); c++) out.push(head.entry(c))
    if (head.last >= last) return out
    const it = this.sub.iterator({ gt: numberedKey(P_CHUNK, head.first), lt: CHUNKS_END })
    try {
      let next = head.last + 1
      // Nodes per chunk, guessed from the chunk read last: a page asks for
      // about as many chunks as it needs, never hundreds of whole chunks for
      // a few nodes (browser-level's getAll() returns every record asked for).
      let perChunk = head.last - head.first + 1
      while (next <= last) {
        // nextv() may return fewer than asked (classic-level caps by bytes),
        // so only an empty answer means the end.
        const rows = await it.nextv(Math.min(READ_PAGE, Math.ceil((last - next + 1) / perChunk)))
        if (rows.length === 0) break
        for (let i = 0; i < rows.length && next <= last; i++) {
          const chunk = new Chunk(readUint64BE(rows[i][0], 1), rows[i][1])
          if (chunk.first !== next) throw storageFailed(`${failure}: change ${next} is missing`, undefined)
          this.lastRead = chunk
          perChunk = chunk.last - chunk.first + 1
          for (; next <= Math.min(chunk.last, last); next++) out.push(chunk.entry(next))
        }
      }
      return out
    } catch (err) {
      throw err instanceof HyperEmitterError ? err : storageFailed(failure, err)
    } finally {
      await it.close().catch(() => {})
    }
  }
}

/** Calls `fn` for each record in [gte, lt), paged. */
export async function eachRecord(sub: Sub, gte: Uint8Array, lt: Uint8Array, fn: (key: Uint8Array, value: Uint8Array) => void): Promise<void> {
  const it = sub.iterator({ gte, lt })
  try {
    for (;;) {
      const rows = await it.nextv(LOAD_PAGE)
      if (rows.length === 0) break
      for (const [k, v] of rows) fn(k, v)
    }
  } finally {
    await it.close()
  }
}
