// Tabs sharing one database in real Chromium: every tab reads the one
// IndexedDB log in place and writes it as the one writer, so a follower's
// emit is durable when it resolves, a follower holds no copy of the log,
// and a leader going away costs no event and no new writer.
import type { Page } from '@playwright/test'
import { bodies, expect, expectOnce, openChat, test } from './fixtures.js'

test("a follower tab closed right after its emits resolved loses none of them: the leader has them, and IndexedDB after a reload", async ({ browser, site, hub, db }) => {
  const context = await browser.newContext()
  const url = site.demo(hub.wsUrl, db)
  const leader = await openChat(context, url, 'leader')
  const follower = await openChat(context, url, 'follower')
  await expect(leader.locator('#role')).toHaveAttribute('data-role', 'leader')
  await expect(follower.locator('#role')).toHaveAttribute('data-role', 'follower')
  await leader.evaluate(() => (globalThis as any).chat.emit('chat.Message', { author: 'L', text: 'from the leader', sent_at: Date.now() }))
  await expectOnce(follower, 'from the leader')
  // From here on only the tabs hold what is written: the reload below reads IndexedDB alone.
  await hub.stop()

  // Slow the leader's IndexedDB down: a readwrite transaction of our own on the log's object store, kept
  // busy for a while, queues the leader's writes behind it. (Without the wait for the leader, the
  // follower's emits resolve at once, and the leader's session, which stores a few frames at a time,
  // drops the frames still queued when the follower's page goes.)
  const busyMs = 1500
  await leader.evaluate(
    ({ name, busyMs }) =>
      new Promise<void>((started, failed) => {
        const request = indexedDB.open(name)
        request.onerror = () => failed(request.error)
        request.onsuccess = () => {
          const idb = request.result
          const tx = idb.transaction([name], 'readwrite')
          tx.oncomplete = tx.onabort = () => idb.close()
          const store = tx.objectStore(name)
          const until = performance.now() + busyMs
          const spin = (): void => {
            if (performance.now() < until) store.get(0).onsuccess = spin
          }
          spin()
          started()
        }
      }),
    { name: db, busyMs },
  )

  const texts = Array.from({ length: 10 }, (_, i) => `from the follower ${i}`)
  const elapsed = await follower.evaluate(async (texts) => {
    const started = performance.now()
    for (const text of texts) await (globalThis as any).chat.emit('chat.Message', { author: 'F', text, sent_at: Date.now() })
    return performance.now() - started
  }, texts)
  // Closed the moment its last emit resolved, without any chance to say goodbye.
  await follower.close({ runBeforeUnload: false })
  // The first emit waited for the leader's IndexedDB.
  expect(elapsed).toBeGreaterThan(busyMs / 2)

  for (const text of texts) await expectOnce(leader, text)
  await leader.reload()
  await expect(leader.locator('#role')).toHaveAttribute('data-role', 'leader')
  for (const text of ['from the leader', ...texts]) await expectOnce(leader, text)
  await expect(bodies(leader)).toHaveCount(texts.length + 1)
  await context.close()
})

const NOTE_SCHEMA = 'syntax = "proto3"; message Note { string text = 1; }'

/** The harness page reading database `db`'s history of `events` Notes as it loads (see e2e/harness/harness.ts). */
function reader(harness: string, db: string, events: number): string {
  return `${harness}?${new URLSearchParams({ history: db, events: String(events), schema: NOTE_SCHEMA })}`
}

async function historyRead(page: Page): Promise<{ ms: number; role: string }> {
  await page.waitForFunction(() => (globalThis as any).historyRead !== undefined, undefined, { timeout: 60_000 })
  const result = await page.evaluate(() => (globalThis as any).historyRead)
  expect(result.error).toBeUndefined()
  return result
}

/** Write `events` Notes to database `db` from `page` (the harness), a thousand emits a turn. */
async function fill(page: Page, db: string, events: number): Promise<void> {
  await page.evaluate(
    async ({ db, schema, events }) => {
      const chat = (globalThis as any).hyperemitter.HyperEmitter({ name: db, schema })
      for (let i = 0; i < events; i += 1000) {
        await Promise.all(Array.from({ length: Math.min(1000, events - i) }, (_, j) => chat.emit('Note', { text: `note ${i + j}` })))
      }
      await chat.close()
    },
    { db, schema: NOTE_SCHEMA, events },
  )
}

