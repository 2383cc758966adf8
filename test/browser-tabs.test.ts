// The tab machinery (src/browser/tabs.ts) run in Node, each "tab" one
// BrowserHyperEmitter in this process: Node's BroadcastChannel, a fake Web
// Locks manager, and a fake IndexedDB (one memory-level per database name,
// kept across close and open, whose writes and opens a test can hold back).
// Pins that a follower's emit resolves only once the host log stored the
// event, not when the follower's memory log has it.
import { MemoryLevel } from 'memory-level'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { BrowserHyperEmitter, HyperEmitter as BrowserEmitter } from '../src/browser.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { Log } from '../src/core/log/log.js'
import { SyncSession } from '../src/sync/session.js'
import { connectBroadcast, listenBroadcast } from '../src/transport/broadcast.js'
import { until } from './session-helpers.js'

/** The fake IndexedDB's state, shared with the module mock below (which vitest hoists above the imports). */
const idb = vi.hoisted(() => ({
  dbs: new Map<string, unknown>(),
  /** While set, every write (batch) of the fake IndexedDB waits for it. */
  writesHeld: undefined as Promise<void> | undefined,
  /** While set, opening a fake IndexedDB database waits for it. */
  opensHeld: undefined as Promise<void> | undefined,
}))

vi.mock('../src/browser/storage.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/browser/storage.js')>()
  const { MemoryLevel: Memory } = await import('memory-level')
  class FakeIndexedDb extends Memory<Uint8Array, Uint8Array> {
    async _open(options: any): Promise<void> {
      while (idb.opensHeld) await idb.opensHeld
      return (Memory.prototype as any)._open.call(this, options)
    }

    async _batch(operations: any, options: any): Promise<void> {
      while (idb.writesHeld) await idb.writesHeld
      return (Memory.prototype as any)._batch.call(this, operations, options)
    }
  }
  return {
    ...actual,
    // One database object per name: memory-level keeps its data across close() and open(), as IndexedDB does.
    openIndexedDb(name: string) {
      let db = idb.dbs.get(name) as FakeIndexedDb | undefined
      if (!db) idb.dbs.set(name, (db = new FakeIndexedDb({ storeEncoding: 'view', keyEncoding: 'view', valueEncoding: 'view' })))
      return db
    },
  }
})

/** Exclusive Web Locks, as much of navigator.locks as the library uses (ifAvailable, signal, queueing). */
class FakeLocks {
  private readonly held = new Set<string>()
  private readonly queues = new Map<string, Array<() => void>>()

  request(name: string, optionsOrCallback: any, maybeCallback?: any): Promise<unknown> {
    const options: { ifAvailable?: boolean; signal?: AbortSignal } = typeof optionsOrCallback === 'function' ? {} : optionsOrCallback
    const callback: (lock: { name: string } | null) => unknown = typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback
    const queue = this.queues.get(name) ?? []
    this.queues.set(name, queue)
    return new Promise((resolve, reject) => {
      if (options.signal?.aborted) return reject(new DOMException('aborted', 'AbortError'))
      const run = (): void => {
        this.held.add(name)
        Promise.resolve()
          .then(() => callback({ name }))
          .then(resolve, reject)
          .finally(() => {
            this.held.delete(name)
            queue.shift()?.()
          })
      }
      const free = !this.held.has(name) && queue.length === 0
      if (free) return run()
      if (options.ifAvailable) {
        Promise.resolve()
          .then(() => callback(null))
          .then(resolve, reject)
        return
      }
      queue.push(run)
      options.signal?.addEventListener('abort', () => {
        const at = queue.indexOf(run)
        if (at < 0) return
        queue.splice(at, 1)
        reject(new DOMException('aborted', 'AbortError'))
      })
    })
  }
}

const SCHEMA = 'syntax = "proto3"; message Note { string text = 1; }'
const cleanups: Array<() => Promise<void> | void> = []
let counter = 0

beforeAll(() => {
  vi.stubGlobal('navigator', { locks: new FakeLocks(), onLine: true })
  // Only looked at (defaultDb picks tab coordination where it exists); the mock above stands in for it.
  vi.stubGlobal('indexedDB', {})
})
afterAll(() => {
  vi.unstubAllGlobals()
})
/** Releases of what hold() holds, for a test that fails before it lets go. */
const releases: Array<() => void> = []
afterEach(async () => {
  for (const release of releases.splice(0)) release()
  for (const c of cleanups.splice(0).reverse()) await c()
})

function dbName(): string {
  return `tabs-${process.pid}-${Date.now()}-${counter++}`
}

