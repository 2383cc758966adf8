// The demo chat in real Chromium, against real hubs: contexts, TCP peers,
// going offline, reloading with the hub down, tabs sharing one database, and
// the leading tab going away.
import { spawn } from 'node:child_process'
import { CHAT_SCHEMA } from '../examples/hub.js'
import { HyperEmitter, type NodeHyperEmitter } from '../src/index.js'
import type { Browser } from '@playwright/test'
import { bodies, expect, expectOnce, expectState, openChat, send, test } from './fixtures.js'

/** Two isolated browser contexts (as two browsers) on the demo page at `url`, both synced with the hub. */
async function twoBrowsers(browser: Browser, url: string) {
  const contextA = await browser.newContext()
  const contextB = await browser.newContext()
  const a = await openChat(contextA, url, 'A')
  const b = await openChat(contextB, url, 'B')
  await expectState(a, 'synced')
  await expectState(b, 'synced')
  return { contextA, contextB, a, b }
}

test('two isolated browser contexts exchange events through the hub, both ways', async ({ browser, site, hub, db }, testInfo) => {
  const { contextA, contextB, a, b } = await twoBrowsers(browser, site.demo(hub.wsUrl, db))
  // Separate contexts share no storage: each tab leads its own IndexedDB.
  await expect(a.locator('#role')).toHaveAttribute('data-role', 'leader')
  await expect(b.locator('#role')).toHaveAttribute('data-role', 'leader')

  await a.locator('#name').fill('Ada')
  await b.locator('#name').fill('Brian')
  await send(a, 'Hello from context A')
  await expectOnce(b, 'Hello from context A')
  await send(b, 'Hi A, context B here')
  await expectOnce(a, 'Hi A, context B here')
  await hub.say('hub', 'Welcome both of you')
  await expectOnce(a, 'Welcome both of you')
  await expectOnce(b, 'Welcome both of you')
  await send(a, 'Nice, it works both ways')
  await expectOnce(b, 'Nice, it works both ways')
  for (const page of [a, b]) await expect(bodies(page)).toHaveCount(4)
  // The same order everywhere a causal chain exists: each reply after what it answers.
  await expect(bodies(b)).toHaveText(['Hello from context A', 'Hi A, context B here', 'Welcome both of you', 'Nice, it works both ways'])
  await expect.poll(() => hub.texts.length).toBe(4)

  await expectState(a, 'synced')
  await a.screenshot({ path: testInfo.outputPath('demo-chat.png') })
  await testInfo.attach('demo-chat', { path: testInfo.outputPath('demo-chat.png'), contentType: 'image/png' })
  await contextA.close()
  await contextB.close()
})

