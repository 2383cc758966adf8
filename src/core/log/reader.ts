/**
 * read(): entries in change order, paged from the db, then (live) taken
 * straight from the write path, with a bounded buffer for slow consumers.
 */
import type { LogEntry } from '../types.js'
import type { LiveReader } from './listeners.js'
import { READ_PAGE } from './store.js'

/** See ChunkCursor. */
export interface PageCursor {
  read(last: number, max: number): Promise<LogEntry[]>
  close(): Promise<void>
}

/** What a reader needs of the log; keeps the log's internals private. */
export interface ReaderSource {
  readonly liveBuffer: number
  ready(): Promise<void>
  /** Pages after change `after`; the reader closes it. */
  pages(after: number): PageCursor
  length(): number
  closed(): boolean
  subscribe(reader: LiveReader): void
  unsubscribe(reader: LiveReader): void
}

/**
 * The iterator behind read(): pages the change index from the db, then (live)
 * takes committed entries straight from the write path. Switching to live
 * happens synchronously once the db page came back short and the log's length
 * equals the last change read, so no entry is missed or seen twice.
 */
export class ChangeReader implements AsyncIterableIterator<LogEntry>, LiveReader {
  private cursor: number
  private remaining: number
  private buf: LogEntry[] = []
  private bi = 0
  private subscribed = false
  private liveBuf: LogEntry[] = []
  private liveCursor = 0
  private exhausted = false
  private finished = false
  private started = false
  private wake: (() => void) | null = null
  private tail: Promise<unknown> = Promise.resolve()
  private inFlight = 0
  private cursorPages: PageCursor | undefined

  constructor(
    private readonly src: ReaderSource,
    since: number,
    private readonly live: boolean,
    limit: number,
  ) {
    this.cursor = since
    this.remaining = limit
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<LogEntry> {
    return this
  }

  next(): Promise<IteratorResult<LogEntry>> {
    // Fast path: a buffered entry needs no promise chain.
    if (this.inFlight === 0 && this.started && !this.finished && this.bi < this.buf.length && this.remaining > 0) {
      this.remaining--
      return Promise.resolve({ value: this.buf[this.bi++], done: false })
    }
    this.inFlight++
    // Serialise overlapping next() calls so each gets the next entry.
    const p = this.tail.then(() => this.step())
    this.tail = p.then(
      () => {
        this.inFlight--
      },
      () => {
        this.inFlight--
      },
    )
    return p
  }

  return(): Promise<IteratorResult<LogEntry>> {
    this.finish()
    return Promise.resolve({ value: undefined, done: true })
  }

  /** Called by the log on commit while subscribed. */
  push(entries: LogEntry[]): void {
    for (const e of entries) {
      if (e.change > this.liveCursor) {
        this.liveBuf.push(e)
        this.liveCursor = e.change
      }
    }
    if (this.liveBuf.length > this.src.liveBuffer) {
      // Too far behind: forget the buffer and page from the db from `cursor`.
      this.liveBuf = []
      this.subscribed = false
      this.src.unsubscribe(this)
    }
    this.wakeUp()
  }

  wakeUp(): void {
    const w = this.wake
    this.wake = null
    if (w) w()
  }

  private finish(): IteratorResult<LogEntry> {
    this.finished = true
    this.buf = []
    this.liveBuf = []
    this.stopPaging()
    if (this.subscribed) {
      this.subscribed = false
      this.src.unsubscribe(this)
    }
    this.wakeUp()
    return { value: undefined, done: true }
  }

  private stopPaging(): void {
    const pages = this.cursorPages
    this.cursorPages = undefined
    // Never rejects.
    void pages?.close()
  }

  private async step(): Promise<IteratorResult<LogEntry>> {
    if (!this.started) {
      this.started = true
      if (!this.finished) {
        try {
          await this.src.ready()
        } catch (err) {
          this.finish()
          throw err
        }
      }
    }
    for (;;) {
      if (this.finished || this.remaining <= 0) return this.finish()
      if (this.bi < this.buf.length) {
        this.remaining--
        return { value: this.buf[this.bi++], done: false }
      }
      if (this.liveBuf.length > 0) {
        this.buf = this.liveBuf
        this.bi = 0
        this.liveBuf = []
        this.cursor = this.buf[this.buf.length - 1].change
        continue
      }
      // After close, what is already in memory is still delivered, but no
      // new db read starts: the caller may close the db right after the log.
      if (this.exhausted || this.src.closed()) return this.finish()
      if (this.subscribed) {
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        continue
      }
      const want = Math.min(READ_PAGE, this.remaining)
      let page: LogEntry[]
      try {
        this.cursorPages ??= this.src.pages(this.cursor)
        page = await this.cursorPages.read(this.src.length(), want)
      } catch (err) {
        // return() closed the cursor under the read.
        if (this.finished) return { value: undefined, done: true }
        this.finish()
        throw err
      }
      if (this.finished) return { value: undefined, done: true }
      if (page.length > 0) {
        this.buf = page
        this.bi = 0
        this.cursor = page[page.length - 1].change
      }
      if (page.length < want) {
        if (!this.live) {
          this.exhausted = true
          this.stopPaging()
        } else if (this.src.length() <= this.cursor && !this.src.closed()) {
          // Synchronous with the length check: every later commit has a
          // higher change number and will be pushed to us. `<=` because
          // `since` may lie beyond the end; re-reading the db then would spin.
          this.subscribed = true
          this.liveCursor = this.cursor
          this.src.subscribe(this)
          this.stopPaging()
        }
      }
    }
  }
}
