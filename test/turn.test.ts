import { afterEach, describe, expect, it, vi } from 'vitest'

async function loadNextTurn(): Promise<() => Promise<void>> {
  vi.resetModules()
  return (await import('../src/core/log/turn.js')).nextTurn
}

/**
 * Whether `turn()` settles only after a chain of 1000 microtasks started
 * before it has run out (a microtask-only wait settles a few links in), and
 * in what order three waits settle.
 */
async function settlesAfterMicrotasks(turn: () => Promise<void>): Promise<{ afterMicrotasks: boolean; order: number[] }> {
  const LINKS = 1000
  let links = 0
  const link = (): void => {
    if (++links < LINKS) queueMicrotask(link)
  }
  queueMicrotask(link)
  const order: number[] = []
  await Promise.all([1, 2, 3].map((i) => turn().then(() => order.push(i))))
  return { afterMicrotasks: links === LINKS, order }
}

describe('nextTurn', () => {
  afterEach(() => {
    vi.unstubAllGlobals()
    vi.resetModules()
  })

  it('uses setImmediate in Node: settles after pending microtasks, in call order, in a later task', async () => {
    const turn = await loadNextTurn()
    expect(await settlesAfterMicrotasks(turn)).toEqual({ afterMicrotasks: true, order: [1, 2, 3] })
    // An immediate queued first has run by then: microtasks alone would not get there.
    let immediateRan = false
    setImmediate(() => (immediateRan = true))
    await turn()
    expect(immediateRan).toBe(true)
  })

  it('keeps working under fake timers installed after it loaded (it schedules, it is no timer)', async () => {
    const turn = await loadNextTurn()
    vi.useFakeTimers()
    try {
      expect(await settlesAfterMicrotasks(turn)).toEqual({ afterMicrotasks: true, order: [1, 2, 3] })
    } finally {
      vi.useRealTimers()
    }
  })

  it('without setImmediate (browsers) settles through a MessageChannel, each wait once, in order', async () => {
    vi.stubGlobal('setImmediate', undefined)
    const posted = vi.spyOn(MessagePort.prototype, 'postMessage')
    const turn = await loadNextTurn()
    expect(await settlesAfterMicrotasks(turn)).toEqual({ afterMicrotasks: true, order: [1, 2, 3] })
    expect(posted).toHaveBeenCalledTimes(3)
    posted.mockRestore()
  })
})
