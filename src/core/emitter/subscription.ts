/**
 * One listener's feed of events in log order, pushed from the write path
 * and paged from the log when the listener falls behind.
 */
import type { LogEntry } from '../types.js'

/** One event ready for a listener: its change number, canonical name and payload bytes. */
export interface Delivery {
  change: number
  name: string
  payload: Uint8Array
}

export interface SubscriptionSource {
  /** Highest change number committed. */
  readonly length: number
  /** Committed entries after `since`, in change order. */
  read(options: { since: number; limit: number }): AsyncIterable<LogEntry>
  /** Envelope name/payload of an entry read back from the log; undefined if unreadable. */
  toDelivery(entry: LogEntry): Delivery | undefined
}

export type Deliver = (delivery: Delivery) => void | PromiseLike<void>

export interface SubscriptionOptions {
  /** Which canonical event names this subscription wants (undefined: all). */
  name?: string
  /** Deliver entries with change number > position; undefined = "from now", fixed by start(). */
  position?: number
  /** The position comes later, through startAt() (a durable consumer loading its cursor). */
  deferred?: boolean
  /** In-memory queue bound; past it the subscription reads from the log instead. */
  maxQueue?: number
  /** Called when the handler throws or rejects; delivery goes on with the next event. */
  onError: (err: unknown, delivery: Delivery) => void
  /** Called after each delivery finished (handler returned, resolved or called done). */
  onDelivered?: (delivery: Delivery) => void | PromiseLike<void>
}

const DEFAULT_MAX_QUEUE = 4096

/**
 * Feeds one listener its events in log order, one at a time. Fresh events are
 * pushed from the write path (no db read); a listener that falls more than
 * `maxQueue` behind stops being fed and catches up by reading the log, so a
 * slow handler costs no memory. Events from before `position` are skipped.
 */
export class Subscription {
  /** Canonical event name wanted (undefined: all); may be set until start(). */
  name: string | undefined
  /** Change number up to which entries were queued or deliberately skipped. */
  private cursor: number
  private started: boolean
  private readonly queue: Delivery[] = []
  private head = 0
  private lagging: boolean
  private running = false
  private closed = false
  private readonly maxQueue: number

  constructor(
    private readonly source: SubscriptionSource,
    private readonly deliver: Deliver,
    private readonly options: SubscriptionOptions,
  ) {
    this.name = options.name
    this.maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE
    // A deferred subscription starts at startAt(), even when given a position
    // (a consumer's `from`, used only if it has no stored one).
    this.started = !options.deferred && options.position !== undefined
    this.cursor = options.position ?? 0
    // A subscription from an old position starts by reading the log.
    this.lagging = this.started
  }

  /** Fix a "from now" position once the log is open, and begin any catch-up. */
  start(): void {
    if (this.options.deferred) return
    if (!this.started) {
      this.started = true
      this.cursor = this.source.length
      this.lagging = false
    }
    if (this.lagging && this.cursor >= this.source.length) this.lagging = false
    if (this.lagging) this.kick()
  }

  /** Start a deferred subscription after `position` (the log must be open). */
  startAt(position: number): void {
    if (this.closed || this.started) return
    this.started = true
    this.cursor = position
    this.lagging = position < this.source.length
    if (this.lagging) this.kick()
  }

  /** Offer a freshly committed event (called in change order). */
  push(delivery: Delivery): void {
    if (!this.advance(delivery.change)) return
    if (this.name !== undefined && delivery.name !== this.name) return
    if (!this.running && this.pending() === 0) {
      // Idle fast path: a synchronous handler runs right here, no queue, no await.
      const result = this.invoke(delivery)
      if (result !== undefined) {
        this.running = true
        void this.loop(result)
      }
      return
    }
    this.queue.push(delivery)
    if (this.pending() > this.maxQueue) {
      // Stop buffering: what follows is read back from the log when the handler catches up.
      this.lagging = true
    }
    this.kick()
  }

  /** A freshly committed event of a name this subscription does not take: only the cursor moves past it. */
  pass(change: number): void {
    this.advance(change)
  }

  /** Moves the cursor to a freshly committed `change`; false when this subscription is not taking pushed events. */
  private advance(change: number): boolean {
    if (this.closed || !this.started || this.lagging || change <= this.cursor) return false
    this.cursor = change
    return true
  }

  /** Stop delivering; queued events are dropped. */
  close(): void {
    this.closed = true
    this.queue.length = 0
    this.head = 0
  }

  private pending(): number {
    return this.queue.length - this.head
  }

  private kick(): void {
    if (this.running || this.closed) return
    this.running = true
    void this.loop(undefined)
  }

  /** Run the handler; returns a promise only when the handler gates its queue. */
  private invoke(delivery: Delivery): PromiseLike<void> | undefined {
    let result: void | PromiseLike<void>
    try {
      result = this.deliver(delivery)
    } catch (err) {
      this.options.onError(err, delivery)
      return this.delivered(delivery)
    }
    if (result !== undefined && result !== null && typeof (result as PromiseLike<void>).then === 'function') {
      return (result as PromiseLike<void>).then(
        () => this.delivered(delivery),
        (err) => {
          this.options.onError(err, delivery)
          return this.delivered(delivery)
        },
      )
    }
    return this.delivered(delivery)
  }

  private delivered(delivery: Delivery): PromiseLike<void> | undefined {
    const after = this.options.onDelivered?.(delivery)
    return after && typeof after.then === 'function' ? after : undefined
  }

  private async loop(first: PromiseLike<void> | undefined): Promise<void> {
    try {
      if (first) await first
      while (!this.closed) {
        if (this.pending() === 0) {
          this.queue.length = 0
          this.head = 0
          if (!this.lagging) break
          await this.refill()
          continue
        }
        const delivery = this.queue[this.head++]
        const gate = this.invoke(delivery)
        if (gate) await gate
      }
    } catch (err) {
      // refill() failed (db closed under us, ...): report and stop; close() follows.
      this.options.onError(err, { change: this.cursor, name: this.name ?? '', payload: new Uint8Array(0) })
    } finally {
      this.running = false
    }
  }

  /** Read the next page of the log into the queue; clears `lagging` once caught up. */
  private async refill(): Promise<void> {
    const limit = Math.max(1, Math.floor(this.maxQueue / 2))
    for await (const entry of this.source.read({ since: this.cursor, limit })) {
      if (this.closed) return
      this.cursor = entry.change
      const delivery = this.source.toDelivery(entry)
      if (delivery && (this.name === undefined || delivery.name === this.name)) this.queue.push(delivery)
    }
    // Checked synchronously after the read: anything committed later arrives by push().
    if (this.cursor >= this.source.length) this.lagging = false
  }
}
