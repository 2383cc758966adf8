/**
 * From committed log entries to listeners: every live subscription (on(),
 * streams, iterators, discovery), durable consumers' stored positions, and
 * the decoding of each event once, shared by all who take it.
 */
import { envelopeNameIf, keptPayload } from '../codec/envelope.js'
import type { Codecs } from '../codec/schema.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { Log } from '../log/log.js'
import { equalBytes } from '../bytes/bytes.js'
import type { Author, Db, LogEntry } from '../types.js'
import { ConsumerCursor } from './consumer.js'
import { Subscription, type Delivery, type SubscriptionSource } from './subscription.js'

/** Where a stream or iterator starts: 'now' (default), 'beginning', or after a change number. */
export type StartPosition = 'now' | 'beginning' | number

export interface SubscribeOptions {
  /** The canonical event name taken (all events when absent). */
  name?: string
  from?: StartPosition | 'checkpoint'
  consumer?: string
  onClose?: () => void
}

/** A delivery's message before a listener decoded it (a codec may decode to undefined). */
const UNDECODED: unique symbol = Symbol('undecoded')

/**
 * A Delivery that remembers its decoded message, shared by every listener
 * of one event. Made with `decoded` in place: adding the property later
 * gives every delivery a second shape.
 */
export interface DecodedDelivery extends Delivery {
  decoded?: unknown
}

/** What the deliveries need of the emitter that owns them. */
export interface DeliveryHost {
  readonly log: Log
  readonly db: Db
  readonly maxQueue: number | undefined
  /** Resolves once the emitter is ready (a consumer starts after it). */
  ready(): Promise<void>
  isReady(): boolean
  schema(): Codecs | undefined
  reportError(err: unknown): void
}

export class Deliveries {
  /** Every live subscription: listeners, streams and iterators. */
  private readonly subscriptions = new Set<Subscription>()
  private readonly closers = new Map<Subscription, () => void>()
  /** Durable consumers reading now, by name. */
  private readonly cursors = new Map<string, ConsumerCursor>()
  /** Position saves still being written by consumers that stopped. */
  private readonly pendingFlushes = new Set<Promise<void>>()
  private readonly source: SubscriptionSource
  private lastWriter: Uint8Array = new Uint8Array(0)
  private lastAuthor: Author | undefined

  constructor(private readonly host: DeliveryHost) {
    const log = host.log
    this.source = {
      get length() {
        return log.length
      },
      read: (o) => log.read(o),
      toDelivery: (entry) => this.toDeliveryIf(entry, undefined) ?? undefined,
    }
  }

  /**
   * A subscription fed from the write path; started now if the emitter is
   * ready, else by start(). With a consumer, it starts after the stored
   * position and stores each handled position. Throws INVALID_ARGUMENT.
   */
  subscribe(deliver: (d: DecodedDelivery) => void | PromiseLike<void>, options: SubscribeOptions): Subscription {
    const { consumer } = options
    if (consumer !== undefined && (typeof consumer !== 'string' || consumer === '')) {
      throw invalidArgument('consumer must be a non-empty string')
    }
    if (consumer !== undefined && this.cursors.has(consumer)) {
      throw invalidArgument(`consumer "${consumer}" is already reading; one reader per consumer name`)
    }
    if (options.from === 'checkpoint' && consumer === undefined) {
      throw invalidArgument("from: 'checkpoint' needs a consumer name")
    }
    const host = this.host
    const position = options.from === 'checkpoint' ? undefined : startPosition(options.from)
    const cursor = consumer === undefined ? undefined : new ConsumerCursor(host.db, consumer, (err) => host.reportError(err))
    const subscription = new Subscription(this.source, deliver, {
      name: options.name,
      position,
      deferred: cursor !== undefined,
      maxQueue: host.maxQueue,
      onDelivered: cursor ? (d) => cursor.advance(d.change) : undefined,
      onError: (err, delivery) =>
        host.reportError(
          new HyperEmitterError(
            err instanceof HyperEmitterError ? err.code : ErrorCodes.LISTENER_FAILED,
            `listener for "${delivery.name}" failed: ${err instanceof Error ? err.message : String(err)}`,
            { cause: err, details: { event: delivery.name, change: delivery.change } },
          ),
        ),
    })
    this.closers.set(subscription, () => {
      if (cursor) {
        this.cursors.delete(cursor.name)
        const flushed = cursor.flush()
        this.pendingFlushes.add(flushed)
        void flushed.finally(() => this.pendingFlushes.delete(flushed))
      }
      options.onClose?.()
    })
    this.subscriptions.add(subscription)
    if (cursor) {
      this.cursors.set(cursor.name, cursor)
      Promise.all([host.ready(), cursor.load()]).then(
        ([, saved]) => subscription.startAt(saved ?? (options.from === 'now' ? host.log.length : (position ?? 0))),
        (err) => {
          host.reportError(err)
          this.unsubscribe(subscription)
        },
      )
    } else if (host.isReady()) subscription.start()
    return subscription
  }

