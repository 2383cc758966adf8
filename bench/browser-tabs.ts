// Browser logs at 10k, 50k and 100k Hello-sized events (issue 16), in
// Debian's Chromium driven by Playwright, one browser context (one profile)
// per size, JSON lines as the other suites print them:
//  - history: from a reload to the last event yielded by
//    events({ from: 'beginning' }) (ms since the navigation started), and
//    per event; ready: the emitter open; history-growth: 100k over 10k.
//  - one follower / three followers opened at once: a new tab beside the
//    leader, from its navigation to the last event of its history.
//  - follower memory: ArrayBuffer backing stores of a follower that read the
//    whole history, minus those of an empty page (after a GC each).
//  - handover: two followers emit every 20 ms while the leader tab closes;
//    latency of each emit begun in the second after (median, max).
// Baseline, same run: raw IndexedDB getAll() of the same bytes in one call.
// Run: npx tsx bench/browser-tabs.ts   (BROWSER_TABS_SIZES=10000,50000,100000)
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { chromium, type BrowserContext, type Page } from '@playwright/test'
import { serveAssets } from '../examples/hub.js'
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../e2e/chromium.js'
import { buildHarness } from '../e2e/site.js'
import { HELLO_SCHEMA, printJson } from './common.js'

const SIZES = (process.env.BROWSER_TABS_SIZES ?? '10000,50000,100000').split(',').map(Number)
const HANDOVER_MS = 1000
const EMIT_EVERY_MS = 20

async function main(): Promise<void> {
  const server = http.createServer(serveAssets(await buildHarness()))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const site = `http://127.0.0.1:${(server.address() as AddressInfo).port}/harness.html`
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS })
  try {
    const historyMs = new Map<number, number>()
    for (const events of SIZES) {
      const context = await browser.newContext()
      try {
        historyMs.set(events, await scenarios(context, site, events))
      } finally {
        await context.close()
      }
    }
    // Linear time means the same cost per event: 10x the events, about 10x the time.
    const [small, large] = [historyMs.get(10_000), historyMs.get(100_000)]
    if (small !== undefined && large !== undefined) {
      printJson({ bench: 'browser-tabs', scenario: 'history-growth', events: 100_000, ratio: round(large / small), of: '100k over 10k' })
    }
  } finally {
    await browser.close()
    server.close()
  }
}

/** Runs every scenario at `events`; returns the history figure (ms). */
async function scenarios(context: BrowserContext, site: string, events: number): Promise<number> {
  const name = `bench-tabs-${events}`
  const leader = await page(context, site)
  await leader.evaluate(fill, { name, schema: HELLO_SCHEMA, events })
  const print = (scenario: string, result: Record<string, unknown>) => printJson({ bench: 'browser-tabs', scenario, events, ...result })

  print('baseline', { storage: 'indexeddb (raw getAll)', ms: round(await leader.evaluate(rawRead, name)) })
  const reading = `${site}?${new URLSearchParams({ history: name, events: String(events), schema: HELLO_SCHEMA })}`
  // Twice: the first load of a profile's database also warms Chromium's IndexedDB backend.
  await leader.goto(reading)
  await historyOf(leader)
  await leader.goto(reading)
  const history = await historyOf(leader)
  print('history', { ms: round(history.ms), readyMs: round(history.readyMs), perEventUs: round((history.ms * 1000) / events) })

  const follower = await page(context, reading)
  const one = await historyOf(follower)
  const empty = await page(context, site)
  const memory = { followerMb: await arrayBufferMb(follower), emptyPageMb: await arrayBufferMb(empty) }
  print('one-follower', { ms: round(one.ms), role: one.role })
  print('follower-memory', { ...memory, extraMb: round(memory.followerMb - memory.emptyPageMb), targetExtraMb: 5 })
  await follower.close()
  await empty.close()

  const three = await Promise.all(
    [0, 1, 2].map(async () => {
      const p = await page(context, reading)
      return { p, result: await historyOf(p) }
    }),
  )
  print('three-followers', { ms: round(Math.max(...three.map((t) => t.result.ms))), each: three.map((t) => round(t.result.ms)) })

  // Handover: the first two of those keep emitting while the leader closes.
  const emitters = three.slice(0, 2).map((t) => t.p)
  for (const t of three.slice(2)) await t.p.close()
  const loops = emitters.map((p) => p.evaluate(emitLoop, { ms: HANDOVER_MS * 2, every: EMIT_EVERY_MS }))
  await new Promise((resolve) => setTimeout(resolve, HANDOVER_MS / 2))
  const closedAt = Date.now()
  await leader.close({ runBeforeUnload: false })
  const samples = (await Promise.all(loops)).flat().filter((s) => s.at >= closedAt && s.at < closedAt + HANDOVER_MS)
  const latencies = samples.map((s) => s.ms).sort((a, b) => a - b)
  const roles = await Promise.all(emitters.map((p) => p.evaluate(() => (globalThis as any).chat.role)))
  print('handover', {
    emits: latencies.length,
    medianMs: round(latencies[Math.floor(latencies.length / 2)]),
    maxMs: round(latencies[latencies.length - 1]),
    targetMaxMs: 300,
    roles,
  })
  return history.ms
}

