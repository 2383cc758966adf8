import { ConsumerCursor } from '../../core/emitter/consumer.js'
import type { EventMap } from '../../core/emitter.js'
import type { Callback } from '../../core/callback.js'
import { NodeHyperEmitter } from '../emitter.js'

/** One event as the CLI prints it: its change number, canonical name and decoded payload. */
export interface CliEvent {
  change: number
  name: string
  /** The decoded message; undefined when decoding failed (see `error`). */
  payload?: unknown
  error?: unknown
}

/** A running follow(): where it started, how far it got. */
export interface Follower {
  /** The change number it started after. */
  readonly start: number
  /** The change number of the last event whose handler finished. */
  readonly position: number
  /** Resolves once the handler finished with every event up to `change`. */
  reached(change: number): Promise<void>
  stop(): void
}

/**
 * The Node emitter plus what the CLI needs and the public API leaves out:
 * the log's length (to start "from now" without a race, and to know when an
 * export has caught up), change numbers on delivered events, and the emits
 * still in flight (to flush before exiting).
 */
export class CliEmitter extends NodeHyperEmitter {
  private readonly inFlight = new Set<Promise<void>>()

  /** Highest change number committed (0 when empty); valid once ready() resolved. */
  get length(): number {
    return this.log.length
  }

  override emit<K extends keyof EventMap & string>(name: K, message: EventMap[K], cb?: Callback): Promise<void> {
    const result = super.emit(name, message, cb)
    const settled = result.then(noop, noop)
    this.inFlight.add(settled)
    void settled.then(() => this.inFlight.delete(settled))
    return result
  }

  /** Resolves once every emit() made so far has been stored or refused. */
  async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight)
  }

  /**
   * Call `handler` with every event after `from` (a change number), or after
   * the consumer's stored position when it has one, in log order, one at a
   * time. A promise returned by the handler holds back the next event, and
   * the consumer's position moves only once it resolved (never, if it does
   * not). Call after ready().
   */
  async follow(options: { consumer?: string; from: number }, handler: (event: CliEvent) => void | Promise<void>): Promise<Follower> {
    const { consumer } = options
    const saved = consumer === undefined ? undefined : await new ConsumerCursor(this.db, consumer, noop).load()
    const start = saved ?? options.from
    let position = start
    const waiters: Array<{ change: number; resolve: () => void }> = []
    const finished = (change: number) => {
      position = change
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].change <= change) waiters.splice(i, 1)[0].resolve()
      }
    }
    const subscription = this.subscribe(
      (d) => {
        let event: CliEvent
        try {
          event = { change: d.change, name: d.name, payload: this.decode(d) }
        } catch (error) {
          event = { change: d.change, name: d.name, error }
        }
        const result = handler(event)
        if (result === undefined) return finished(d.change)
        return result.then(() => finished(d.change))
      },
      { consumer, from: start },
    )
    return {
      start,
      get position() {
        return position
      },
      reached: (change) => (change <= position ? Promise.resolve() : new Promise((resolve) => waiters.push({ change, resolve }))),
      stop: () => this.unsubscribe(subscription),
    }
  }

  /** Forget a consumer's stored position (--from-scratch); call before follow(). */
  async resetConsumer(name: string): Promise<void> {
    await new ConsumerCursor(this.db, name, (err) => this.reportError(err)).reset()
  }
}

function noop(): void {}
