/**
 * The group commit: append/add only queue a request; one loop takes
 * everything queued (up to maxBatch nodes) into one db.batch(), then moves
 * the in-memory state, tells listeners and resolves the requests. Nothing in
 * memory changes until the batch is durable, so a failed batch leaves the log
 * exactly as it was. While a batch is written, the local appends behind it
 * are built into the next one (on its outcome, rebuilt if it fails).
 */
import type { AbstractLevel } from 'abstract-level'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { BatchBuilder, PendingBatch } from './batch.js'
import { storageFailed } from './format.js'
import type { ChangeListeners } from './listeners.js'
import { ADD, APPEND, type AppendRequest, type Incoming, type Request, rejectRequest, RUN, type RunRequest } from './requests.js'
import { type DbLock, loadCommittedElsewhere } from './shared.js'
import type { LogState } from './state.js'
import type { ChunkStore } from './store.js'
import { nextTurn } from './turn.js'
import type { Verifier } from './verify.js'

/**
 * How long the loop runs batch after batch before it lets the event loop
 * turn: a db that settles in microtasks (memory-level) would otherwise hold
 * the thread for a whole backlog, and sockets neither drain nor read.
 */
const SLICE_MS = 8

/**
 * How long a log sharing its db holds the write turn while its queue stays
 * full (a hub's catch-up), before it lets the other logs write theirs.
 */
const TURN_MS = 50

const now = (): number => performance.now()

export function closedError(): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.CLOSED, 'The log is closed')
}

/** Local appends built into a batch while the batch before them was written. */
interface BuiltAhead {
  taken: Request[]
  batch: PendingBatch
}

/** What the queue needs of the log that owns it. */
export interface CommitTarget {
  readonly db: AbstractLevel<any, any, any>
  readonly state: LogState
  readonly builder: BatchBuilder
  readonly verifier: Verifier
  readonly listeners: ChangeListeners
  readonly maxBatch: number
  readonly store: ChunkStore
  /** With other Logs on the db: writes happen only holding it exclusive (see LogOptions.lock). */
  readonly lock: DbLock | undefined
  /** Undefined once the log is loaded; else opens it (rejects CLOSED if it may not). */
  openForCommit(): Promise<void> | undefined
}

export class CommitQueue {
  private queue: Request[] = []
  private head = 0
  private pumping = false
  private idleWaiters: (() => void)[] = []
  /** Callers of refresh() waiting for the loop to load what other Logs on the db committed. */
  private refreshWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = []
  private readonly runLoop = (): void => {
    void this.run()
  }

  constructor(private readonly log: CommitTarget) {}

  push(request: Request): void {
    this.queue.push(request)
    this.pump()
  }

