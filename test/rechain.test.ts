/**
 * Log.rechain: a db copied and run twice forks its writer; the copy that
 * meets the other's nodes moves its own to a fresh chain in place, takes
 * the other's, and nothing is lost or delivered twice.
 */
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { fromHex, toHex } from '../src/core/bytes/bytes.js'
import { divergedWriters, TIP_BYTES } from '../src/sync/tips.js'
import { ErrorCodes } from '../src/core/errors.js'
import { Log } from '../src/core/log/log.js'
import type { LogEntry, Refusal } from '../src/core/types.js'
import { readMissing } from './helpers/missing.js'

const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

async function copyDb(from: MemoryLevel<Uint8Array, Uint8Array>): Promise<MemoryLevel<Uint8Array, Uint8Array>> {
  const to = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })
  const rows = await from.iterator({ keyEncoding: 'view', valueEncoding: 'view' } as any).all()
  await to.batch(rows.map(([key, value]) => ({ type: 'put' as const, key, value })))
  return to
}

const newDb = () => new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })

/** Sends what `to` lacks from `from`, as a session would, refusing writer by writer. */
async function sync(from: Log, to: Log, lower = new Map<string, number>()): Promise<{ stored: LogEntry[]; refused: Refusal[] }> {
  // The peer's clock with its tips: a writer whose branch differs is sent whole (the receiver skips what it holds).
  const remote = to.clock()
  for (const [hex, seq] of lower) remote.set(hex, seq)
  const tips = new Map<string, Uint8Array>()
  for (const hex of remote.keys()) {
    const tip = to.tipOf(hex)
    if (tip) tips.set(hex, tip.subarray(0, TIP_BYTES))
  }
  for (const hex of await divergedWriters(from, remote, tips, fromHex)) remote.set(hex, 0)
  const entries: LogEntry[] = []
  for await (const e of readMissing(from, remote)) entries.push(e)
  const refused: Refusal[] = []
  if (entries.length === 0) return { stored: [], refused }
  const signatures = await from.signaturesFor(entries)
  const stored = await to.addMany(
    entries.map((e) => e.bytes),
    undefined,
    { signatures, onRefused: (r) => refused.push(r) },
  )
  return { stored, refused }
}

async function values(log: Log): Promise<string[]> {
  const out: string[] = []
  for await (const e of log.read()) out.push(dec(e.value))
  return out
}

