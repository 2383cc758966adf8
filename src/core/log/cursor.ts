/**
 * Reading the log in change order from one point on: what read() pages
 * through, one db iterator for all its pages.
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
/** An iterator left unread this long is closed (it pins LevelDB's files); the next read opens another. */
const IDLE_MS = 5000

/**
 * Entries from a change on, a page at a time, through one iterator:
 * classic-level frees an iterator's last rows only once V8 collects it, so
 * one per page held a chunk each. An iterator sees the db as it was when
 * opened; one that runs dry before the log's end is replaced.
 */
export class ChunkCursor {
  private it: AbstractIterator<any, Uint8Array, Uint8Array> | undefined
  private chunk: Chunk | undefined
  private rows: Rows = []
  private at = 0
  private closed = false
  private idle: ReturnType<typeof setTimeout> | undefined

  /** `next` is the first change to read. */
  constructor(
    private readonly store: ChunkStore,
    private next: number,
    private readonly idleMs = IDLE_MS,
  ) {}

  /** Entries from the cursor on, up to change `last`, at most `max`. Rejects STORAGE_FAILED. */
  async read(last: number, max: number): Promise<LogEntry[]> {
    const out: LogEntry[] = []
    const end = Math.min(last, this.next + max - 1)
    clearTimeout(this.idle)
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
    if (this.it !== undefined && !this.closed) {
      this.idle = setTimeout(() => void this.release(), this.idleMs)
      ;(this.idle as { unref?: () => void }).unref?.()
    }
    return out
  }

  /** Ends the iterator; the cursor reads nothing after. */
  async close(): Promise<void> {
    this.closed = true
    await this.release()
  }

  /** Closes the iterator, not the cursor. */
  private async release(): Promise<void> {
    clearTimeout(this.idle)
    this.rows = []
    this.at = 0
    const it = this.it
    this.it = undefined
    await it?.close().catch(() => {})
  }

  /** The chunk holding `next`: the iterator's next, or looked up at first. */
  private async chunkFor(end: number): Promise<Chunk> {
    const before = this.chunk
    if (before === undefined || before.last + 1 !== this.next) return this.restart()
    let row = await this.nextRow(before, end)
    if (row === undefined) {
      // Commits came after the iterator opened.
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

  /** The next chunk record, reading about as many as the changes up to `end` need. */
  private async nextRow(previous: Chunk, end: number): Promise<[Uint8Array, Uint8Array] | undefined> {
    if (this.at >= this.rows.length) {
      if (this.it === undefined) return undefined
      // browser-level's getAll() returns all asked for: guess from the chunk before.
      const perChunk = previous.last - previous.first + 1
      this.rows = await this.it.nextv(Math.min(READ_PAGE, Math.ceil((end - this.next + 1) / perChunk)))
      this.at = 0
      if (this.rows.length === 0) return undefined
    }
    return this.rows[this.at++]
  }
}
