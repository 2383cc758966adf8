// The demo page loads with its hub down: it is served by the hub itself (as
// `npm start` serves it), so only its service worker can bring it back; its
// log comes from IndexedDB, and what is written meanwhile reaches the hub
// once it is back.
import { bodies, expect, expectOnce, expectState, openChat, send, test } from './fixtures.js'

test('the page the hub served reloads with the hub stopped: whole history, new messages pending, then synced when the hub is back', async ({ browser, hub, db }) => {
  const context = await browser.newContext()
  const page = await openChat(context, hub.page(db))
  await expectState(page, 'synced')
  // The service worker has the shell once it is active.
  await page.evaluate(() => navigator.serviceWorker.ready)
  const texts = ['first', 'second', 'third']
  for (const text of texts) await send(page, text)
  await hub.say('hub', 'from the hub')
  await expectOnce(page, 'from the hub')
  await expect.poll(() => hub.texts.length).toBe(4)
  await expect(page.locator('#messages .msg.pending')).toHaveCount(0)

  await hub.stop()
  await page.reload()
  await expect(page.locator('#role')).toHaveAttribute('data-role', 'leader')
  for (const text of [...texts, 'from the hub']) await expectOnce(page, text)
  await expect(bodies(page)).toHaveCount(4)
  await expect(page.locator('#status')).toHaveText('hub unreachable')

  // Written with the hub down: shown, marked pending; the hub gets it when it is back.
  await send(page, 'while the hub was down')
  await expectOnce(page, 'while the hub was down')
  await expect(page.locator('#status')).toHaveText('hub unreachable, 1 pending')
  await expect(page.locator('#messages .msg.pending .body')).toHaveText(['while the hub was down'])
  await hub.start()
  await expectState(page, 'synced')
  await expect(page.locator('#messages .msg.pending')).toHaveCount(0)
  await expect.poll(() => hub.texts).toContain('while the hub was down')
  await expect(bodies(page)).toHaveCount(5)
  await context.close()
})

test('without its service worker the same page cannot load with the hub stopped (what the worker is for)', async ({ browser, hub, db }) => {
  const context = await browser.newContext({ serviceWorkers: 'block' })
  const page = await openChat(context, hub.page(db))
  await expectState(page, 'synced')
  await hub.stop()
  await expect(page.reload()).rejects.toThrow(/ERR_CONNECTION_REFUSED/)
  await context.close()
})
