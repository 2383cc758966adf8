/**
 * What a peer lacks: the entries beyond its clock, in local change order,
 * a page at a time. Few missing: walk each writer's sparse index from the
 * peer's seq and merge by change number; most missing: one scan of the chunks.
 */
import { equalBytes, fromHex, readUint64BE, toHex } from '../bytes/bytes.js'
import { HyperEmitterError } from '../errors.js'
import type { Clock, LogEntry } from '../types.js'
import { Chunk } from './chunk.js'
import { CHUNKS_END, CHUNKS_START, storageFailed, type Sub, writerIndexKey, writerIndexSeq } from './format.js'
import type { LogState } from './state.js'
import { type ChunkStore, READ_PAGE } from './store.js'

/** Entries per page, and writer-index seqs loaded per step. */
const MISSING_PAGE = 1000

/**
 * The entries a peer holding `remote` lacks (seq > remote[writer], 0 when
 * absent), as of the call, up to MISSING_PAGE a page. Stops early once
 * `isOpen()` turns false. Iteration rejects STORAGE_FAILED.
 */
export async function* missingPages(state: LogState, store: ChunkStore, remote: Clock, isOpen: () => boolean): AsyncGenerator<LogEntry[], void, undefined> {
  const length = state.changes
  const remoteSeq = (hex: string): number => {
    const r = remote.get(hex)
    return typeof r === 'number' && r > 0 ? Math.floor(r) : 0
  }
  const cursors: WriterCursor[] = []
  let missing = 0
  for (const [hex, seq] of state.clock) {
    const from = remoteSeq(hex)
    if (seq > from) {
      cursors.push(new WriterCursor(store.sub, fromHex(hex)!, from, seq))
      missing += seq - from
    }
  }
  if (missing === 0) return

  if (missing * 2 >= length) {
    // Most of the log is missing: one sequential scan of the chunks beats
    // index lookups, and costs at most twice the missing count.
    yield* scanMissing(store.sub, length, missing, remoteSeq, isOpen)
    return
  }

  const heap = new CursorHeap()
  for (const c of cursors) {
    await c.fill()
    if (c.current() !== undefined) heap.push(c)
  }
  while (heap.size() > 0 && isOpen()) {
    const changes: number[] = []
    while (changes.length < MISSING_PAGE && heap.size() > 0) {
      const c = heap.peek()
      changes.push(c.current()!)
      c.advance()
      if (c.current() === undefined) await c.fill()
      if (c.current() === undefined) heap.pop()
      else heap.fix()
    }
    let chunk: Chunk | undefined
    const lacking: LogEntry[] = []
    for (const change of changes) {
      if (chunk === undefined || !chunk.has(change)) chunk = await store.chunkAt(change, 'Could not read nodes from the db')
      lacking.push(chunk.entry(change))
    }
    yield lacking
  }
}

/**
 * missingPages() by one pass over the chunks up to change `length`, through
 * one iterator that reads the next rows while the caller handles the page
 * before, so the db is never idle while a page is sent.
 */
async function* scanMissing(
  sub: Sub,
  length: number,
  missing: number,
  remoteSeq: (hex: string) => number,
  isOpen: () => boolean,
): AsyncGenerator<LogEntry[], void, undefined> {
  const failure = 'Could not read the change index'
  const it = sub.iterator({ gte: CHUNKS_START, lt: CHUNKS_END })
  // About a page of nodes' worth of chunks a step, guessed from the last
  // chunk (one to start with): browser-level's getAll() returns every record
  // asked for, and 512 chunks of a thousand nodes would be tens of MB at once.
  let perChunk = MISSING_PAGE
  const readRows = () => {
    const rows = it.nextv(Math.min(READ_PAGE, Math.ceil(MISSING_PAGE / perChunk)))
    // Awaited below or in `finally`; never left to reject unhandled.
    rows.catch(() => {})
    return rows
  }
  let ahead: Promise<Array<[Uint8Array, Uint8Array]>> | undefined = readRows()
  try {
    let next = 1
    let sent = 0
    let lastWriter: Uint8Array = new Uint8Array(0)
    let lastKnown = 0
    let lacking: LogEntry[] = []
    while (next <= length && sent < missing && isOpen()) {
      const rows: Array<[Uint8Array, Uint8Array]> = await ahead!
      ahead = undefined
      if (rows.length === 0) throw storageFailed(`${failure}: change ${next} is missing`, undefined)
      const chunks = rows.map(([k, v]) => new Chunk(readUint64BE(k, 1), v))
      const tail = chunks[chunks.length - 1]
      perChunk = tail.last - tail.first + 1
      if (tail.last < length) ahead = readRows()
      for (const chunk of chunks) {
        if (chunk.first !== next) throw storageFailed(`${failure}: change ${next} is missing`, undefined)
        for (const last = Math.min(chunk.last, length); next <= last; next++) {
          const e = chunk.entry(next)
          if (!equalBytes(e.writer, lastWriter)) {
            lastWriter = e.writer
            lastKnown = remoteSeq(toHex(e.writer))
          }
          if (e.seq <= lastKnown) continue
          sent++
          lacking.push(e)
          if (lacking.length === MISSING_PAGE) {
            yield lacking
            lacking = []
          }
        }
        if (next > length) break
      }
    }
    if (lacking.length > 0) yield lacking
  } catch (err) {
    throw err instanceof HyperEmitterError ? err : storageFailed(failure, err)
  } finally {
    await ahead?.catch(() => {})
    await it.close().catch(() => {})
  }
}