describe('Log.rechain', () => {
  it('heals a db copied and run twice: the copy that meets the other branch moves its own, in place, and takes the other', async () => {
    const wDb = newDb()
    const w = new Log(wDb)
    const hub = new Log(newDb())
    await w.open()
    await hub.open()
    await w.append(enc('w1'))
    await sync(w, hub)
    await w.close()

    // The copy writes seq 2 first and reaches the hub.
    const cDb = await copyDb(wDb)
    const c = new Log(cDb)
    await c.open()
    expect(c.writerId).toBe(w.writerId)
    await c.append(enc('c2'))
    expect((await sync(c, hub)).refused).toEqual([])

    // The original writes seq 2 and 3 of its own.
    await w.open()
    const oldId = w.writerId
    await w.append(enc('y2'))
    await w.append(enc('y3'))
    const changesBefore = new Map<string, number>()
    for await (const e of w.read()) changesBefore.set(dec(e.value), e.change)

    // The hub refuses W's branch at seq 2: a fork.
    const toHub = await sync(w, hub)
    expect(toHub.refused.map((r) => [r.writerHex, r.seq, r.error.code, r.error.details?.fork])).toEqual([[oldId, 2, ErrorCodes.SEQ_MISMATCH, true]])
    // The hub, having refused W's seq 2 as a fork, sends its own branch from there; W
    // refuses it: a validly signed node of its own writer at 2 that is not its own.
    const fromHub = await sync(hub, w, new Map([[oldId, 1]]))
    expect(fromHub.refused.map((r) => [r.writerHex, r.seq])).toEqual([[oldId, 2]])

    const heard: LogEntry[] = []
    w.onChange((entries) => heard.push(...entries))
    const moved = await w.rechain(2)
    expect(moved).toMatchObject({ fromSeq: 2, moved: 2 })
    expect(toHex(moved!.from)).toBe(oldId)
    expect(w.writerId).not.toBe(oldId)
    expect(w.writerKey.publicKey).toEqual(c.writerKey.publicKey)
    // Nothing delivered again, nothing renumbered.
    expect(heard).toEqual([])
    for await (const e of w.read()) expect(e.change).toBe(changesBefore.get(dec(e.value)))
    expect(w.clock()).toEqual(new Map([[oldId, 1], [w.writerId, 2]]))
    expect(w.authorOf(moved!.from)?.publicKey).toBe(toHex(w.writerKey.publicKey))

    // Now everything flows both ways, and each event once.
    expect((await sync(hub, w)).refused).toEqual([])
    expect(heard.map((e) => dec(e.value))).toEqual(['c2'])
    expect((await sync(w, hub)).refused).toEqual([])
    expect((await sync(hub, c)).refused).toEqual([])
    for (const log of [w, hub, c]) expect((await values(log)).sort()).toEqual(['c2', 'w1', 'y2', 'y3'])

    // Reopened, the log is the moved one; its next event continues the new chain.
    await w.close()
    const again = new Log(wDb)
    await again.open()
    expect(again.writerId).toBe(w.writerId)
    expect(again.clock()).toEqual(w.clock())
    const y4 = await again.append(enc('y4'))
    expect(y4.seq).toBe(3)
    expect((await sync(again, hub)).refused).toEqual([])
    expect(hub.clock().get(again.writerId)).toBe(3)
  })

  it("moves nothing when another writer's node links one of ours after the seq (it was published after all)", async () => {
    const w = new Log(newDb())
    const b = new Log(newDb())
    await w.open()
    await b.open()
    await w.append(enc('w1'))
    await w.append(enc('w2'))
    await sync(w, b)
    await b.append(enc('b1 links w2'))
    await sync(b, w)
    const id = w.writerId
    expect(await w.rechain(2)).toBeUndefined()
    expect(w.writerId).toBe(id)
    expect(await values(w)).toEqual(['w1', 'w2', 'b1 links w2'])
  })

  it('moves nothing on a db shared with other Logs (their state would go stale)', async () => {
    const lock = (async (_mode: string, fn: () => Promise<unknown>) => fn()) as any
    const w = new Log(newDb(), { lock })
    await w.open()
    await w.append(enc('one'))
    const id = w.writerId
    expect(await w.rechain(1)).toBeUndefined()
    expect(w.writerId).toBe(id)
  })

  it('moves nothing when nothing of ours is at or after the seq, and refuses a bad seq', async () => {
    const w = new Log(newDb())
    await w.open()
    await w.append(enc('one'))
    expect(await w.rechain(2)).toBeUndefined()
    await expect(w.rechain(0)).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT })
    expect(w.clock()).toEqual(new Map([[w.writerId, 1]]))
  })

  it('keeps relaying the old chain: its nodes up to the fork get stored signatures; the key index survives a reopen', async () => {
    const db = newDb()
    const w = new Log(db)
    await w.open()
    const values = Array.from({ length: 1200 }, (_, i) => enc(`n${i}`))
    // Past a key checkpoint (every 1024 keys), which the move must not leave stale.
    await new Promise((resolve, reject) => w.appendAll(values.slice(0, 600), { appended: resolve, failed: reject }))
    await new Promise((resolve, reject) => w.appendAll(values.slice(600), { appended: resolve, failed: reject }))
    const oldId = w.writerId
    let old1000: Uint8Array | undefined
    for await (const e of w.read({ since: 999, limit: 1 })) old1000 = e.key
    await w.rechain(590)
    await w.close()
    await w.open()
    expect(await w.has(old1000!)).toBe(false)
    let new1000: Uint8Array | undefined
    for await (const e of w.read({ since: 999, limit: 1 })) new1000 = e.key
    expect(await w.has(new1000!)).toBe(true)
    expect(dec((await w.get(new1000!))!.value)).toBe('n999')
    const fresh = new Log(newDb())
    await fresh.open()
    // A relay ends each writer's run in a frame at a signed node: every 256th of the old chain, and its last.
    const signed: number[] = []
    for await (const page of w.readMissingPages(new Map())) for (const e of page) if (toHex(e.writer) === oldId && e.signature) signed.push(e.seq)
    expect(signed).toEqual([256, 512, 589])
    expect((await sync(w, fresh)).refused).toEqual([])
    expect(fresh.clock()).toEqual(new Map([[oldId, 589], [w.writerId, 611]]))
  })
})
