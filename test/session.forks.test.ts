/**
 * Forks between two sessions over the memory transport: a copy of one db
 * meets the other's branch through a relay. The relay refuses the second
 * branch (Refused) and sends its own back; the copy that wrote the refused
 * branch sees a validly signed node of its own writer at its seq and says
 * so ('ownFork', with the exact seq); the sessions stay up.
 */
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../src/core/errors.js'
import { Log } from '../src/core/log/log.js'
import type { RefusalInfo } from '../src/sync/refusals.js'
import { connect, until, within } from './session-helpers.js'

const enc = (s: string) => new TextEncoder().encode(s)

async function copyOf(db: MemoryLevel<Uint8Array, Uint8Array>): Promise<MemoryLevel<Uint8Array, Uint8Array>> {
  const to = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })
  const rows = await db.iterator().all()
  await to.batch(rows.map(([key, value]) => ({ type: 'put' as const, key, value })))
  return to
}

/**
 * W syncs w1 to a hub; a copy of W's db writes c2 and syncs it; W then writes
 * y2 and y3 unsynced: the hub holds c2 where W holds y2 (a fork at seq 2).
 */
async function forkedAtSeq2(): Promise<{ w: Log; hub: Log; c: Log }> {
  const wDb = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })
  const w = new Log(wDb)
  const hub = new Log(new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' }))
  await w.open()
  await hub.open()
  await w.append(enc('w1'))
  await within(connect(w, hub, { live: false }).closedB, 5000, 'w1 to the hub')
  const c = new Log(await copyOf(wDb))
  await c.open()
  await c.append(enc('c2'))
  await within(connect(c, hub, { live: false }).closedB, 5000, 'c2 to the hub')
  await w.append(enc('y2'))
  await w.append(enc('y3'))
  return { w, hub, c }
}

describe('SyncSession and forks (memory transport)', () => {
  it('the relay refuses the second branch and sends its own back; the copy that wrote the second branch learns the exact fork seq', async () => {
    const { w, hub, c } = await forkedAtSeq2()

    const live = connect(w, hub)
    const byW: RefusalInfo[] = []
    const byHub: RefusalInfo[] = []
    const ownForks: number[] = []
    live.a.on('refused', (r: RefusalInfo) => byW.push(r))
    live.b.on('refused', (r: RefusalInfo) => byHub.push(r))
    live.a.on('ownFork', (seq: number) => ownForks.push(seq))
    await until(() => ownForks.length === 1, 5000, 'ownFork')
    expect(ownForks).toEqual([2])
    // The hub refused W's branch at the fork, as a fork; W refused the hub's (its own writer, another node).
    // (The hub may also have heard W's refusal of its own branch by now: 'peer'.)
    expect(byHub.filter((r) => r.by === 'us').map((r) => [r.writer, r.seq, r.code, r.fork])).toEqual([[w.writerId, 2, ErrorCodes.SEQ_MISMATCH, true]])
    await until(() => byW.length === 2, 5000, 'both refusals seen from W')
    expect(byW.map((r) => [r.by, r.writer, r.seq]).sort()).toEqual([['peer', w.writerId, 2], ['us', w.writerId, 2]].sort())
    // Nothing of either branch crossed; the sessions stay up.
    expect(hub.clock().get(w.writerId)).toBe(2)
    expect(w.clock().get(w.writerId)).toBe(3)
    expect(live.sentByA.some((f) => f.case === 'error') || live.sentByB.some((f) => f.case === 'error')).toBe(false)

    // Healed, a fresh session moves everything both ways.
    live.a.close()
    await within(live.closedB, 5000, 'close')
    expect(await w.rechain(2)).toMatchObject({ moved: 2 })
    const again = connect(w, hub, { live: false })
    await within(again.closedA, 5000, 'after the heal')
    expect(await again.closedB).toBeUndefined()
    expect(hub.clock().get(w.writerId)).toBe(2)
    expect(w.length).toBe(hub.length)
  })

  it('a one-shot session that meets a fork ends cleanly: the refused branch is not stored and nothing is sent after Synced', async () => {
    const { w, hub, c } = await forkedAtSeq2()
    const once = connect(w, hub, { live: false })
    const byHub: RefusalInfo[] = []
    once.b.on('refused', (r: RefusalInfo) => byHub.push(r))
    expect(await within(once.closedA, 5000, 'W side closes')).toBeUndefined()
    expect(await within(once.closedB, 5000, 'hub side closes')).toBeUndefined()
    expect(byHub.map((r) => [r.writer, r.seq, r.fork])).toEqual([[w.writerId, 2, true]])
    expect(hub.clock().get(w.writerId)).toBe(2)
  })
})
