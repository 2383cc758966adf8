/**
 * Forks end to end, over TCP and WebSocket on 127.0.0.1, with classic-level
 * dbs copied on disk: a restored backup (issue #14's scenario 1), two copies
 * of one db online at once, and a writer that only lags behind its own
 * chain. Every event reaches every peer's listeners exactly once, and no
 * peer loops on a refused exchange.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { HyperEmitter, type Db, type Peer } from '../src/index.js'
import type { Log } from '../src/core/log/log.js'
import { until, within } from './session-helpers.js'
import { collectEscapes } from './helpers/watch.js'

const SCHEMA = readFileSync(new URL('./fixtures/messages.proto', import.meta.url), 'utf8')
const HOST = '127.0.0.1'

type Emitter = HyperEmitter

interface Transport {
  name: 'tcp' | 'websocket'
  connect(e: Emitter, port: number): Promise<Peer>
}
const transports: Transport[] = [
  { name: 'tcp', connect: (e, port) => e.connect(port, HOST) },
  { name: 'websocket', connect: (e, port) => e.connect(`ws://${HOST}:${port}/`) },
]

const open: Emitter[] = []
const dbs: Db[] = []
const dirs: string[] = []

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-forks-'))
  dirs.push(dir)
  return dir
}

function dbAt(dir: string): Db {
  const db = new ClassicLevel(dir)
  dbs.push(db)
  return db
}

/** Counts of what a peer's status said, to show nothing loops. */
interface Watch {
  errors: unknown[]
  connected: number
  refused: unknown[]
  forks: unknown[]
  rechained: unknown[]
}

function make(db: Db | null = null): { e: Emitter; seen: string[]; watch: Watch } {
  const e = HyperEmitter(db, SCHEMA, { reconnectTimeout: 50 })
  open.push(e)
  const seen: string[] = []
  e.on('Hello', (m: { from: string; message: string }) => {
    seen.push(m.message)
  })
  const watch: Watch = { errors: [], connected: 0, refused: [], forks: [], rechained: [] }
  e.status.on('error', () => {})
  e.status.on('peer:error', (i: { error: unknown }) => watch.errors.push(i.error))
  e.status.on('peer:connected', () => watch.connected++)
  e.status.on('peer:refused', (i: unknown) => watch.refused.push(i))
  e.status.on('fork', (i: unknown) => watch.forks.push(i))
  e.status.on('rechained', (i: unknown) => watch.rechained.push(i))
  return { e, seen, watch }
}

function logOf(e: Emitter): Log {
  return (e as unknown as { log: Log }).log
}

/** Every event message in the emitter's log, from the beginning, sorted. */
async function messages(e: Emitter): Promise<string[]> {
  const n = logOf(e).length
  const out: string[] = []
  if (n === 0) return out
  let read = 0
  for await (const event of e.events({ from: 'beginning' })) {
    // Other kinds (a hub's announcements) are in the log too.
    if ((event as { name: string }).name === 'Hello') out.push((event as { payload: { message: string } }).payload.message)
    if (++read === n) break
  }
  return out.sort()
}

