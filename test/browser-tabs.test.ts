// The tab machinery (src/browser/tabs.ts) run in Node, each "tab" one
// BrowserHyperEmitter in this process: Node's BroadcastChannel, a fake Web
// Locks manager, and a fake IndexedDB (one memory-level per database name,
// each tab with a handle of its own, whose writes a test can hold back).
import type { LogEntry } from '../src/core/types.js'
import { MemoryLevel } from 'memory-level'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { BrowserHyperEmitter, HyperEmitter as BrowserEmitter } from '../src/browser.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { toHex } from '../src/core/bytes/bytes.js'
import { Log } from '../src/core/log/log.js'
import { SyncSession } from '../src/sync/session.js'
import { connectBroadcast, listenBroadcast } from '../src/transport/broadcast.js'
import { until } from './session-helpers.js'

/** The fake IndexedDB's state, shared with the module mock below (which vitest hoists above the imports). */
const idb = vi.hoisted(() => ({
  dbs: new Map<string, unknown>(),
  /** While set, every write (batch) of the fake IndexedDB waits for it. */
  writesHeld: undefined as Promise<void> | undefined,
}))

vi.mock('../src/browser/storage.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/browser/storage.js')>()
  const { MemoryLevel: Memory } = await import('memory-level')
  const { SharedHandle } = await import('./helpers/shared-db.js')
  class FakeIndexedDb extends Memory<Uint8Array, Uint8Array> {
    async _batch(operations: any, options: any): Promise<void> {
      while (idb.writesHeld) await idb.writesHeld
      return (Memory.prototype as any)._batch.call(this, operations, options)
    }
  }
  return {
    ...actual,
    // One store per name, kept for the whole run as IndexedDB keeps it; a handle per tab.
    openIndexedDb(name: string) {
      let db = idb.dbs.get(name) as FakeIndexedDb | undefined
      if (!db) idb.dbs.set(name, (db = new FakeIndexedDb({ storeEncoding: 'view', keyEncoding: 'view', valueEncoding: 'view' })))
      return new SharedHandle(db)
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

/** Hold every fake IndexedDB write until the returned function is called. */
function hold(what: 'writesHeld'): () => void {
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

describe('tabs: one log, one writer, in place', () => {
  it('every tab reads the one log and emits as its one writer; an emit resolves once the db committed it, and every tab hears it', async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    await leader.emitter.emit('Note', { text: 'before the others' })
    const followers = [await tab(name, 'follower'), await tab(name, 'follower')]
    const id = await leader.emitter.getId()
    for (const f of followers) expect(await f.emitter.getId()).toBe(id)
    await until(() => followers.every((f) => f.texts.includes('before the others')), 10_000, 'the history')

    const release = hold('writesHeld')
    const emit = track(followers[0].emitter.emit('Note', { text: 'from a follower' }))
    await sleep(200)
    expect(emit.state).toBe('pending')
    release()
    await until(() => emit.state !== 'pending', 5000, 'the emit')
    expect(emit.state).toBe('resolved')
    const all = [leader, ...followers]
    await until(() => all.every((t) => t.texts.includes('from a follower')), 10_000, 'every tab to hear it')
    expect((followers[0].emitter as any).log.clock()).toEqual(new Map([[id, 2]]))
  })

  it('tabs emitting at once write one chain between them: each event once, the same order in every tab', async () => {
    const name = dbName()
    const tabs = [await tab(name, 'leader'), await tab(name, 'follower'), await tab(name, 'follower')]
    await Promise.all(
      tabs.map(async (t, i) => {
        for (let round = 0; round < 20; round++) {
          await Promise.all(Array.from({ length: 25 }, (_, j) => t.emitter.emit('Note', { text: `tab ${i} ${round} ${j}` })))
        }
      }),
    )
    await until(() => tabs.every((t) => t.texts.length === 1500), 10_000, 'every event in every tab')
    for (const t of tabs) expect(t.texts).toEqual(tabs[0].texts)
    expect(new Set(tabs[0].texts).size).toBe(1500)
    const log: Log = (tabs[1].emitter as any).log
    const seqs: number[] = []
    for await (const e of log.read()) seqs.push(e.seq)
    expect(seqs).toEqual(Array.from({ length: 1500 }, (_, i) => i + 1))
  })

  it('when the leader tab goes, another takes the hubs over, and no emit waits for that', async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    const a = await tab(name, 'follower')
    const b = await tab(name, 'follower')
    const id = await leader.emitter.getId()
    await leader.emitter.emit('Note', { text: 'first' })
    await leader.emitter.close()
    const started = Date.now()
    await Promise.all([a.emitter.emit('Note', { text: 'a, right after' }), b.emitter.emit('Note', { text: 'b, right after' })])
    expect(Date.now() - started).toBeLessThan(300)
    await until(() => a.emitter.role === 'leader' || b.emitter.role === 'leader', 10_000, 'a new leader')
    expect([a.emitter.role, b.emitter.role].sort()).toEqual(['follower', 'leader'])
    expect(await a.emitter.getId()).toBe(id)

    await a.emitter.close()
    await b.emitter.close()
    const again = await tab(name, 'leader')
    await until(() => again.texts.length === 3, 10_000, 'the stored events')
    expect([...again.texts].sort()).toEqual(['a, right after', 'b, right after', 'first'])
    expect(await again.emitter.getId()).toBe(id)
  })

  it("a 0.1.0 leader tab, which wrote alone under the lock it held for its life, holds this version's writes back until it goes", async () => {
    const name = dbName()
    const leader = await tab(name, 'leader')
    await leader.emitter.emit('Note', { text: 'before' })
    let release!: () => void
    const held = new Promise<void>((granted) => {
      void navigator.locks.request(`hyperemitter:${name}`, () => {
        granted()
        return new Promise<void>((r) => (release = r))
      })
    })
    await held
    const emit = track(leader.emitter.emit('Note', { text: 'after' }))
    await sleep(200)
    expect(emit.state).toBe('pending')
    release()
    await until(() => emit.state === 'resolved', 5000, 'the emit')
  })

  it('a tab without coordination writes its database alone', async () => {
    const single = BrowserEmitter({ name: dbName(), schema: SCHEMA, tabs: false })
    cleanups.push(() => single.close())
    await single.emit('Note', { text: 'single' })
    expect(single.role).toBe('single')
  })
})

describe('SyncSession over a broadcast channel to a slow peer', () => {
  it("sends only what the peer's clock lacks, and a live node once the peer's db lets it through", async () => {
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
    const firstTwo: LogEntry[] = []
    for await (const entry of ours.read({ limit: 2 })) firstTwo.push(entry)
    await theirs.addMany(
      firstTwo.map((e) => e.bytes),
      undefined,
      { signatures: await ours.signaturesFor(firstTwo) },
    )

    const client = await connectBroadcast(name)
    const host = await hostChannel
    const mine = new SyncSession(ours, client)
    const peer = new SyncSession(theirs, host)
    cleanups.push(() => {
      mine.close()
      peer.close()
    })
    mine.start()
    peer.start()
    await mine.synced
    // The peer's clock said 2: the catch-up carried seq 3 alone.
    await until(() => peer.stats.nodesReceived === 1, 10_000, 'the catch-up')
    expect(mine.stats.nodesSent).toBe(1)
    const ourWriter = toHex(ours.writer)
    expect(theirs.clock().get(ourWriter)).toBe(3)

    held = new Promise<void>((resolve) => (gate = resolve))
    await ours.append(Uint8Array.of(9))
    await sleep(200)
    expect(theirs.clock().get(ourWriter)).toBe(3)
    expect(peer.stats.nodesReceived).toBe(1)
    held = undefined
    gate!()
    await until(() => peer.stats.nodesReceived === 2, 10_000, 'the live node')
    expect(theirs.clock().get(ourWriter)).toBe(4)
    expect(mine.stats.nodesSent).toBe(2)
  })
})
