/**
 * The emits waiting to be stored: encoded at once, grouped per turn (one
 * appendAll() and one promise per group, since one batch stores a group
 * whole or not at all), and held while a streamed schema loads or the log opens.
 */
import { PackedBytes } from '../bytes/packed.js'
import { addEnvelope, envelopeSizeOf } from '../codec/envelope.js'
import type { Encoded } from '../codec/plain-encode.js'
import type { Codecs } from '../codec/schema.js'
import type { Log, AppendSink } from '../log/log.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { type Callback, withCallback } from '../callback.js'

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
 * The emits of one turn (up to MAX_GROUP): a promise per emit, alive until
 * its batch committed, was what garbage collection spent most on with many
 * emits in flight.
 *
 * Callers who take the outcome elsewhere (a callback; an emit made before
 * the schema loaded, with a promise of its own) share a second promise,
 * marked handled. Handling the first one for them would hide a failure from
 * a promise caller in the same turn who never handled it.
 *
 * Callbacks are kept in a list and called from one microtask per group: a
 * promise reaction per callback (two closures and two microtasks per emit)
 * was a fifth of a fresh process's time for a burst of seed-style emits.
 */
class EmitGroup implements AppendSink {
  /** The envelopes, packed. */
  readonly values: PackedBytes
  private forPromises: Outcome | undefined
  private forObservers: Outcome | undefined
  private callbacks: Callback[] | undefined

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

  callback(cb: Callback): void {
    ;(this.callbacks ??= []).push(cb)
  }

  appended(): void {
    this.forPromises?.resolve()
    this.forObservers?.resolve()
    this.settle(null)
  }

  failed(err: unknown): void {
    this.forPromises?.reject(err)
    this.forObservers?.reject(err)
    this.settle(err instanceof Error ? err : new Error(String(err)))
  }

  // In a microtask, as a promise reaction was: after the listeners, outside
  // the commit loop. A callback that throws stops none of the others; its
  // error is an unhandled rejection, as it was.
  private settle(err: Error | null): void {
    const callbacks = this.callbacks
    if (callbacks === undefined) return
    this.callbacks = undefined
    queueMicrotask(() => {
      for (const cb of callbacks) {
        try {
          cb(err)
        } catch (thrown) {
          void Promise.reject(thrown)
        }
      }
    })
  }
}

/** An emit made before a streamed schema loaded: encoded once it has. */
interface EarlyEmit {
  name: string
  message: unknown
  resolve: () => void
  reject: (err: unknown) => void
}

export class EmitQueue {
  /** Emits made before a streamed schema loaded, in order. */
  private early: EarlyEmit[] = []
  /** The group this turn's emits join; handed to the log at the end of the turn, or once full. */
  private group: EmitGroup | undefined
  /** The bytes the last group held, to size the next rather than grow it ten times in a burst. */
  private lastGroupBytes = 0
  /** Full groups made before the log opened, waiting for it (the open group waits too). */
  private sealed: EmitGroup[] = []
  private started = false
  private readonly endTurn = (): void => {
    if (this.started) this.seal()
  }

  constructor(
    private readonly log: Log,
    private readonly schema: () => Codecs | undefined,
    /** Larger events are refused (EVENT_TOO_LARGE): no peer could take them. */
    private readonly maxEventSize: number,
  ) {}

  /** An emit (arguments checked): its outcome, also to `cb` when given (the promise then marked handled). */
  add(name: string, message: unknown, cb: Callback | undefined): Promise<void> {
    if (this.schema() === undefined) {
      const early = new Promise<void>((resolve, reject) => this.early.push({ name, message, resolve, reject }))
      return cb === undefined ? early : withCallback(early, cb)
    }
    return this.enqueue(name, message, cb)
  }

  /** The schema loaded: the emits made meanwhile go first, ahead of any made from now on. */
  schemaLoaded(): void {
    for (const e of this.early.splice(0)) this.enqueue(e.name, e.message, undefined, true).then(e.resolve, e.reject)
  }

  /** The log is open: hand it what waited, in order, before anything else could emit. */
  start(): void {
    this.started = true
    for (const g of this.sealed.splice(0)) this.log.appendAll(g.values, g)
    this.seal()
  }

  /** The emitter could not start: each waiting emit (each group) fails with an error of its own. */
  failAll(error: () => unknown): void {
    for (const e of this.early.splice(0)) e.reject(error())
    if (this.group !== undefined) this.sealed.push(this.group)
    this.group = undefined
    for (const g of this.sealed.splice(0)) g.failed(error())
  }

  /** Close the open group: hand it to the log, or before start keep it for then. */
  seal(): void {
    const group = this.group
    if (group === undefined) return
    this.group = undefined
    // An eighth more, as envelopes in a run grow (a counter gains a digit).
    const held = group.values.byteLength
    this.lastGroupBytes = held + (held >> 3)
    if (this.started) this.log.appendAll(group.values, group)
    else this.sealed.push(group)
  }

  /**
   * Encode one event now (a bad one is refused alone, and changing `message`
   * afterwards changes nothing) and add it to this turn's group.
   */
  private enqueue(name: string, message: unknown, cb: Callback | undefined, observed = cb !== undefined): Promise<void> {
    let canonical: string
    let payload: Encoded
    try {
      const schema = this.schema()!
      canonical = schema.canonicalName(name)
      // In the encoder's own buffer: copied into the group below, before any other encode.
      payload = schema.encodeShared(name, message)
    } catch (err) {
      return refused(err, cb)
    }
    const size = envelopeSizeOf(canonical, payload.length)
    if (size > this.maxEventSize) {
      const max = this.maxEventSize
      return refused(
        new HyperEmitterError(ErrorCodes.EVENT_TOO_LARGE, `event ${canonical} of ${size} bytes exceeds maxEventSize (${max} bytes)`, {
          details: { name: canonical, size, maxEventSize: max },
        }),
        cb,
      )
    }
    let group = this.group
    if (group === undefined) {
      group = this.group = new EmitGroup(this.lastGroupBytes)
      queueMicrotask(this.endTurn)
    }
    addEnvelope(group.values, canonical, payload.bytes, payload.length)
    const outcome = observed ? group.observed() : group.promise()
    if (cb !== undefined) group.callback(cb)
    if (group.values.length >= MAX_GROUP) this.seal()
    return outcome
  }
}

/** A refused emit's outcome: a rejected promise, and to `cb` when given. */
function refused(err: unknown, cb: Callback | undefined): Promise<void> {
  return withCallback(Promise.reject(err), cb)
}