  /** Loads what other Logs on the db committed, between batches (see Log.refresh()). */
  refresh(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.refreshWaiters.push({ resolve, reject })
      this.pump()
    })
  }

  /** Resolves once everything queued so far is committed or refused. */
  idle(): Promise<void> {
    if (!this.pumping && this.head >= this.queue.length) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private pump(): void {
    if (this.pumping) return
    this.pumping = true
    queueMicrotask(this.runLoop)
  }

  private async run(): Promise<void> {
    try {
      // Closing after a successful open still drains the queue; only a log
      // that never loaded has to open (or refuse) first.
      const opening = this.log.openForCommit()
      if (opening !== undefined) {
        try {
          await opening
        } catch (err) {
          const queued = this.queue.slice(this.head)
          this.queue = []
          this.head = 0
          const closed = err instanceof HyperEmitterError && err.code === ErrorCodes.CLOSED
          for (const r of queued) rejectRequest(r, closed ? closedError() : storageFailed('Could not open the log', err))
          for (const w of this.refreshWaiters.splice(0)) w.reject(closed ? closedError() : storageFailed('Could not open the log', err))
          return
        }
      }
      if (this.log.lock === undefined) await this.drain()
      else await this.drainShared(this.log.lock)
    } finally {
      this.pumping = false
      if (this.head < this.queue.length || this.refreshWaiters.length > 0) {
        this.pump()
      } else {
        const waiters = this.idleWaiters
        this.idleWaiters = []
        for (const w of waiters) w()
      }
    }
  }

  /**
   * With other Logs on the db: write only holding `lock` exclusive, on top of
   * what they committed; without writes to make, just load that.
   */
  private async drainShared(lock: DbLock): Promise<void> {
    if (this.head >= this.queue.length) {
      // A failure went to the refresh() callers.
      await this.loadCommitted().catch(() => {})
      return
    }
    try {
      await lock('exclusive', async () => {
        await this.loadCommitted()
        await this.drain(now() + TURN_MS)
      })
    } catch (err) {
      // Nothing is written on top of a state this log could not load.
      const queued = this.queue.slice(this.head)
      this.queue = []
      this.head = 0
      for (const r of queued) rejectRequest(r, err instanceof HyperEmitterError ? err : storageFailed('Could not write a batch to the db', err))
    }
  }

  /** loadCommittedElsewhere(), settling the refresh() callers waiting for it. */
  private async loadCommitted(): Promise<void> {
    const waiters = this.refreshWaiters.splice(0)
    try {
      await loadCommittedElsewhere(this.log.state, this.log.store, this.log.listeners)
    } catch (err) {
      const failure = err instanceof HyperEmitterError ? err : storageFailed('Could not load what other Logs on the db committed', err)
      for (const w of waiters) w.reject(failure)
      throw failure
    }
    for (const w of waiters) w.resolve()
  }

  /** Commits batch after batch until the queue is empty (or, given `until`, that time has come: the rest waits). */
  private async drain(until = Infinity): Promise<void> {
    let sliceStart = now()
    let ahead: BuiltAhead | undefined
    while (ahead !== undefined || this.head < this.queue.length) {
      const taken = ahead?.taken ?? this.take(false)
      const built = ahead?.batch
      ahead = undefined
      if (taken.length === 1 && taken[0].kind === RUN) {
        await this.runAlone(taken[0])
        continue
      }
      try {
        ahead = await this.commit(taken, built)
      } catch (err) {
        // commit() handles its own failures; this is a bug guard so no
        // caller is left hanging.
        for (const r of taken) rejectRequest(r, storageFailed('Unexpected failure while committing', err))
      }
      const time = now()
      if (time >= until) {
        if (ahead !== undefined) this.putBack(ahead.taken)
        return
      }
      if (time - sliceStart >= SLICE_MS) {
        await nextTurn()
        sliceStart = now()
      }
    }
  }

  /**
   * The next requests, up to maxBatch nodes (an addMany larger than that
   * goes whole); with `appendsOnly`, only the local appends before the next
   * foreign request.
   */
  private take(appendsOnly: boolean): Request[] {
    const q = this.queue
    let i = this.head
    let n = 0
    while (i < q.length) {
      if (appendsOnly && q[i].kind !== APPEND) break
      // Work that runs alone is taken alone.
      if (q[i].kind === RUN) {
        if (i === this.head) i++
        break
      }
      const size = q[i].size
      if (n > 0 && n + size > this.log.maxBatch) break
      n += size
      i++
    }
    const taken = q.slice(this.head, i)
    if (i >= q.length) {
      this.queue = []
      this.head = 0
    } else if (i * 2 >= q.length) {
      // Drop the consumed prefix once it is half the array: amortised O(1),
      // and taken requests are not pinned while a steady stream of appends
      // keeps the queue from ever emptying.
      this.queue = q.slice(i)
      this.head = 0
    } else {
      this.head = i
    }
    return taken
  }

  /** Runs `req` with no batch before it still being written. */
  private async runAlone(req: RunRequest): Promise<void> {
    try {
      req.resolve(await req.run())
    } catch (err) {
      req.reject(err)
    }
  }

  /** Requests taken ahead of a batch that failed: first in the queue again. */
  private putBack(taken: Request[]): void {
    this.queue = taken.concat(this.queue.slice(this.head))
    this.head = 0
  }

  /**
   * Writes `taken` as one batch (`built`: already built by buildAhead()),
   * in small synchronous steps around the awaits, which V8 optimises where
   * one big async function would stay unoptimised.
   *
   * While the db writes, the local appends queued next are built on this
   * batch's outcome and returned, to be written once this batch is applied;
   * if this batch fails they go back to the queue.
   */
  private async commit(taken: Request[], built: PendingBatch | undefined): Promise<BuiltAhead | undefined> {
    const { builder, verifier } = this.log
    let batch = built
    if (batch === undefined) {
      batch = builder.start(taken, undefined)
      for (const req of taken) {
        if (req.kind === APPEND) {
          builder.appendValues(batch, req)
          continue
        }
        if (req.kind !== ADD) continue
        // A foreign request: verify it alone against the batch so far, and only
        // then merge it, so its failure costs nobody else anything.
        let accepted: Incoming[]
        try {
          accepted = await verifier.verify(req, batch)
        } catch (err) {
          req.failed = true
          req.reject(err)
          batch.chunks.skip(req.size)
          continue
        }
        req.result = builder.storeForeign(batch, req, accepted)
      }
    }

    let ahead: BuiltAhead | undefined
    if (batch.entries.length > 0) {
      const ops = builder.finish(batch)
      try {
        // Through `db` with `sublevel` on each op: one validation pass where
        // sub.batch() runs two, and no batch-wide options, which abstract-level
        // spreads into every op. The db has the ops once batch() returns.
        const written = this.log.db.batch(ops as any)
        ahead = this.buildAhead(batch)
        await written
      } catch (err) {
        if (ahead !== undefined) this.putBack(ahead.taken)
        for (const r of taken) {
          if (r.kind === ADD && r.failed) continue
          rejectRequest(r, storageFailed('Could not write a batch to the db; nothing of it was stored', err))
        }
        return undefined
      }
      this.apply(batch)
    }

    for (const r of taken) {
      if (r.kind === RUN) continue
      if (r.kind === APPEND) r.sink.appended(r.result!)
      else if (!r.failed) r.resolve(r.single ? (r.result![0] ?? null) : r.result!)
      // An old request's fields keep young objects alive until a full GC:
      // its result would pin the entry, and through it a whole chunk buffer.
      r.result = undefined
    }
    return ahead
  }

  /**
   * The local appends queued next, built on the end state of `before` (not
   * yet durable). Never throws: whatever fails here fails again, and is
   * reported, when the requests are built the usual way.
   */
  private buildAhead(before: PendingBatch): BuiltAhead | undefined {
    const taken = this.take(true)
    if (taken.length === 0) return undefined
    try {
      const { builder } = this.log
      const batch = builder.start(taken, before)
      for (const req of taken) builder.appendValues(batch, req as AppendRequest)
      return { taken, batch }
    } catch {
      this.putBack(taken)
      return undefined
    }
  }

  /** The batch is durable: now, and only now, the in-memory state moves, and listeners hear of it. */
  private apply(batch: PendingBatch): void {
    const state = this.log.state
    state.changes = batch.change
    state.heads = batch.heads
    state.lastWriter = batch.runWriter
    state.lastSeq = batch.runSeq
    if (batch.ownSeq > 0) state.clock.set(state.writerHex, batch.ownSeq)
    if (batch.ownTip !== undefined) state.tips.set(state.writerHex, batch.ownTip)
    if (batch.touched !== undefined) {
      for (const [hex, { seq, key }] of batch.touched) {
        state.clock.set(hex, seq)
        state.tips.set(hex, key)
      }
    }
    if (batch.newKeys !== undefined) for (const [hex, { key }] of batch.newKeys) state.writerKeys.set(hex, key)
    if (batch.checkpoint) state.unindexed.clear()
    const entries = batch.entries
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]
      state.index.add(e.key, e.change)
      state.recent.add(e.key, e.change)
      if (!batch.checkpoint) state.unindexed.keep(e.key)
    }
    this.log.listeners.emit(batch.entries, batch.origins)
  }
}