/** One writer's missing range in the writer index, paged. */
/** The change holding `writer`'s node at `seq` (which the log must hold: seq <= its clock), or undefined if no run holds it. Rejects STORAGE_FAILED. */
export async function changeOfSeq(sub: Sub, writer: Uint8Array, seq: number): Promise<number | undefined> {
  try {
    const rows = await sub.iterator({ gte: writerIndexKey(writer, 0), lte: writerIndexKey(writer, seq), reverse: true, limit: 1 }).all()
    if (rows.length === 0) return undefined
    return readUint64BE(rows[0][1], 0) + (seq - writerIndexSeq(rows[0][0]))
  } catch (err) {
    throw storageFailed('Could not read the writer index', err)
  }
}

class WriterCursor {
  private changes: number[] = []
  private index = 0
  constructor(
    private readonly sub: Sub,
    private readonly writer: Uint8Array,
    private after: number,
    private readonly to: number,
  ) {}

  current(): number | undefined {
    return this.index < this.changes.length ? this.changes[this.index] : undefined
  }

  advance(): void {
    this.index++
  }

  /** Loads the next page once the current one is used up. */
  async fill(): Promise<void> {
    if (this.index < this.changes.length || this.after >= this.to) return
    const first = this.after + 1
    const last = Math.min(this.to, this.after + MISSING_PAGE)
    // Runs covering first..last: the one holding `first` (greatest indexed
    // seq <= first), then every run that starts after it up to `last`.
    const runs: Array<[seq: number, change: number]> = []
    try {
      const back = this.sub.iterator({ gte: writerIndexKey(this.writer, 0), lte: writerIndexKey(this.writer, first), reverse: true, limit: 1 })
      const head = await back.all()
      if (head.length === 0) throw new Error(`no run holds seq ${first}`)
      const later = await this.sub.iterator({ gt: writerIndexKey(this.writer, first), lte: writerIndexKey(this.writer, last) }).all()
      for (const [k, v] of [...head, ...later]) runs.push([writerIndexSeq(k), readUint64BE(v, 0)])
    } catch (err) {
      throw storageFailed('Could not read the writer index', err)
    }
    const changes: number[] = []
    let r = 0
    for (let seq = first; seq <= last; seq++) {
      while (r + 1 < runs.length && runs[r + 1][0] <= seq) r++
      changes.push(runs[r][1] + (seq - runs[r][0]))
    }
    this.changes = changes
    this.index = 0
    this.after = last
  }
}

/** Min-heap of cursors by their current change number. */
class CursorHeap {
  private items: WriterCursor[] = []
  size(): number {
    return this.items.length
  }
  peek(): WriterCursor {
    return this.items[0]
  }
  push(c: WriterCursor): void {
    this.items.push(c)
    let i = this.items.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (this.items[p].current()! <= this.items[i].current()!) break
      ;[this.items[p], this.items[i]] = [this.items[i], this.items[p]]
      i = p
    }
  }
  pop(): void {
    const last = this.items.pop()!
    if (this.items.length > 0) {
      this.items[0] = last
      this.fix()
    }
  }
  /** Restores order after the top's current() grew. */
  fix(): void {
    const items = this.items
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < items.length && items[l].current()! < items[m].current()!) m = l
      if (r < items.length && items[r].current()! < items[m].current()!) m = r
      if (m === i) return
      ;[items[m], items[i]] = [items[i], items[m]]
      i = m
    }
  }
}

