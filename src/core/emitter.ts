/**
 * HyperEmitterCore: the public emitter (emit, on, events, close, ...) over a
 * Log and a schema, with no runtime APIs; the Node and browser entries extend
 * it. Its parts live in emitter/: the emit queue, deliveries to listeners.
 */
import { isStream, parseArguments } from './arguments.js'
import { withCallback, type Callback } from './callback.js'
import { toHex } from './bytes/bytes.js'
import { Codecs, type Codec, type MessageCodec, type PlainInput, type SchemaSource } from './codec/schema.js'
import { Deliveries, type DecodedDelivery, type StartPosition, type SubscribeOptions } from './emitter/deliveries.js'
import { EmitQueue } from './emitter/emit-queue.js'
import { eventIterator, type Handler, handlerInvoker } from './emitter/handlers.js'
import type { Subscription } from './emitter/subscription.js'
import { TypedEmitter } from './emitter/typed-emitter.js'
import { ErrorCodes, HyperEmitterError } from './errors.js'
import { type DbLock, Log, type LogOptions } from './log/log.js'
import type { Author, Db, DbInput, HashFn } from './types.js'
import type { Ed25519 } from './identity/ed25519.js'

export type { Handler } from './emitter/handlers.js'
export type { StartPosition } from './emitter/deliveries.js'
export type { Db, DbInput } from './types.js'

/** Event name -> message shape. `Record<string, any>` when untyped. */
export type EventMap = Record<string, any>

/** A schema given as a stream of chunks (a Node Readable is an AsyncIterable). */
export type SchemaStream = AsyncIterable<Uint8Array | string>

export interface HyperEmitterOptions {
  /** The database; default a new in-memory one (closed by close()). */
  db?: DbInput
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
  /**
   * The 32-byte Ed25519 secret key this emitter's events are signed with,
   * for an application that keeps its own (see generateSecretKey()); the db
   * then stores only the public key. Default: made at first open, kept in the db.
   */
  secretKey?: Uint8Array
  /** Ed25519 implementation; the Node entry passes node:crypto's. */
  ed25519?: Ed25519
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
  /** Who wrote it, as verified (writer id and public key, hex): on events read (not enumerable), not needed on events written. */
  author?: Author
}

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

export interface StatusEvents {
  /** The schema is loaded and the log open. */
  ready: () => void
  /** Something failed in the background: a listener threw, a peer misbehaved, storage failed. */
  error: (err: Error) => void
  /** close() has finished. */
  close: () => void
  [event: string]: (...args: any[]) => void
}

interface Listener {
  rawName: string
  handler: Handler<any>
  subscription: Subscription
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
  private readonly closeHooks: Array<() => Promise<void> | void> = []
  private readonly emits: EmitQueue
  private readonly deliveries: Deliveries