interface Tab {
  emitter: BrowserHyperEmitter
  /** Texts of every Note this tab's listener saw, from the beginning. */
  texts: string[]
}

async function tab(name: string, role?: 'leader' | 'follower'): Promise<Tab> {
  const emitter = BrowserEmitter({ name, schema: SCHEMA })
  cleanups.push(() => emitter.close().catch(() => {}))
  const texts: string[] = []
  emitter.on('Note', (m: { text: string }) => void texts.push(m.text), { from: 'beginning' })
  await emitter.ready()
  await until(() => emitter.role !== undefined, 10_000, 'a role')
  if (role) expect(emitter.role).toBe(role)
  return { emitter, texts }
}

/** Hold every fake IndexedDB write (or open) until the returned function is called. */
function hold(what: 'writesHeld' | 'opensHeld'): () => void {
  let release!: () => void
  idb[what] = new Promise<void>((resolve) => (release = resolve))
  const done = (): void => {
    idb[what] = undefined
    release()
  }
  releases.push(done)
  return done
}

/** A promise's outcome, readable synchronously. */
function track(promise: Promise<unknown>): { state: 'pending' | 'resolved' | 'rejected'; error?: unknown } {
  const outcome: { state: 'pending' | 'resolved' | 'rejected'; error?: unknown } = { state: 'pending' }
  promise.then(
    () => (outcome.state = 'resolved'),
    (error) => {
      outcome.state = 'rejected'
      outcome.error = error
    },
  )
  return outcome
}


function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** The highest seq of `writer` in the log this emitter hosts for the other tabs (the fake IndexedDB one). */
function hostSeq(leader: BrowserHyperEmitter, writer: string): number {
  const coordinator = (leader as any).tabs
  const log: Log = coordinator.store?.log ?? (leader as any).log
  return log.clock().get(writer) ?? 0
}

describe('tabs: a follower emit resolves once the host log stored it', () => {
  it('waits for the leader to commit the event to IndexedDB, then resolves (local listeners see it at once)', async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    const follower = await tab(name, 'follower')
    await leader.emitter.emit('Note', { text: 'hello' })
    await until(() => follower.texts.includes('hello'), 10_000, 'the link to the leader')
    const writer = await follower.emitter.getId()

    const release = hold('writesHeld')
    const emit = track(follower.emitter.emit('Note', { text: 'from the follower' }))
    await until(() => follower.texts.includes('from the follower'), 10_000, 'the local listener')
    // The leader has the frame and is writing it; IndexedDB has not committed it.
    await sleep(300)
    expect(emit.state).toBe('pending')
    expect(hostSeq(leader.emitter, writer)).toBe(0)

    release()
    await until(() => emit.state !== 'pending', 5000, 'the emit to settle')
    expect(emit.state).toBe('resolved')
    // By the time the follower's emit resolved, the leader's log had committed it.
    expect(hostSeq(leader.emitter, writer)).toBe(1)
    await until(() => leader.texts.includes('from the follower'), 10_000, 'the leader listener')

    // Many in flight at once resolve as the acks come, all of them.
    const emits = Array.from({ length: 500 }, (_, i) => follower.emitter.emit('Note', { text: `burst ${i}` }))
    await Promise.all(emits)
    expect(hostSeq(leader.emitter, writer)).toBe(501)
    expect((follower.emitter as any).tabs.gate.size).toBe(0)
  })

  it('the leader and a tab without coordination resolve as before', async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    const release = hold('writesHeld')
    const emit = track(leader.emitter.emit('Note', { text: 'held by IndexedDB' }))
    await sleep(100)
    expect(emit.state).toBe('pending')
    release()
    await until(() => emit.state === 'resolved', 10_000, 'the leader emit')
    const single = BrowserEmitter({ name: dbName(), schema: SCHEMA, tabs: false })
    cleanups.push(() => single.close())
    await single.emit('Note', { text: 'single' })
    expect(single.role).toBe('single')
  })

  it('while no tab hosts the log, follower emits wait, and resolve once the new leader stored them', async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    const a = await tab(name, 'follower')
    const b = await tab(name, 'follower')
    await leader.emitter.emit('Note', { text: 'first' })
    await until(() => a.texts.includes('first') && b.texts.includes('first'), 10_000, 'both links')
    const writers = { a: await a.emitter.getId(), b: await b.emitter.getId() }

    // The next leader cannot open IndexedDB yet: nobody hosts the log.
    const release = hold('opensHeld')
    await leader.emitter.close()
    const fromA = track(a.emitter.emit('Note', { text: 'a, no host' }))
    const fromB = track(b.emitter.emit('Note', { text: 'b, no host' }))
    await sleep(300)
    expect([fromA.state, fromB.state]).toEqual(['pending', 'pending'])

    release()
    await until(() => fromA.state !== 'pending' && fromB.state !== 'pending', 10_000, 'both emits')
    expect([fromA.state, fromB.state]).toEqual(['resolved', 'resolved'])
    const [newLeader, follower] = a.emitter.role === 'leader' ? [a.emitter, b.emitter] : [b.emitter, a.emitter]
    expect([newLeader.role, follower.role]).toEqual(['leader', 'follower'])
    expect([hostSeq(newLeader, writers.a), hostSeq(newLeader, writers.b)]).toEqual([1, 1])

    // What they resolved for is in "IndexedDB": a tab opened on it after everyone closed reads it.
    // (The follower first: closed after the leader, it could be granted the lock on its way out.)
    await follower.close()
    await newLeader.close()
    const again = await tab(name, 'leader')
    await until(() => again.texts.length === 3, 10_000, 'the stored events')
    expect([...again.texts].sort()).toEqual(['a, no host', 'b, no host', 'first'])
  })

  it('a follower closing with emits in flight waits a little for the host; those it could not hand on reject CLOSED', async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    const follower = await tab(name, 'follower')
    await leader.emitter.emit('Note', { text: 'hello' })
    await until(() => follower.texts.includes('hello'), 10_000, 'the link to the leader')

    // emit() then close() at once: close keeps the link until the host stored it.
    const flushed = track(follower.emitter.emit('Note', { text: 'emit then close' }))
    await follower.emitter.close()
    expect(flushed.state).toBe('resolved')
    expect(leader.texts).toContain('emit then close')

    const other = await tab(name, 'follower')
    await until(() => other.texts.includes('emit then close'), 10_000, 'the link of a second follower')
    const release = hold('writesHeld')
    const lost = track(other.emitter.emit('Note', { text: 'never acked' }))
    const started = Date.now()
    await other.emitter.close()
    expect(Date.now() - started).toBeLessThan(5000)
    await until(() => lost.state !== 'pending', 10_000, 'the emit to settle')
    expect(lost.state).toBe('rejected')
    expect(isHyperEmitterError(lost.error, ErrorCodes.CLOSED)).toBe(true)
    release()
  })
})

