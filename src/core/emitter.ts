import { MemoryLevel } from 'memory-level'
import { withCallback, type Callback } from './callback.js'
import { PackedBytes } from './bytes/packed.js'
import { addEnvelope, decodeEnvelopeIf, envelopeSizeOf } from './codec/envelope.js'
import { ErrorCodes, HyperEmitterError } from './errors.js'
import { Log, type AppendSink, type LogOptions } from './log/log.js'
import { Codecs, type Codec, type MessageCodec, type PlainInput, type SchemaSource } from './codec/schema.js'
import { ConsumerCursor } from './emitter/consumer.js'
import { Subscription, type Delivery, type SubscriptionSource } from './emitter/subscription.js'
import { TypedEmitter } from './emitter/typed-emitter.js'
import type { Db, HashFn, LogEntry } from './types.js'
import type { Encoded } from './codec/plain.js'

export type { Db } from './types.js'

/** Event name -> message shape. `Record<string, any>` when untyped. */
export type EventMap = Record<string, any>

/** A schema given as a stream of chunks (a Node Readable is an AsyncIterable). */
export type SchemaStream = AsyncIterable<Uint8Array | string>

export interface HyperEmitterOptions {
  /** The database; default a new in-memory one (closed by close()). */
  db?: Db
  /** The schema: .proto text, bytes, a stream of either, or protoc-gen-es descriptors. */
  schema?: SchemaSource | SchemaStream
  /** Milliseconds before the first reconnect attempt to a lost peer (seed option). */
  reconnectTimeout?: number
  /** SHA-256 implementation; the Node entry passes node:crypto's. */
  hash?: HashFn
  /**
   * Whether the db may store records that are views into shared buffers
   * (see LogOptions): true in Node, false in browsers, where IndexedDB would
   * keep each view's whole buffer.
   */
  sharedRecordBuffers?: boolean
  /** Events buffered per listener before it falls back to reading the log. */
  maxQueue?: number
  /**
   * Largest event emit() accepts, in bytes (name and encoded payload);
   * larger ones are refused with EVENT_TOO_LARGE, so no peer is ever sent a
   * node it cannot take. Default: what fits a frame of maxFrameSize with
   * room for the node's links (4 MiB - 64 KiB by default).
   */
  maxEventSize?: number
}

/** Default maxEventSize: a default 4 MiB frame less 64 KiB for the node's links and framing. */
export const DEFAULT_MAX_EVENT_SIZE = 4 * 1024 * 1024 - 64 * 1024

/** One event as streams and iterators carry it. */
export interface EmitterEvent<E extends EventMap = EventMap, K extends keyof E & string = keyof E & string> {
  name: K
  payload: E[K]
}

/** Where a stream or iterator starts: 'now' (default), 'beginning', or after a change number. */
export type StartPosition = 'now' | 'beginning' | number

export interface EventsOptions {
  /** Where to start; with a consumer, 'checkpoint' (default) resumes after its stored position. */
  from?: StartPosition | 'checkpoint'
  /**
   * A durable consumer name: its position is stored in the db after each
   * event is handled, and a restart on the same db resumes right after it
   * (at-least-once: never skipping, never going backwards). A consumer with
   * no stored position starts from `from` ('beginning' when 'checkpoint').
   */
  consumer?: string
}

/** Options of on(): a durable consumer, as for events(). */
export type ListenerOptions = EventsOptions

/** Called with each message; taking `done`, or returning a promise, holds back the next one. */
// Returns unknown: `m => list.push(m)` must type-check; only a returned thenable gates.
export type Handler<T> = (message: T, done: (err?: unknown) => void) => unknown

export interface StatusEvents {
  /** The schema is loaded and the log open. */
  ready: () => void
  /** Something failed in the background: a listener threw, a peer misbehaved, storage failed. */
  error: (err: Error) => void
  /** close() has finished. */
  close: () => void
  [event: string]: (...args: any[]) => void
}

/** Emits one group holds at most: a log batch's worth (the log's default maxBatch). */
const MAX_GROUP = 1000

/** A promise with its resolvers, made when a group first needs it. */
class Outcome {
  readonly promise: Promise<void>
  resolve!: () => void
  reject!: (err: unknown) => void

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }
}