test('reading the history from IndexedDB fetches each chunk record about once, not the rest of the log per page', async ({ browser, site, db }) => {
  const context = await browser.newContext()
  const page = await context.newPage()
  await page.goto(site.harness)
  const events = 20_000
  await fill(page, db, events)
  // Count what getAll() hands back from here on, as the page reads its whole history.
  await page.addInitScript(() => {
    const g = globalThis as any
    g.recordsFetched = 0
    const getAll = IDBObjectStore.prototype.getAll
    IDBObjectStore.prototype.getAll = function (this: IDBObjectStore, ...args: any[]) {
      const request = (getAll as any).apply(this, args) as IDBRequest<unknown[]>
      request.addEventListener('success', () => (g.recordsFetched += request.result.length))
      return request
    }
  })
  await page.goto(reader(site.harness, db, events))
  await historyRead(page)
  const { fetched, chunks } = await page.evaluate(async (name) => {
    const idb: IDBDatabase = await new Promise((resolve, reject) => {
      const request = indexedDB.open(name)
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    const keys = await new Promise<IDBValidKey[]>((resolve) => {
      const request = idb.transaction([name]).objectStore(name).getAllKeys()
      request.onsuccess = () => resolve(request.result)
    })
    idb.close()
    // Chunk records: 'c' right after the log's sublevel prefix, "!hyperemitter!".
    const chunks = keys.filter((k) => new Uint8Array(k as ArrayBuffer)[14] === 0x63).length
    return { fetched: (globalThis as any).recordsFetched as number, chunks }
  }, db)
  expect(chunks).toBeGreaterThan(5)
  // Open reads each key checkpoint and the records after them once; the reads then each chunk once or twice.
  expect(fetched).toBeLessThan(4 * chunks + 20)
  await context.close()
})

test('a follower tab reads the one log in place: same writer, whole history, and no copy of it in memory', async ({ browser, site, db }) => {
  const context = await browser.newContext()
  const leader = await context.newPage()
  await leader.goto(site.harness)
  const events = 50_000
  await fill(leader, db, events)
  await leader.goto(reader(site.harness, db, events))
  expect((await historyRead(leader)).role).toBe('leader')
  const follower = await context.newPage()
  await follower.goto(reader(site.harness, db, events))
  expect((await historyRead(follower)).role).toBe('follower')
  const ids = await Promise.all([leader, follower].map((p) => p.evaluate(() => (globalThis as any).chat.getId())))
  expect(ids[1]).toBe(ids[0])
  const empty = await context.newPage()
  await empty.goto(site.harness)
  // What a copy of the log would hold: 50k nodes of ~60 bytes is ~3 MB, plus its key index.
  const extra = (await arrayBufferBytes(follower)) - (await arrayBufferBytes(empty))
  expect(extra).toBeLessThan(5 * 2 ** 20)
  await context.close()
})

test('every tab, reload and new leader emits as the one writer; emits across a handover land once each, in every tab', async ({ browser, site, hub, db }) => {
  const context = await browser.newContext()
  const url = site.demo(hub.wsUrl, db)
  const tabs = [await openChat(context, url, 'tab 0'), await openChat(context, url, 'tab 1'), await openChat(context, url, 'tab 2')]
  await expect(tabs[0].locator('#role')).toHaveAttribute('data-role', 'leader')
  const idOf = (p: Page) => p.evaluate(() => (globalThis as any).chat.getId() as Promise<string>)
  const id = await idOf(tabs[0])
  for (const t of tabs) expect(await idOf(t)).toBe(id)

  // Tabs 1 and 2 emit in a loop while the leader's page closes.
  const loops = tabs.slice(1).map((t, i) =>
    t.evaluate(async (tab) => {
      const sent: string[] = []
      for (let n = 0; n < 40; n++) {
        const text = `tab ${tab} #${n}`
        await (globalThis as any).chat.emit('chat.Message', { author: `tab ${tab}`, text, sent_at: Date.now() })
        sent.push(text)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      return sent
    }, i + 1),
  )
  await new Promise((resolve) => setTimeout(resolve, 100))
  await tabs[0].close({ runBeforeUnload: false })
  const sent = (await Promise.all(loops)).flat()
  const survivors = tabs.slice(1)
  await expect.poll(() => Promise.all(survivors.map((t) => t.locator('#role').getAttribute('data-role')))).toContain('leader')
  for (const t of survivors) {
    for (const text of sent) await expectOnce(t, text)
    expect(await idOf(t)).toBe(id)
    // Writers the clock knows: the tabs' one and the hub's, never one per tab session.
    const writers: string[] = await t.evaluate(() => [...(globalThis as any).chat.log.clock().keys()])
    expect(writers.sort()).toEqual([id, await hub.hub!.emitter.getId()].sort())
  }
  // The hub hears it all once, through whichever tab leads now.
  await expect.poll(() => hub.texts.length).toBe(sent.length)
  expect(new Set(hub.texts).size).toBe(sent.length)

  await survivors[1].reload()
  await expect(survivors[1].locator('#role')).not.toHaveAttribute('data-role', '')
  expect(await idOf(survivors[1])).toBe(id)
  await context.close()
})

/** Bytes of ArrayBuffer backing stores in `page` after a garbage collection (Chromium's own count, through CDP). */
async function arrayBufferBytes(page: Page): Promise<number> {
  const cdp = await page.context().newCDPSession(page)
  await cdp.send('HeapProfiler.collectGarbage')
  const usage = (await cdp.send('Runtime.getHeapUsage')) as { backingStorageSize?: number }
  await cdp.detach()
  expect(typeof usage.backingStorageSize).toBe('number')
  return usage.backingStorageSize!
}
