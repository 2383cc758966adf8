/**
 * Reading the log's records back: the chunk holding a change, the last
 * change, and paged scans of a record kind (cursor.ts pages in change order).
 * Keeps the chunk read last, since lookups often land in it again.
 */
import { readUint64BE } from '../bytes/bytes.js'
import { HyperEmitterError } from '../errors.js'
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