/**
 * The emits of one turn (up to MAX_GROUP), appended together: one
 * appendAll() and one promise for all of them, since one batch stores them
 * all or none anyway. A promise per emit, alive until its batch committed,
 * was what garbage collection spent most on with many emits in flight.
 *
 * Callers who take the outcome elsewhere (a callback; an emit made before
 * the schema loaded, with a promise of its own) share a second promise,
 * marked handled. Handling the first one for them would hide a failure from
 * a promise caller in the same turn who never handled it.
 */
class EmitGroup implements AppendSink {
  /** The envelopes, packed. */
  readonly values: PackedBytes
  private forPromises: Outcome | undefined
  private forObservers: Outcome | undefined

  constructor(expectedBytes: number) {
    this.values = new PackedBytes(expectedBytes)
  }

  /** What an emit returns to a promise caller. */
  promise(): Promise<void> {
    return (this.forPromises ??= new Outcome()).promise
  }

  /** What an emit whose outcome goes elsewhere gets: settles the same, never unhandled. */
  observed(): Promise<void> {
    if (this.forObservers === undefined) {
      this.forObservers = new Outcome()
      this.forObservers.promise.catch(() => {})
    }
    return this.forObservers.promise
  }

  appended(): void {
    this.forPromises?.resolve()
    this.forObservers?.resolve()
  }

  failed(err: unknown): void {
    this.forPromises?.reject(err)
    this.forObservers?.reject(err)
  }
}

/** An emit made before a streamed schema loaded: encoded once it has. */
interface EarlyEmit {
  name: string
  message: unknown
  resolve: () => void
  reject: (err: unknown) => void
}

interface Listener {
  rawName: string
  handler: Handler<any>
  subscription: Subscription
}

/** A delivery's message before a listener decoded it (a codec may decode to undefined). */
const UNDECODED: unique symbol = Symbol('undecoded')

/**
 * A Delivery that remembers its decoded message, shared by every listener
 * of one event. Made with `decoded` in place: adding the property later
 * gave every delivery a second shape and a property store of its own.
 */
interface DecodedDelivery extends Delivery {
  decoded?: unknown
}

function isDb(value: unknown): value is Db {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Db).batch === 'function' &&
    typeof (value as Db).sublevel === 'function'
  )
}

function isStream(value: unknown): value is SchemaStream {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Uint8Array) &&
    typeof (value as SchemaStream)[Symbol.asyncIterator] === 'function'
  )
}

function closedError(): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
}

