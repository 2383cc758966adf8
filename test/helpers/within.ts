/**
 * Bounds a promise in time so a hang fails (a test, a bench run) instead of
 * stalling it. `what` may be a function, to say how far things got.
 */
export function within<T>(p: Promise<T>, ms = 10_000, what: string | (() => string) = 'promise'): Promise<T> {
  let timer: ReturnType<typeof setTimeout>
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`)), ms)
    }),
  ])
}
