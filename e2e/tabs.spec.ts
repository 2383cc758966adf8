// Tabs sharing one database in real Chromium: what a follower tab's emit()
// promises. The follower keeps the log in memory, so its emit must resolve
// only once the leader tab committed the event to IndexedDB; a follower page
// closed the moment its emit resolved must lose nothing.
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