/** The error an emit gets when the emitter failed to start: same code, the start-up error as cause. */
function notReady(err: unknown): HyperEmitterError {
  const code = err instanceof HyperEmitterError ? err.code : ErrorCodes.STORAGE_FAILED
  return new HyperEmitterError(code, `the emitter could not start: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
}

function invalidArgument(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, message)
}

/** Normalize the seed's `(db, schema, opts)` and the `(opts)` forms. */
function parseArguments(args: unknown[]): HyperEmitterOptions {
  const [first, schema, opts] = args
  if (args.length === 1 && typeof first === 'object' && first !== null && !isDb(first)) {
    return { ...(first as HyperEmitterOptions) }
  }
  if (first !== undefined && first !== null && !isDb(first)) {
    throw invalidArgument('db must be an abstract-level database (memory-level, classic-level, browser-level)')
  }
  if (opts !== undefined && (typeof opts !== 'object' || opts === null)) {
    throw invalidArgument('opts must be an object')
  }
  return { ...(opts as HyperEmitterOptions | undefined), db: (first ?? undefined) as Db | undefined, schema: schema as SchemaSource }
}

/**
 * A persistent, replicated EventEmitter over a Merkle DAG log. This is the
 * runtime-agnostic core; the Node and browser entries add transports.
 */
export class HyperEmitterCore<E extends EventMap = EventMap> {
  /** ready / error / close, and peer events from the replication layer. */
  readonly status = new TypedEmitter<StatusEvents>()
  protected readonly options: HyperEmitterOptions
  protected readonly db: Db
  protected readonly log: Log
  private readonly ownsDb: boolean
  private schema: Codecs | undefined
  private readonly pendingCodecs: Array<[string, Codec]> = []
  private readonly readyPromise: Promise<void>
  private isReady = false
  private closing = false
  private closePromise: Promise<void> | undefined
  private readonly listeners: Listener[] = []
  /** Every live subscription: listeners, streams and iterators. */
  private readonly subscriptions = new Set<Subscription>()
  private readonly subscriptionSource: SubscriptionSource
  private readonly closeHooks: Array<() => Promise<void> | void> = []
  /** Emits made before a streamed schema loaded, in order. */
  private early: EarlyEmit[] = []
  /** The group this turn's emits join; handed to the log at the end of the turn, or once full. */
  private group: EmitGroup | undefined
  /**
   * The bytes the last group held, to size the next: in a burst, each group
   * of a thousand envelopes otherwise grew its buffer ten times from 64
   * bytes, touching twice its size in fresh memory.
   */
  private lastGroupBytes = 0
  /** Full groups made before ready, waiting for it (the open group waits too). */
  private sealed: EmitGroup[] = []
  private readonly endTurn = (): void => {
    if (this.isReady) this.seal()
  }

  constructor(db?: Db | HyperEmitterOptions | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions)
  constructor(...args: unknown[]) {
    const options: HyperEmitterOptions = {
      ...(new.target as typeof HyperEmitterCore).defaultOptions(),
      ...withoutUndefined(parseArguments(args)),
    }
    ;(new.target as typeof HyperEmitterCore).checkOptions(options)
    this.options = options
    this.ownsDb = options.db === undefined
    this.db = options.db ?? (new.target as typeof HyperEmitterCore).defaultDb(options)
    const exclusive = (new.target as typeof HyperEmitterCore).exclusiveAccess(this.db)
    this.log = new Log(this.db, { hash: options.hash, sharedRecordBuffers: options.sharedRecordBuffers, exclusive })
    // Synchronous schemas load here, so `messages` is usable at once and a bad
    // schema throws INVALID_SCHEMA from the constructor.
    if (!isStream(options.schema)) this.schema = Codecs.fromSync(options.schema as SchemaSource)
    this.subscriptionSource = {
      get length() {
        return log.length
      },
      read: (o) => this.log.read(o),
      toDelivery: (entry) => this.toDelivery(entry),
    }
    const log = this.log
    this.readyPromise = this.init()
    // Failures reach callers of emit()/ready() and status 'error'; never unhandled.
    this.readyPromise.catch((err) => {
      // A fresh error per caller (per group: its emits share one promise anyway).
      for (const e of this.early.splice(0)) e.reject(notReady(err))
      if (this.group !== undefined) this.sealed.push(this.group)
      this.group = undefined
      for (const g of this.sealed.splice(0)) g.failed(notReady(err))
      this.reportError(err)
    })
  }

  /** Completes or refuses (throwing INVALID_ARGUMENT) the options before anything starts; a layer with options of its own overrides it. */
  protected static checkOptions(_options: HyperEmitterOptions): void {}

  /** Options a runtime entry supplies when the caller leaves them out (the Node entry: node:crypto's hash). */
  protected static defaultOptions(): HyperEmitterOptions {
    return {}
  }

  /**
   * The db used when the caller passes none; the emitter owns it and closes
   * it on close(). Default: a new memory-level. The browser entry opens
   * IndexedDB (browser-level) under `options.name` instead.
   */
  protected static defaultDb(_options: HyperEmitterOptions): Db {
    return new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
  }

  /**
   * How this emitter's log takes turns writing with logs in other contexts
   * on the same db (a browser tab's Web Lock: see LogOptions.exclusive);
   * none by default.
   */
  protected static exclusiveAccess(_db: Db): LogOptions['exclusive'] {
    return undefined
  }

  private async init(): Promise<void> {
    if (this.schema === undefined) this.schema = await Codecs.load(this.options.schema as SchemaStream)
    for (const [name, codec] of this.pendingCodecs.splice(0)) this.schema.register(name, codec)
    // Emits made while a streamed schema loaded go first, ahead of any made from now on.
    for (const e of this.early.splice(0)) this.enqueue(e.name, e.message, true).then(e.resolve, e.reject)
    await this.log.open()
    this.log.onChange((entries) => this.onCommit(entries))
    this.isReady = true
    // Before anything that could emit (a 'ready' handler), so emits keep their order.
    for (const g of this.sealed.splice(0)) this.log.appendAll(g.values, g)
    this.seal()
    for (const listener of this.listeners) listener.subscription.name = this.canonical(listener.rawName)
    for (const subscription of this.subscriptions) subscription.start()
    this.status.emit('ready')
  }

  /** Resolves once the schema is loaded and the log is open; rejects with the cause otherwise. */
  ready(cb?: Callback): Promise<void> {
    return withCallback(this.readyPromise, cb)
  }

  /** The codecs by message name (full name, and short name when unambiguous). */
  get messages(): Record<string, MessageCodec> {
    return this.schema?.messages ?? {}
  }

  /** Alias of `messages`. */
  get codecs(): Record<string, MessageCodec> {
    return this.messages
  }

  /**
   * Register custom codecs: `(name, codec)`, `({ name: codec })` or
   * `([{ name, codec }])`. A codec is any `{ encode, decode }`. Chainable;
   * throws INVALID_ARGUMENT on a malformed argument.
   */
  registerCodec(name: string, codec: Codec): this
  registerCodec(codecs: Record<string, Codec> | Array<{ name: string; codec: Codec }>): this
  registerCodec(nameOrCodecs: unknown, codec?: Codec): this {
    const pairs: Array<[string, Codec]> = []
    if (typeof nameOrCodecs === 'string') pairs.push([nameOrCodecs, codec as Codec])
    else if (Array.isArray(nameOrCodecs)) {
      for (const item of nameOrCodecs) {
        if (typeof item !== 'object' || item === null) throw invalidArgument('registerCodec([...]) takes { name, codec } items')
        pairs.push([item.name, item.codec])
      }
    } else if (typeof nameOrCodecs === 'object' && nameOrCodecs !== null) {
      for (const [name, c] of Object.entries(nameOrCodecs)) pairs.push([name, c as Codec])
    } else throw invalidArgument('registerCodec takes (name, codec), { name: codec } or [{ name, codec }]')
    for (const [name, c] of pairs) {
      if (typeof name !== 'string' || name === '') throw invalidArgument('a codec name must be a non-empty string')
      if (typeof c !== 'object' || c === null || typeof c.encode !== 'function' || typeof c.decode !== 'function') {
        throw invalidArgument(`codec for "${name}" must have encode and decode functions`)
      }
    }
    for (const [name, c] of pairs) {
      if (this.schema) this.schema.register(name, c)
      else this.pendingCodecs.push([name, c])
    }
    return this
  }

  /**
   * Validate `message` against the schema and append it to the local log.
   * Resolves (and calls `cb(null)`) once the event is stored, whether or not
   * anything listens. Rejects with UNKNOWN_EVENT, EVENT_TOO_LARGE, MISSING_FIELD,
   * UNKNOWN_FIELD, INVALID_FIELD, CODEC_FAILED, CLOSED or STORAGE_FAILED;
   * nothing is appended then. The message is encoded at once (with a
   * streamed schema not loaded yet: once it is), so changing it afterwards
   * changes nothing. Emits of one turn share one promise: one batch stores
   * them all or none.
   */
  emit<K extends keyof E & string>(name: K, message: PlainInput<E[K]>, cb?: Callback): Promise<void> {
    return cb === undefined ? this.append(name, message, false) : withCallback(this.append(name, message, true), cb)
  }

  /** `observed`: the outcome goes to a callback (see EmitGroup). */
  private append(name: string, message: unknown, observed: boolean): Promise<void> {
    if (this.closing) return Promise.reject(closedError())
    if (typeof name !== 'string' || name === '') return Promise.reject(invalidArgument('event name must be a non-empty string'))
    if (this.schema === undefined) return new Promise((resolve, reject) => this.early.push({ name, message, resolve, reject }))
    return this.enqueue(name, message, observed)
  }

  /**
   * Encode one event now (a bad one is refused alone, and changing `message`
   * afterwards changes nothing) and add it to this turn's group.
   */
  private enqueue(name: string, message: unknown, observed: boolean): Promise<void> {
    let canonical: string
    let payload: Encoded
    try {
      const schema = this.schema!
      canonical = schema.canonicalName(name)
      // In the encoder's own buffer: copied into the group below, before any other encode.
      payload = schema.encodeShared(name, message)
    } catch (err) {
      return Promise.reject(err)
    }
    const size = envelopeSizeOf(canonical, payload.length)
    const max = this.options.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE
    if (size > max) {
      return Promise.reject(
        new HyperEmitterError(ErrorCodes.EVENT_TOO_LARGE, `event ${canonical} of ${size} bytes exceeds maxEventSize (${max} bytes)`, {
          details: { name: canonical, size, maxEventSize: max },
        }),
      )
    }
    let group = this.group
    if (group === undefined) {
      group = this.group = new EmitGroup(this.lastGroupBytes)
      queueMicrotask(this.endTurn)
    }
    addEnvelope(group.values, canonical, payload.bytes, payload.length)
    const outcome = observed ? group.observed() : group.promise()
    if (group.values.length >= MAX_GROUP) this.seal()
    return outcome
  }

  /** Close the open group: hand it to the log, or before ready keep it for then. */
  private seal(): void {
    const group = this.group
    if (group === undefined) return
    this.group = undefined
    // An eighth more, as envelopes in a run grow (a counter gains a digit).
    const held = group.values.byteLength
    this.lastGroupBytes = held + (held >> 3)
    if (this.isReady) this.log.appendAll(group.values, group)
    else this.sealed.push(group)
  }

  /**
   * Call `handler` with each `name` event that enters the log from now on
   * (local or replicated), in log order, one at a time. With
   * `{ consumer }`, the handler resumes after the last event it finished,
   * across restarts. Chainable; throws INVALID_ARGUMENT or CLOSED.
   */
  on<K extends keyof E & string>(name: K, handler: Handler<E[K]>, options?: ListenerOptions): this {
    return this.addHandler(name, handler, false, options)
  }

  /** Alias of on(). */
  addListener<K extends keyof E & string>(name: K, handler: Handler<E[K]>, options?: ListenerOptions): this {
    return this.addHandler(name, handler, false, options)
  }

  /** Like on(), for the next event only. */
  once<K extends keyof E & string>(name: K, handler: Handler<E[K]>): this {
    return this.addHandler(name, handler, true)
  }

  private addHandler(name: string, handler: Handler<any>, once: boolean, options: ListenerOptions = {}): this {
    if (typeof name !== 'string' || name === '') throw invalidArgument('event name must be a non-empty string')
    if (typeof handler !== 'function') throw invalidArgument('handler must be a function')
    const invoke = this.handlerInvoker(handler)
    const listener: Listener = { rawName: name, handler, subscription: undefined as unknown as Subscription }
    const deliver = once
      ? (d: DecodedDelivery) => {
          this.removeListener(name, handler)
          return invoke(d)
        }
      : invoke
    listener.subscription = this.subscribe(deliver, {
      name: this.isReady ? this.canonical(name) : name,
      consumer: options.consumer,
      from: options.from,
    })
    this.listeners.push(listener)
    return this
  }

  /** Remove the most recently added registration of `handler` for `name`. Chainable. */
  removeListener<K extends keyof E & string>(name: K, handler: Handler<E[K]>): this {
    for (let i = this.listeners.length - 1; i >= 0; i--) {
      const listener = this.listeners[i]
      if (listener.rawName === name && listener.handler === handler) {
        this.listeners.splice(i, 1)
        this.unsubscribe(listener.subscription)
        break
      }
    }
    return this
  }

  /** Alias of removeListener(). */
  off<K extends keyof E & string>(name: K, handler: Handler<E[K]>): this {
    return this.removeListener(name, handler)
  }

  /** Number of handlers registered for `name`. */
  listenerCount(name: keyof E & string): number {
    return this.listeners.filter((l) => l.rawName === name).length
  }

  /**
   * Every event as `{ name, payload }`, live, from `from` ('now' by default:
   * the moment of this call; 'beginning'; or after a change number). Ends
   * when the loop breaks or the emitter closes. The loop's pace holds back
   * only this iterator.
   */
  events(options: EventsOptions = {}): AsyncIterableIterator<EmitterEvent<E>> {
    // A durable consumer's event counts as handled when the loop asks for the
    // next one, so it reads one at a time; otherwise read ahead a little.
    const durable = options.consumer !== undefined
    const limit = durable ? 1 : 256
    const buffer: Array<{ event: EmitterEvent<E>; handled?: () => void }> = []
    let wake: (() => void) | undefined
    let resumeProducer: (() => void) | undefined
    let handledPrevious: (() => void) | undefined
    let finished = false
    const finish = () => {
      finished = true
      wake?.()
    }
    const subscription = this.subscribe(
      (d) => {
        const event = { name: d.name, payload: this.decode(d) } as EmitterEvent<E>
        if (durable) {
          return new Promise<void>((handled) => {
            buffer.push({ event, handled })
            wake?.()
          })
        }
        buffer.push({ event })
        wake?.()
        if (buffer.length < limit) return
        return new Promise<void>((resolve) => (resumeProducer = resolve))
      },
      { from: options.from, consumer: options.consumer, onClose: finish },
    )
    const iterator: AsyncIterableIterator<EmitterEvent<E>> = {
      next: async () => {
        handledPrevious?.()
        handledPrevious = undefined
        while (buffer.length === 0 && !finished) await new Promise<void>((resolve) => (wake = resolve))
        wake = undefined
        const item = buffer.shift()
        if (item === undefined) return { value: undefined, done: true }
        handledPrevious = item.handled
        if (resumeProducer && buffer.length < limit / 2) {
          resumeProducer()
          resumeProducer = undefined
        }
        return { value: item.event, done: false }
      },
      return: async () => {
        this.unsubscribe(subscription)
        finish()
        return { value: undefined, done: true }
      },
      [Symbol.asyncIterator]() {
        return iterator
      },
    }
    return iterator
  }

  /** This emitter's writer id (hex), stable across restarts on the same db. */
  getId(cb?: Callback<string>): Promise<string> {
    return withCallback(
      this.readyPromise.then(() => this.log.writerId),
      cb,
    )
  }

  /**
   * Stop replication, end every stream and iterator, close the log, and close
   * the db if the emitter opened it (a db passed in stays open). Idempotent.
   */
  close(cb?: Callback): Promise<void> {
    this.closePromise ??= this.shutdown()
    return withCallback(this.closePromise, cb)
  }

  get closed(): boolean {
    return this.closing
  }

  private async shutdown(): Promise<void> {
    this.closing = true
    for (const hook of this.closeHooks.splice(0).reverse()) {
      try {
        await hook()
      } catch (err) {
        this.reportError(err)
      }
    }
    for (const subscription of [...this.subscriptions]) this.unsubscribe(subscription)
    this.listeners.length = 0
    // Consumers' last positions reach the db before it closes.
    await Promise.all(this.pendingFlushes)
    await this.readyPromise.catch(noop)
    // Emits made before close() still land: the log commits what it holds before closing.
    this.seal()
    await this.log.close()
    if (this.ownsDb) await this.db.close()
    this.status.emit('close')
  }

  /** For the runtime layers: run `hook` first when the emitter closes. */
  protected onClose(hook: () => Promise<void> | void): void {
    this.closeHooks.push(hook)
  }

  /** For the runtime layers: report a background failure on status 'error'. */
  protected reportError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err))
    if (!this.status.emit('error', error)) console.error('hyperemitter:', error)
  }

  protected startPosition(from: StartPosition | 'checkpoint' | undefined): number | undefined {
    if (from === undefined || from === 'now') return undefined
    if (from === 'beginning') return 0
    if (typeof from === 'number' && Number.isSafeInteger(from) && from >= 0) return from
    throw invalidArgument(`from must be 'now', 'beginning' or a change number, not ${String(from)}`)
  }

  /**
   * A subscription fed from the write path; started now if the log is open,
   * else at ready. With a consumer, it starts after the stored position and
   * stores each handled position.
   */
  protected subscribe(
    deliver: (d: DecodedDelivery) => void | PromiseLike<void>,
    options: {
      name?: string
      from?: StartPosition | 'checkpoint'
      consumer?: string
      onClose?: () => void
    },
  ): Subscription {
    if (this.closing) throw closedError()
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
    const position = options.from === 'checkpoint' ? undefined : this.startPosition(options.from)
    const cursor = consumer === undefined ? undefined : new ConsumerCursor(this.db, consumer, (err) => this.reportError(err))
    const subscription = new Subscription(this.subscriptionSource, deliver, {
      name: options.name,
      position,
      deferred: cursor !== undefined,
      maxQueue: this.options.maxQueue,
      onDelivered: cursor ? (d) => cursor.advance(d.change) : undefined,
      onError: (err, delivery) =>
        this.reportError(
          new HyperEmitterError(
            isHyperEmitterCode(err) ? err.code : ErrorCodes.LISTENER_FAILED,
            `listener for "${delivery.name}" failed: ${err instanceof Error ? err.message : String(err)}`,
            { cause: err, details: { event: delivery.name, change: delivery.change } },
          ),
        ),
    })
    this.subscriptionClosers.set(subscription, () => {
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
      Promise.all([this.readyPromise, cursor.load()]).then(
        ([, saved]) => subscription.startAt(saved ?? (options.from === 'now' ? this.log.length : (position ?? 0))),
        (err) => {
          this.reportError(err)
          this.unsubscribe(subscription)
        },
      )
    } else if (this.isReady) subscription.start()
    return subscription
  }

  /** Durable consumers reading now, by name. */
  private readonly cursors = new Map<string, ConsumerCursor>()
  /** Position saves still being written by consumers that stopped. */
  private readonly pendingFlushes = new Set<Promise<void>>()

  private readonly subscriptionClosers = new Map<Subscription, () => void>()

  protected unsubscribe(subscription: Subscription): void {
    if (!this.subscriptions.delete(subscription)) return
    subscription.close()
    const onClose = this.subscriptionClosers.get(subscription)
    this.subscriptionClosers.delete(subscription)
    onClose?.()
  }

  /** Decode (once per event, shared by its listeners) the message of a delivery. */
  protected decode(delivery: DecodedDelivery): unknown {
    if (delivery.decoded === UNDECODED || !('decoded' in delivery)) delivery.decoded = this.schema!.decode(delivery.name, delivery.payload)
    return delivery.decoded
  }

  private handlerInvoker(handler: Handler<any>): (d: DecodedDelivery) => void | PromiseLike<void> {
    if (handler.length >= 2) {
      return (d) => {
        const message = this.decode(d)
        return new Promise<void>((resolve, reject) => {
          let called = false
          const done = (err?: unknown) => {
            if (called) return
            called = true
            if (err) reject(err)
            else resolve()
          }
          const result = (handler as (m: unknown, done: (err?: unknown) => void) => unknown)(message, done)
          // A handler that takes done but also returns a promise: a rejection still counts.
          if (result && typeof (result as PromiseLike<void>).then === 'function') {
            ;(result as PromiseLike<void>).then(undefined, done)
          }
        })
      }
    }
    return (d) => (handler as (m: unknown) => void | PromiseLike<void>)(this.decode(d))
  }

  private canonical(name: string): string {
    return this.schema ? this.schema.canonicalName(name) : name
  }

  private toDelivery(entry: LogEntry): Delivery | undefined {
    return this.toDeliveryIf(entry, undefined) ?? undefined
  }

  /** The entry's delivery; null when `keep` refuses its canonical name; undefined (reported) when its value is no event. */
  private toDeliveryIf(entry: LogEntry, keep: ((name: string) => boolean) | undefined): Delivery | null | undefined {
    try {
      const envelope = decodeEnvelopeIf(entry.value, keep)
      if (envelope === undefined) return null
      const delivery: DecodedDelivery = { change: entry.change, name: this.canonical(envelope.name), payload: envelope.payload, decoded: UNDECODED }
      return delivery
    } catch (err) {
      // A well-hashed node may still carry a value that is no event (a peer's bug): skip it, loudly.
      this.reportError(err)
      return undefined
    }
  }

  private onCommit(entries: LogEntry[]): void {
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
    for (const entry of entries) {
      const delivery = this.toDeliveryIf(entry, keep)
      if (delivery === null) {
        for (const subscription of this.subscriptions) subscription.pass(entry.change)
      } else if (delivery !== undefined) {
        for (const subscription of this.subscriptions) subscription.push(delivery)
      }
    }
  }
}

function isHyperEmitterCode(err: unknown): err is HyperEmitterError {
  return err instanceof HyperEmitterError
}

function noop(): void {}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