describe('SyncSession.storedByPeer', () => {
  it("follows the peer's clock and its acks of our nodes, and fires 'stored' as it grows", async () => {
    const name = `stored-${process.pid}-${Date.now()}`
    const accepted: Array<(c: any) => void> = []
    const hostChannel = new Promise<any>((resolve) => accepted.push(resolve))
    const stop = listenBroadcast(name, (c) => accepted[0](c))
    cleanups.push(stop)
    const ours = new Log(new MemoryLevel())
    await ours.open()
    let gate: (() => void) | undefined
    let held: Promise<void> | undefined
    class SlowDb extends MemoryLevel<Uint8Array, Uint8Array> {
      async _batch(operations: any, options: any): Promise<void> {
        while (held) await held
        return (MemoryLevel.prototype as any)._batch.call(this, operations, options)
      }
    }
    const theirs = new Log(new SlowDb({ keyEncoding: 'view', valueEncoding: 'view' }))
    await theirs.open()
    for (let i = 0; i < 3; i++) await ours.append(Uint8Array.of(i))
    const firstTwo: Uint8Array[] = []
    for await (const entry of ours.read({ limit: 2 })) firstTwo.push(entry.bytes)
    await theirs.addMany(firstTwo)

    const client = await connectBroadcast(name)
    const host = await hostChannel
    const mine = new SyncSession(ours, client)
    const peer = new SyncSession(theirs, host)
    const stored: number[] = []
    mine.on('stored', (seq: number) => void stored.push(seq))
    cleanups.push(() => {
      mine.close()
      peer.close()
    })
    mine.start()
    peer.start()
    await mine.synced
    // The peer's clock said 2, its ack of the catch-up frame made it 3.
    await until(() => mine.storedByPeer === 3, 10_000, 'the catch-up ack')
    expect(stored).toEqual([2, 3])

    held = new Promise<void>((resolve) => (gate = resolve))
    await ours.append(Uint8Array.of(9))
    await sleep(200)
    expect(mine.storedByPeer).toBe(3)
    held = undefined
    gate!()
    await until(() => mine.storedByPeer === 4, 10_000, 'the live ack')
    expect(stored).toEqual([2, 3, 4])
  })
})