test("a Node TCP peer's events reach the page and the page's reach the peer", async ({ browser, site, hub, db }) => {
  const peer = HyperEmitter(null, CHAT_SCHEMA) as NodeHyperEmitter
  const seen: string[] = []
  peer.on('chat.Message', (m: { text: string }) => void seen.push(m.text), { from: 'beginning' })
  const link = await peer.connect(hub.port, '127.0.0.1')
  expect(link.address).toBe(`tcp://127.0.0.1:${hub.port}`)
  await link.synced

  const context = await browser.newContext()
  const page = await openChat(context, site.demo(hub.wsUrl, db))
  await expectState(page, 'synced')
  await peer.emit('chat.Message', { author: 'node', text: 'Hello from a TCP peer', sent_at: Date.now() })
  await expectOnce(page, 'Hello from a TCP peer')
  await send(page, 'Hello back from the browser')
  await expect.poll(() => seen).toContain('Hello back from the browser')
  await peer.close()

  // The example script does the same as a separate process.
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/tcp-peer.ts', String(hub.port), '--say', 'Hello from examples/tcp-peer.ts'], {
    env: { ...process.env, NAME: 'script' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  expect(code, output).toBe(0)
  // It printed the history it caught up on, browser messages included.
  expect(output).toContain('Hello back from the browser')
  await expectOnce(page, 'Hello from examples/tcp-peer.ts')
  await context.close()
})

test('a context taken offline keeps emitting, then catches up both ways when back', async ({ browser, site, hub, db }) => {
  const { contextA, contextB, a, b } = await twoBrowsers(browser, site.demo(hub.wsUrl, db))

  await contextA.setOffline(true)
  await expect(a.locator('#status')).toHaveText('offline')
  const offline = ['written offline 1', 'written offline 2', 'written offline 3']
  for (const text of offline) await send(a, text)
  for (const text of offline) await expectOnce(a, text)
  await expect(a.locator('#status')).toHaveText('offline, 3 pending')

  await send(b, 'B writes meanwhile')
  // The hub holds B's message, so A would have it by now if it were connected.
  await expect.poll(() => hub.texts).toContain('B writes meanwhile')
  await expect(bodies(a).filter({ hasText: 'B writes meanwhile' })).toHaveCount(0)
  expect(hub.texts.filter((t) => offline.includes(t))).toEqual([])
  await expect(bodies(b).filter({ hasText: 'written offline' })).toHaveCount(0)

  await contextA.setOffline(false)
  await expectState(a, 'synced')
  await expect(a.locator('#status')).toHaveText('synced')
  await expectOnce(a, 'B writes meanwhile')
  for (const text of offline) await expectOnce(b, text)
  await expect.poll(() => [...hub.texts].sort()).toEqual(['B writes meanwhile', ...offline].sort())
  await contextA.close()
  await contextB.close()
})

test('messages written concurrently show in the same order in every browser: send time, then author and text', async ({ browser, site, hub, db }) => {
  const { contextA, contextB, a, b } = await twoBrowsers(browser, site.demo(hub.wsUrl, db))
  await a.locator('#name').fill('Ada')
  await b.locator('#name').fill('Brian')

  // Both offline, writing in turns: each log holds its own messages first.
  await contextA.setOffline(true)
  await contextB.setOffline(true)
  const turns: Array<[typeof a, string]> = [
    [a, 'A one'],
    [b, 'B one'],
    [a, 'A two'],
    [b, 'B two'],
    [a, 'A three'],
    [b, 'B three'],
  ]
  for (const [page, text] of turns) {
    await send(page, text)
    await expectOnce(page, text)
  }
  await contextA.setOffline(false)
  await contextB.setOffline(false)
  for (const page of [a, b]) await expect(bodies(page)).toHaveCount(turns.length)
  const order = turns.map(([, text]) => text)
  await expect(bodies(a)).toHaveText(order)
  await expect(bodies(b)).toHaveText(order)
  await contextA.close()
  await contextB.close()
})

test('two tabs in one context on one database show every event exactly once', async ({ browser, site, hub, db }) => {
  const context = await browser.newContext()
  const first = await openChat(context, site.demo(hub.wsUrl, db), 'tab 1')
  const second = await openChat(context, site.demo(hub.wsUrl, db), 'tab 2')
  await expect(first.locator('#role')).toHaveAttribute('data-role', 'leader')
  await expect(second.locator('#role')).toHaveAttribute('data-role', 'follower')
  await expectState(first, 'synced')
  await expectState(second, 'synced')

  const texts: string[] = []
  for (let i = 0; i < 3; i++) {
    texts.push(`tab 1 says ${i}`, `tab 2 says ${i}`)
    await send(first, `tab 1 says ${i}`)
    await send(second, `tab 2 says ${i}`)
  }
  await hub.say('hub', 'hub says hi')
  texts.push('hub says hi')
  for (const page of [first, second]) {
    for (const text of texts) await expectOnce(page, text)
    await expect(bodies(page)).toHaveCount(texts.length)
  }
  // Concurrent events may be stored in either order, but each writer's own stay in the order written.
  for (const page of [first, second]) {
    const shown = await bodies(page).allTextContents()
    for (const tab of ['tab 1', 'tab 2']) expect(shown.filter((t) => t.startsWith(tab))).toEqual(texts.filter((t) => t.startsWith(tab)))
  }
  await expect.poll(() => [...hub.texts].sort()).toEqual([...texts].sort())
  await context.close()
})

test('closing the leading tab hands over to another tab without losing events', async ({ browser, site, hub, db }) => {
  const context = await browser.newContext()
  const url = site.demo(hub.wsUrl, db)
  const leader = await openChat(context, url, 'leader')
  const tabA = await openChat(context, url, 'tab A')
  const tabB = await openChat(context, url, 'tab B')
  await expect(leader.locator('#role')).toHaveAttribute('data-role', 'leader')
  for (const tab of [tabA, tabB]) await expectState(tab, 'synced')
  await send(leader, 'from the first leader')
  for (const tab of [tabA, tabB]) await expectOnce(tab, 'from the first leader')

  // From here on, the tabs alone hold what is written.
  await hub.stop()
  await send(tabA, 'tab A, before the handover')
  await expectOnce(tabB, 'tab A, before the handover')
  // Tab B writes while the leader is going away: the event waits in tab B until a new leader takes it.
  await Promise.all([
    leader.close(),
    tabB.evaluate(() => (globalThis as any).chat.emit('chat.Message', { author: 'B', text: 'tab B, during the handover', sent_at: Date.now() })),
  ])
  await expect.poll(async () => [await tabA.locator('#role').getAttribute('data-role'), await tabB.locator('#role').getAttribute('data-role')].sort()).toEqual([
    'follower',
    'leader',
  ])
  await send(tabA, 'tab A, after the handover')
  const all = ['from the first leader', 'tab A, before the handover', 'tab B, during the handover', 'tab A, after the handover']
  for (const tab of [tabA, tabB]) {
    for (const text of all) await expectOnce(tab, text)
  }

  // A tab opened now reads the shared log (IndexedDB, through the new leader).
  const late = await openChat(context, url, 'late tab')
  await expect(late.locator('#role')).toHaveAttribute('data-role', 'follower')
  for (const text of all) await expectOnce(late, text)
  await expect(bodies(late)).toHaveCount(all.length)

  // The hub comes back and gets everything.
  await hub.start()
  await expect.poll(() => [...hub.texts].sort()).toEqual([...all].sort())
  for (const tab of [tabA, tabB, late]) await expectState(tab, 'synced')
  await context.close()
})
