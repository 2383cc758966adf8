/**
 * The seed's Node-style callbacks beside promises: every public method that
 * takes a callback returns the same outcome as a promise.
 */
import { ErrorCodes, HyperEmitterError } from './errors.js'

/** Node-style completion callback, as the seed's API takes. */
export type Callback<T = void> = (err: Error | null, value?: T) => void

/**
 * Return `promise` to promise users, and settle `cb` too when one is given. With a
 * callback, a failure goes to the callback only: the returned promise is marked
 * handled so no unhandled rejection escapes.
 */
export function withCallback<T>(promise: Promise<T>, cb: Callback<T> | undefined): Promise<T> {
  if (cb === undefined) return promise
  if (typeof cb !== 'function') {
    promise.catch(() => {})
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'callback must be a function')
  }
  promise.then(
    (value) => cb(null, value),
    (err) => cb(err instanceof Error ? err : new Error(String(err))),
  )
  promise.catch(() => {})
  return promise
}
