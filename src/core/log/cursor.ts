/**
 * Reading the log in change order from one point on, through one db
 * iterator kept open across pages: what read() pages through.
 */
import type { AbstractIterator } from 'abstract-level'
import { readUint64BE } from '../bytes/bytes.js'
import { HyperEmitterError } from '../errors.js'
import type { LogEntry } from '../types.js'
import { Chunk } from './chunk.js'
import { CHUNKS_END, numberedKey, P_CHUNK, storageFailed } from './format.js'
import { type ChunkStore, READ_PAGE } from './store.js'

const FAILURE = 'Could not read the change index'

type Rows = Array<[Uint8Array, Uint8Array]>

/**
 * Entries from a change on, a page at a time. One iterator for the whole
 * read, not one per page: classic-level frees an iterator's last rows only
 * when V8 collects it, so an iterator per page held a chunk each (hundreds
 * of MB on a 1M-event log), and each new one seeked LevelDB again.
 * The iterator sees the db as it was when opened; when it runs dry before
 * the log's end, a new one picks up from where it stopped.
 */
export class ChunkCursor {
  private it: AbstractIterator<any, Uint8Array, Uint8Array> | undefined
  private chunk: Chunk | undefined
  private rows: Rows = []
  private at = 0
  private closed = false

  /** `next` is the first change to read. */
  constructor(
    private readonly store: ChunkStore,
    private next: number,
  ) {}

  /**
   * The entries of changes from the cursor on, up to `last` (committed) and
   * at most `max` of them. Rejects STORAGE_FAILED when the db fails or lacks
   * one, CLOSED-like errors of the db once closed.
   */
  async read(last: number, max: number): Promise<LogEntry[]> {
    const out: LogEntry[] = []
    const end = Math.min(last, this.next + max - 1)
    try {
      while (this.next <= end && !this.closed) {
        let chunk = this.chunk
        if (chunk === undefined || !chunk.has(this.next)) chunk = this.chunk = await this.chunkFor(end)
        for (const stop = Math.min(chunk.last, end); this.next <= stop; this.next++) out.push(chunk.entry(this.next))
      }
    } catch (err) {
      await this.close()
      throw err instanceof HyperEmitterError ? err : storageFailed(FAILURE, err)
    }
    return out
  }

  /** Ends the iterator; the cursor reads nothing after. */
  async close(): Promise<void> {
    this.closed = true
    this.rows = []
    const it = this.it
    this.it = undefined
    await it?.close().catch(() => {})
  }

  /** The chunk holding `next`: the next one of the iterator, or (first, or after the iterator ran dry) found by lookup. */
  private async chunkFor(end: number): Promise<Chunk> {
    const before = this.chunk
    if (before === undefined || before.last + 1 !== this.next) return this.restart()
    let row = await this.nextRow(before, end)
    if (row === undefined) {
      // The iterator's view ended before the log did: commits came after it opened.
      await this.reopen(before.first)
      row = await this.nextRow(before, end)
    }
    if (row === undefined) throw storageFailed(`${FAILURE}: change ${this.next} is missing`, undefined)
    const chunk = new Chunk(readUint64BE(row[0], 1), row[1])
    if (chunk.first !== this.next) throw storageFailed(`${FAILURE}: change ${this.next} is missing`, undefined)
    return chunk
  }

  /** Looks up the chunk holding `next` and opens the iterator after it. */
  private async restart(): Promise<Chunk> {
    const chunk = await this.store.chunkAt(this.next, FAILURE)
    await this.reopen(chunk.first)
    return chunk
  }

  private async reopen(after: number): Promise<void> {
    const old = this.it
    this.it = undefined
    this.rows = []
    this.at = 0
    await old?.close()
    if (this.closed) return
    this.it = this.store.sub.iterator({ gt: numberedKey(P_CHUNK, after), lt: CHUNKS_END })
  }

  /** The next chunk record, reading about as many as the changes up to `end` need (see ChunkStore). */
  private async nextRow(previous: Chunk, end: number): Promise<[Uint8Array, Uint8Array] | undefined> {
    if (this.at >= this.rows.length) {
      if (this.it === undefined) return undefined
      // Nodes per chunk guessed from the one before: browser-level's getAll()
      // returns every record asked for, so ask only for what the page needs.
      const perChunk = previous.last - previous.first + 1
      this.rows = await this.it.nextv(Math.min(READ_PAGE, Math.ceil((end - this.next + 1) / perChunk)))
      this.at = 0
      if (this.rows.length === 0) return undefined
    }
    return this.rows[this.at++]
  }
}