/** Resolves once every emitter's log holds exactly `expected` (bounded in time). */
async function holdsAll(emitters: Emitter[], expected: string[], what: string): Promise<void> {
  const want = [...expected].sort().join(',')
  const deadline = Date.now() + 15_000
  let last: string[] = []
  while (Date.now() < deadline) {
    last = (await Promise.all(emitters.map((e) => messages(e)))).map((m) => m.join(','))
    if (last.every((m) => m === want)) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${what}: every log should hold ${want}; they hold ${last.join(' | ')}`)
}

/** Waits `ms` while recording, then says how much of each happened: a loop would keep counting. */
async function quietFor(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

const once = (seen: string[]) => {
  const counts = new Map<string, number>()
  for (const m of seen) counts.set(m, (counts.get(m) ?? 0) + 1)
  return [...counts.values()].every((n) => n === 1)
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close().catch(() => {})))
  await Promise.all(dbs.splice(0).map((d) => d.close().catch(() => {})))
})
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const escaped = collectEscapes()
afterAll(() => {
  expect(escaped).toEqual([])
})

describe.each(transports)('forks over $name', (T) => {
  it("issue #14's restored backup: the hub and a third peer end with every event of W and of the copy, each delivered once, and nobody loops", async () => {
    const hub = make()
    const { port } = await hub.e.listen(0, HOST)

    // W emits and syncs to the hub; then W is closed and its db copied.
    const wDir = newDir()
    let wDb = dbAt(wDir)
    const w = make(wDb)
    await w.e.emit('Hello', { from: 'W', message: 'w1' })
    await within((await T.connect(w.e, port)).synced, 10_000, 'W synced')
    await w.e.close()
    await wDb.close()
    const cDir = newDir()
    cpSync(wDir, cDir, { recursive: true })

    // The copy emits and connects.
    const c = make(dbAt(cDir))
    await c.e.emit('Hello', { from: 'C', message: 'c2' })
    await within((await T.connect(c.e, port)).synced, 10_000, 'the copy synced')

    // The original reopens, emits more, connects; a third peer joins.
    wDb = dbAt(wDir)
    const w2 = make(wDb)
    const oldId = await w2.e.getId()
    await w2.e.emit('Hello', { from: 'W', message: 'w2' })
    await w2.e.emit('Hello', { from: 'W', message: 'w3' })
    await T.connect(w2.e, port)
    const third = make()
    await T.connect(third.e, port)

    const all = ['w1', 'c2', 'w2', 'w3']
    await holdsAll([hub.e, third.e, w2.e, c.e], all, 'after the fork healed')
    // W moved to a new chain of the same key; the copy kept the old id.
    expect(w2.watch.rechained).toHaveLength(1)
    expect(await w2.e.getId()).not.toBe(oldId)
    expect(await c.e.getId()).toBe(oldId)
    expect(await w2.e.getPublicKey()).toBe(await c.e.getPublicKey())

    // Each listener got each event it heard once; those listening from the start heard all.
    await until(() => hub.seen.length >= 4 && third.seen.length >= 4, 10_000, 'deliveries')
    await quietFor(1500)
    expect([...hub.seen].sort()).toEqual([...all].sort())
    expect([...third.seen].sort()).toEqual([...all].sort())
    expect([...w2.seen].sort()).toEqual(['c2', 'w2', 'w3'])
    expect([...c.seen].sort()).toEqual(['c2', 'w2', 'w3'])
    for (const p of [hub, third, w2, c]) expect(once(p.seen)).toBe(true)

    // No loop: the fork was reported (by W, which healed it; the hub too if it met W's branch first),
    // and a bounded window later nothing keeps failing or reconnecting.
    expect(w2.watch.forks).toHaveLength(1)
    const before = { errors: w2.watch.errors.length, connected: w2.watch.connected, hubErrors: hub.watch.errors.length, hubRefused: hub.watch.refused.length }
    await quietFor(1500)
    expect(w2.watch.errors.length).toBe(before.errors)
    expect(w2.watch.connected).toBe(before.connected)
    expect(w2.watch.connected).toBeLessThanOrEqual(2)
    expect(hub.watch.errors.length).toBe(before.hubErrors)
    expect(hub.watch.refused.length).toBe(before.hubRefused)
    // And it keeps flowing: a new event from the moved writer reaches everyone once.
    await w2.e.emit('Hello', { from: 'W', message: 'w4' })
    await holdsAll([hub.e, third.e, c.e], [...all, 'w4'], 'after the heal')
    await until(() => c.seen.includes('w4') && third.seen.includes('w4'), 10_000, 'w4 delivered')
    expect(once(c.seen) && once(third.seen) && once(hub.seen)).toBe(true)
  })

  it('two copies of one db online at once, both emitting: everything reaches everyone once', async () => {
    const hub = make()
    const { port } = await hub.e.listen(0, HOST)
    const aDir = newDir()
    const aDb = dbAt(aDir)
    const first = make(aDb)
    await first.e.emit('Hello', { from: 'A', message: 'x1' })
    await first.e.close()
    await aDb.close()
    const bDir = newDir()
    cpSync(aDir, bDir, { recursive: true })
    const a = make(dbAt(aDir))
    const b = make(dbAt(bDir))
    await T.connect(a.e, port)
    await T.connect(b.e, port)
    // Both write seq 2, 3 and 4 of one writer id while connected.
    for (let i = 2; i <= 4; i++) {
      await a.e.emit('Hello', { from: 'A', message: `x${i}` })
      await b.e.emit('Hello', { from: 'B', message: `y${i}` })
    }
    const third = make()
    await T.connect(third.e, port)
    const all = ['x1', 'x2', 'x3', 'x4', 'y2', 'y3', 'y4']
    await holdsAll([hub.e, third.e, a.e, b.e], all, 'both copies')
    await quietFor(1000)
    for (const p of [hub, third, a, b]) expect(once(p.seen)).toBe(true)
    expect([...third.seen].sort()).toEqual(all)
    // Exactly one of the copies moved.
    expect(a.watch.rechained.length + b.watch.rechained.length).toBe(1)
    expect(await a.e.getId()).not.toBe(await b.e.getId())
    const errors = a.watch.errors.length + b.watch.errors.length
    await quietFor(1500)
    expect(a.watch.errors.length + b.watch.errors.length).toBe(errors)
  })

  it('a writer that only lags behind its own chain takes its nodes back and continues: no fork', async () => {
    const hub = make()
    const { port } = await hub.e.listen(0, HOST)
    const wDir = newDir()
    const wDb = dbAt(wDir)
    const w = make(wDb)
    await w.e.emit('Hello', { from: 'W', message: 'w1' })
    const backupDir = newDir()
    await w.e.close()
    await wDb.close()
    cpSync(wDir, backupDir, { recursive: true })
    // The original goes on and publishes two more.
    const w2 = make(dbAt(wDir))
    await w2.e.emit('Hello', { from: 'W', message: 'w2' })
    await w2.e.emit('Hello', { from: 'W', message: 'w3' })
    await within((await T.connect(w2.e, port)).synced, 10_000, 'W synced')
    // The backup is restored, connects before writing anything, then writes.
    const restored = make(dbAt(backupDir))
    const id = await restored.e.getId()
    await within((await T.connect(restored.e, port)).synced, 10_000, 'the backup synced')
    expect(logOf(restored.e).clock().get(id)).toBe(3)
    await restored.e.emit('Hello', { from: 'W', message: 'w4' })
    await holdsAll([hub.e, w2.e, restored.e], ['w1', 'w2', 'w3', 'w4'], 'the backup continued')
    expect(await restored.e.getId()).toBe(id)
    expect(logOf(hub.e).clock().get(id)).toBe(4)
    for (const p of [hub, w2, restored]) {
      expect(p.watch.forks).toEqual([])
      expect(p.watch.rechained).toEqual([])
      expect(p.watch.refused).toEqual([])
    }
  })
})
