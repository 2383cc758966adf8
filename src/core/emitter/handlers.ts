/**
 * How the emitter calls what users give it: a listener taking `done` or
 * returning a promise (holding back its own queue), and events() as an
 * async iterator whose loop's pace holds back only itself.
 */
import type { DecodedDelivery, SubscribeOptions } from './deliveries.js'
import type { Subscription } from './subscription.js'

/** Called with each message; taking `done`, or returning a promise, holds back the next one. */
// Returns unknown: `m => list.push(m)` must type-check; only a returned thenable gates.
export type Handler<T> = (message: T, done: (err?: unknown) => void) => unknown

type Deliver = (d: DecodedDelivery) => void | PromiseLike<void>

/** A subscription's deliver function for `handler`; `decode` gives a delivery's message. */
export function handlerInvoker(handler: Handler<any>, decode: (d: DecodedDelivery) => unknown): Deliver {
  if (handler.length >= 2) {
    return (d) => {
      const message = decode(d)
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
  return (d) => (handler as (m: unknown) => void | PromiseLike<void>)(decode(d))
}

/** What eventIterator() subscribes through. */
export interface IteratorSource {
  subscribe(deliver: Deliver, options: SubscribeOptions): Subscription
  unsubscribe(subscription: Subscription): void
  decode(d: DecodedDelivery): unknown
}

/**
 * Every event as `{ name, payload }` from a subscription made now. A durable
 * consumer's event counts as handled when the loop asks for the next one, so
 * it reads one at a time; otherwise it reads ahead a little.
 */
export function eventIterator<T extends { name: string; payload: unknown }>(
  source: IteratorSource,
  options: Pick<SubscribeOptions, 'from' | 'consumer'>,
): AsyncIterableIterator<T> {
  const durable = options.consumer !== undefined
  const limit = durable ? 1 : 256
  const buffer: Array<{ event: T; handled?: () => void }> = []
  let wake: (() => void) | undefined
  let resumeProducer: (() => void) | undefined
  let handledPrevious: (() => void) | undefined
  let finished = false
  const finish = () => {
    finished = true
    wake?.()
  }
  const subscription = source.subscribe(
    (d) => {
      const event = { name: d.name, payload: source.decode(d) } as T
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
  const iterator: AsyncIterableIterator<T> = {
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
      source.unsubscribe(subscription)
      finish()
      return { value: undefined, done: true }
    },
    [Symbol.asyncIterator]() {
      return iterator
    },
  }
  return iterator
}
