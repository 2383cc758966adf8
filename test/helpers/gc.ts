import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// V8 exposes gc() to contexts made after the flag is set: a test can force
// a full collection without running the whole suite with --expose-gc.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * Runs a full garbage collection once the current job is over (a WeakRef's
 * target stays alive until then, whatever refers to it).
 */
export async function collectGarbage(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
  gc()
}