  unsubscribe(subscription: Subscription): void {
    if (!this.subscriptions.delete(subscription)) return
    subscription.close()
    const onClose = this.closers.get(subscription)
    this.closers.delete(subscription)
    onClose?.()
  }

  /** The emitter is ready: start every subscription made before. */
  start(): void {
    for (const subscription of this.subscriptions) subscription.start()
  }

  /** Ends every subscription; resolves once consumers' last positions are stored. */
  async closeAll(): Promise<void> {
    for (const subscription of [...this.subscriptions]) this.unsubscribe(subscription)
    await Promise.all(this.pendingFlushes)
  }

  /** Decode (once per event, shared by its listeners) the message of a delivery. */
  decode(delivery: DecodedDelivery): unknown {
    if (delivery.decoded === UNDECODED || !('decoded' in delivery)) delivery.decoded = this.host.schema()!.decode(delivery.name, delivery.payload)
    return delivery.decoded
  }

  /** `name` as the schema names it (its full name), once the schema is loaded. */
  canonical(name: string): string {
    const schema = this.host.schema()
    return schema ? schema.canonicalName(name) : name
  }

  /** The log committed `entries`: each subscription gets those it takes. */
  onCommit(entries: LogEntry[]): void {
    if (this.subscriptions.size === 0) return
    // The names some subscription takes (none: one takes every event). An
    // event no one takes is read only as far as its name: a replicated
    // emitter's discovery listens for EventPeer events alone.
    let wanted: Set<string> | undefined = new Set()
    for (const subscription of this.subscriptions) {
      if (subscription.name === undefined) {
        wanted = undefined
        break
      }
      wanted.add(subscription.name)
    }
    const keep = wanted && ((name: string) => wanted.has(this.canonical(name)))
    // Indexed loops over a copy: until V8 optimises them, for-of loops make
    // an iterator result per step, and these run per event. Subscriptions
    // added or closed meanwhile take nothing of this batch either way.
    const subscriptions = [...this.subscriptions]
    const count = subscriptions.length
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]
      const delivery = this.toDeliveryIf(entry, keep)
      if (delivery === null) {
        for (let s = 0; s < count; s++) subscriptions[s].pass(entry.change)
      } else if (delivery !== undefined) {
        for (let s = 0; s < count; s++) subscriptions[s].push(delivery)
      }
    }
  }

  /** The author of `writer`'s nodes; runs of one writer are the norm, so the last is kept. */
  private authorOf(writer: Uint8Array): Author | undefined {
    if (this.lastAuthor === undefined || !equalBytes(writer, this.lastWriter)) {
      this.lastWriter = writer
      this.lastAuthor = this.host.log.authorOf(writer)
    }
    return this.lastAuthor
  }

  /** The entry's delivery; null when `keep` refuses its canonical name; undefined (reported) when its value is no event. */
  private toDeliveryIf(entry: LogEntry, keep: ((name: string) => boolean) | undefined): Delivery | null | undefined {
    try {
      const value = entry.value
      const name = envelopeNameIf(value, keep)
      if (name === undefined) return null
      const payload = keptPayload(value)
      const delivery: DecodedDelivery = {
        change: entry.change,
        name: this.canonical(name),
        payload,
        author: this.authorOf(entry.writer),
        decoded: UNDECODED,
      }
      return delivery
    } catch (err) {
      // A well-hashed node may still carry a value that is no event (a peer's bug): skip it, loudly.
      this.host.reportError(err)
      return undefined
    }
  }
}

/** The change a subscription starts after; undefined for 'now'. Throws INVALID_ARGUMENT. */
export function startPosition(from: StartPosition | 'checkpoint' | undefined): number | undefined {
  if (from === undefined || from === 'now') return undefined
  if (from === 'beginning') return 0
  if (typeof from === 'number' && Number.isSafeInteger(from) && from >= 0) return from
  throw invalidArgument(`from must be 'now', 'beginning' or a change number, not ${String(from)}`)
}

function invalidArgument(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, message)
}