async function page(context: BrowserContext, site: string): Promise<Page> {
  const p = await context.newPage()
  p.on('pageerror', (err) => console.error(`page error: ${err.message}`))
  // tsx keeps function names with a `__name` helper, which functions run in the page need too.
  await p.addInitScript(() => ((globalThis as any).__name = (fn: unknown) => fn))
  await p.goto(site)
  await ready(p)
  return p
}

async function ready(p: Page): Promise<void> {
  await p.waitForFunction(() => document.getElementById('state')?.textContent === 'ready')
}

/** Write `events` Hellos, a thousand emits a turn, and close. */
async function fill({ name, schema, events }: { name: string; schema: string; events: number }): Promise<void> {
  const chat = (globalThis as any).hyperemitter.HyperEmitter({ name, schema })
  await chat.ready()
  for (let i = 0; i < events; i += 1000) {
    const group: Promise<void>[] = []
    for (let j = i; j < Math.min(events, i + 1000); j++) group.push(chat.emit('Hello', { from: 'Matteo', message: `hello world ${j}` }))
    await Promise.all(group)
  }
  await chat.close()
}

/** What the harness page's ?history= run measured (see e2e/harness/harness.ts). */
async function historyOf(p: Page): Promise<{ ms: number; readyMs: number; role: string }> {
  await p.waitForFunction(() => (globalThis as any).historyRead !== undefined, undefined, { timeout: 120_000 })
  const result = await p.evaluate(() => (globalThis as any).historyRead)
  if (result.error) throw new Error(result.error)
  return result
}

/** The same records with no library in the way: one getAll() of the log's object store. */
async function rawRead(name: string): Promise<number> {
  const db: IDBDatabase = await new Promise((resolve, reject) => {
    const request = indexedDB.open(name)
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  const start = performance.now()
  await new Promise<void>((resolve, reject) => {
    const request = db.transaction([name], 'readonly').objectStore(name).getAll()
    request.onsuccess = () => resolve()
    request.onerror = () => reject(request.error)
  })
  const ms = performance.now() - start
  db.close()
  return ms
}

/** Emit every `every` ms for `ms`: when each began (epoch ms) and how long it took. */
async function emitLoop({ ms, every }: { ms: number; every: number }) {
  const chat = (globalThis as any).chat
  const samples: Array<{ at: number; ms: number }> = []
  const pending: Promise<void>[] = []
  const end = performance.now() + ms
  for (let i = 0; performance.now() < end && i < 10_000; i++) {
    const at = performance.timeOrigin + performance.now()
    const t0 = performance.now()
    pending.push(chat.emit('Hello', { from: 'handover', message: `${i}` }).then(() => void samples.push({ at, ms: performance.now() - t0 })))
    await new Promise((resolve) => setTimeout(resolve, every))
  }
  await Promise.all(pending)
  return samples
}

/** MiB of ArrayBuffer backing stores in `p` after a garbage collection. */
async function arrayBufferMb(p: Page): Promise<number> {
  const cdp = await p.context().newCDPSession(p)
  await cdp.send('HeapProfiler.collectGarbage')
  const usage = (await cdp.send('Runtime.getHeapUsage')) as { backingStorageSize?: number }
  await cdp.detach()
  if (typeof usage.backingStorageSize !== 'number') throw new Error('this Chromium does not report backingStorageSize')
  return round(usage.backingStorageSize / 2 ** 20)
}

function round(n: number): number {
  return Math.round(n * 100) / 100
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
