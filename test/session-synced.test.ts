/**
 * `synced` settles only once every node the peer sent before its Synced is
 * stored, even when our own Synced leaves while those nodes are being stored.
 */
import { describe, expect, it } from 'vitest'
import type { Clock, LogEntry } from '../src/core/types.js'
import { appendMany, connect, makeLog, settle, until, within, type TestLog } from './session-helpers.js'

/** A gate: `wait` resolves once `open()` was called. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => (open = resolve))
  return { wait, open }
}

describe('SyncSession synced', () => {
  it('waits for the nodes before the peer\'s Synced to be stored, whenever our own Synced goes out', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 10, 'a')
    const store = gate()
    const read = gate()
    let storesStarted = 0
    // B as its session sees it: storing waits for `store`, its own catch-up read for `read`.
    const slowB = new Proxy(B, {
      get(target, prop) {
        if (prop === 'addMany') {
          return async (...args: Parameters<TestLog['addMany']>) => {
            storesStarted++
            await store.wait
            return target.addMany(...args)
          }
        }
        if (prop === 'readMissingPages') {
          return async function* (remote: Clock): AsyncGenerator<LogEntry[]> {
            await read.wait
            yield* target.readMissingPages(remote)
          }
        }
        const value = Reflect.get(target, prop, target)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const { a, b, sentByA } = connect(A, slowB)
    let settledWith: number | undefined
    void b.synced.then(() => (settledWith = B.length))
    await until(() => storesStarted === 1 && sentByA.some((f) => f.case === 'synced'), 5000, "A's nodes and Synced")
    await settle(10)
    // B's own catch-up ends now and its Synced leaves while A's nodes are still being stored.
    read.open()
    await settle(20)
    expect(settledWith).toBeUndefined()
    expect(B.length).toBe(0)
    store.open()
    await within(b.synced, 5000, 'synced')
    expect(settledWith).toBe(10)
    a.close()
    b.close()
  })
})