  constructor(db?: DbInput | HyperEmitterOptions | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions)
  constructor(...args: unknown[]) {
    const options: HyperEmitterOptions = {
      ...(new.target as typeof HyperEmitterCore).defaultOptions(),
      ...withoutUndefined(parseArguments(args) as HyperEmitterOptions),
    }
    ;(new.target as typeof HyperEmitterCore).checkOptions(options)
    this.options = options
    this.ownsDb = options.db === undefined
    // A core db has every method the emitter calls on an abstract-level one.
    this.db = (options.db as Db | undefined) ?? (new.target as typeof HyperEmitterCore).defaultDb(options)
    const lock = (new.target as typeof HyperEmitterCore).sharedDbLock(this.db)
    this.log = new Log(this.db, {
      hash: options.hash,
      sharedRecordBuffers: options.sharedRecordBuffers,
      lock,
      ed25519: options.ed25519,
      secretKey: options.secretKey,
    })
    // Synchronous schemas load here, so `messages` is usable at once and a bad
    // schema throws INVALID_SCHEMA from the constructor.
    if (!isStream(options.schema)) this.schema = Codecs.fromSync(options.schema as SchemaSource)
    const schema = () => this.schema
    this.emits = new EmitQueue(this.log, schema, options.maxEventSize ?? DEFAULT_MAX_EVENT_SIZE)
    this.deliveries = new Deliveries({
      log: this.log,
      db: this.db,
      maxQueue: options.maxQueue,
      ready: () => this.readyPromise,
      isReady: () => this.isReady,
      schema,
      reportError: (err) => this.reportError(err),
    })
    this.readyPromise = this.init()
    // Failures reach callers of emit()/ready() and status 'error'; never unhandled.
    this.readyPromise.catch((err) => {
      // A fresh error per caller (per group: its emits share one promise anyway).
      this.emits.failAll(() => notReady(err))
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
   * it on close(). Each runtime entry gives its own: memory-level in Node,
   * IndexedDB under `options.name` in browsers (core/db/ where there is none).
   */
  protected static defaultDb(_options: HyperEmitterOptions): Db {
    throw new HyperEmitterError(ErrorCodes.NOT_SUPPORTED, 'this runtime has no default db: pass one')
  }

  /**
   * How this emitter's log takes turns writing with logs in other contexts
   * on the same db (a browser tab's Web Lock: see LogOptions.lock);
   * none by default.
   */
  protected static sharedDbLock(_db: Db): DbLock | undefined {
    return undefined
  }

  private async init(): Promise<void> {
    if (this.schema === undefined) this.schema = await Codecs.load(this.options.schema as SchemaStream)
    for (const [name, codec] of this.pendingCodecs.splice(0)) this.schema.register(name, codec)
    this.emits.schemaLoaded()
    await this.log.open()
    this.log.onChange((entries) => this.deliveries.onCommit(entries))
    this.isReady = true
    // Before anything that could emit (a 'ready' handler), so emits keep their order.
    this.emits.start()
    for (const listener of this.listeners) listener.subscription.name = this.deliveries.canonical(listener.rawName)
    this.deliveries.start()
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
    if (cb !== undefined && typeof cb !== 'function') throw invalidArgument('callback must be a function')
    if (this.closing) return withCallback(Promise.reject(closedError()), cb)
    if (typeof name !== 'string' || name === '') return withCallback(Promise.reject(invalidArgument('event name must be a non-empty string')), cb)
    if (typeof message === 'function') {
      return withCallback(Promise.reject(invalidArgument('emit(name, message, [cb]): the message is a function; the callback goes after the message')), cb)
    }
    // The callback goes with the emit's group, which calls it without a promise reaction of its own.
    return this.emits.add(name, message, cb)
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
    const invoke = handlerInvoker(handler, this.decodeDelivery)
    const listener: Listener = { rawName: name, handler, subscription: undefined as unknown as Subscription }
    const deliver = once
      ? (d: DecodedDelivery) => {
          this.removeListener(name, handler)
          return invoke(d)
        }
      : invoke
    listener.subscription = this.subscribe(deliver, {
      name: this.isReady ? this.deliveries.canonical(name) : name,
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
    return eventIterator<EmitterEvent<E>>(
      { subscribe: (deliver, o) => this.subscribe(deliver, o), unsubscribe: (sub) => this.unsubscribe(sub), decode: this.decodeDelivery },
      options,
    )
  }

  /** This emitter's writer id (hex), stable across restarts on the same db, unless a fork of it was healed (status 'rechained'). */
  getId(cb?: Callback<string>): Promise<string> {
    return withCallback(
      this.readyPromise.then(() => this.log.writerId),
      cb,
    )
  }

  /**
   * This emitter's Ed25519 public key (hex): what its peers' authenticate
   * hooks see as `publicKey`, and its events' verified author.
   */
  getPublicKey(cb?: Callback<string>): Promise<string> {
    return withCallback(
      this.readyPromise.then(() => toHex(this.log.writerKey.publicKey)),
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
    this.listeners.length = 0
    // Consumers' last positions reach the db before it closes.
    await this.deliveries.closeAll()
    await this.readyPromise.catch(noop)
    // Emits made before close() still land: the log commits what it holds before closing.
    this.emits.seal()
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

  /**
   * For the runtime layers: a subscription fed from the write path, started
   * now if the log is open, else at ready. With a consumer, it starts after
   * the stored position and stores each handled position. Throws
   * INVALID_ARGUMENT, or CLOSED once closing.
   */
  protected subscribe(deliver: (d: DecodedDelivery) => void | PromiseLike<void>, options: SubscribeOptions): Subscription {
    if (this.closing) throw closedError()
    return this.deliveries.subscribe(deliver, options)
  }

  /** For the runtime layers: end a subscription made by subscribe(). */
  protected unsubscribe(subscription: Subscription): void {
    this.deliveries.unsubscribe(subscription)
  }

  /** For the runtime layers: decode (once per event, shared by its listeners) the message of a delivery. */
  protected decode(delivery: DecodedDelivery): unknown {
    return this.deliveries.decode(delivery)
  }

  private readonly decodeDelivery = (d: DecodedDelivery): unknown => this.deliveries.decode(d)
}

function noop(): void {}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}
