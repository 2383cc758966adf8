// Browser figures, in Debian's Chromium driven by Playwright (JSON lines, as
// bench/emit.ts prints them):
//  - cold catch-up: a fresh page (empty IndexedDB, the default tab-coordinated
//    set-up) connects to a hub holding N chat events; events/s from connect()
//    to peer.synced, i.e. verified and stored in IndexedDB. Also with
//    tabs: false (the emitter directly on IndexedDB) for comparison.
//  - latency: a page in one browser context emits, a page in another (its own
//    IndexedDB, its own WebSocket) receives through the hub; median and p99 of
//    emit() call to the receiver's listener, on one clock (both pages share
//    the browser's monotonic time origin, corrected by performance.timeOrigin).
//  - the same between two tabs of one context (leader and follower, over
//    BroadcastChannel, no hub in the path).
//  - baseline: raw IndexedDB puts/s and small-commit latency in the same
//    browser, to judge the figures above against.
// Run: npx tsx bench/browser.ts   (BROWSER_BENCH_EVENTS=50000, BROWSER_BENCH_SAMPLES=300)
import { mkdtempSync, rmSync } from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from '@playwright/test'
import { CHAT_SCHEMA, serveAssets, startHub } from '../examples/hub.js'
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../e2e/chromium.js'
import { buildHarness } from '../e2e/site.js'
import { peakRssMb, printJson } from './common.js'

const EVENTS = Number(process.env.BROWSER_BENCH_EVENTS ?? 50_000)
const SAMPLES = Number(process.env.BROWSER_BENCH_SAMPLES ?? 300)

async function main(): Promise<void> {
  const assets = await buildHarness()
  const server = http.createServer(serveAssets(assets))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const site = `http://127.0.0.1:${(server.address() as AddressInfo).port}/harness.html`
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-bench-browser-'))
  const hub = await startHub({ port: 0, dataDir: dir, assets: new Map(), allowedOrigins: [new URL(site).origin] })
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS })
  try {
    // N events in the hub, written in group-committed chunks.
    for (let i = 0; i < EVENTS; i += 1000) {
      const chunk: Promise<void>[] = []
      for (let j = i; j < Math.min(EVENTS, i + 1000); j++) {
        chunk.push(hub.emitter.emit('chat.Message', { author: `writer ${j % 7}`, text: `message number ${j}`, sent_at: Date.now() }))
      }
      await Promise.all(chunk)
    }
    printJson({ bench: 'browser', scenario: 'baseline', ...(await indexedDbBaseline(browser, site)) })
    // The hub's own EventPeer announcement is in its log too.
    const total: number = (hub.emitter as any).log.length
    for (const tabs of [true, false]) {
      const result = await coldCatchUp(browser, site, hub.wsUrl, tabs, total)
      printJson({ bench: 'browser', scenario: 'cold-catch-up', storage: 'indexeddb', tabs, events: EVENTS, ...result, peakRssMbNode: peakRssMb() })
    }
    printJson({ bench: 'browser', scenario: 'latency', path: 'context -> hub -> context', samples: SAMPLES, ...(await latencyThroughHub(browser, site, hub.wsUrl)) })
    printJson({ bench: 'browser', scenario: 'latency', path: 'tab -> tab (BroadcastChannel)', samples: SAMPLES, ...(await latencyBetweenTabs(browser, site, hub.wsUrl)) })
    // Chromium sends WebSocket data through its network service, a process of its own: on a
    // loaded machine, waiting for that process to be scheduled dominates the tail. The same
    // measurement with the network service inside the browser process shows how much.
    const inProcess = await chromium.launch({
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS, '--enable-features=NetworkServiceInProcess2'],
    })
    try {
      printJson({
        bench: 'browser',
        scenario: 'latency',
        path: 'context -> hub -> context',
        network: 'in-process',
        samples: SAMPLES,
        ...(await latencyThroughHub(inProcess, site, hub.wsUrl)),
      })
    } finally {
      await inProcess.close()
    }
  } finally {
    await browser.close()
    await hub.close()
    server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function harness(browser: Browser, site: string): Promise<Page> {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.on('pageerror', (err) => console.error(`page error: ${err.message}`))
  // tsx compiles this file keeping function names (a `__name(fn, 'name')` helper); functions
  // handed to page.evaluate() run in the page, where that helper must exist too.
  await page.addInitScript(() => ((globalThis as any).__name = (fn: unknown) => fn))
  await page.goto(site)
  await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready')
  return page
}

/**
 * What this Chromium's IndexedDB does with no library in the way: random
 * 24-byte binary keys, 100-byte values, 3000 pipelined puts per transaction;
 * and the latency of a small transaction (4 puts) committed alone. The Log
 * writes one record per committed batch (a chunk of up to 1024 nodes), so a
 * catch-up is bound by verifying nodes (hashing in JS) rather than by puts;
 * the commit latency bounds an awaited emit.
 */
async function indexedDbBaseline(browser: Browser, site: string): Promise<Record<string, unknown>> {
  const page = await harness(browser, site)
  const result = await page.evaluate(async () => {
    const db: IDBDatabase = await new Promise((resolve, reject) => {
      const request = indexedDB.open(`baseline-${Date.now()}`, 1)
      request.onupgradeneeded = () => request.result.createObjectStore('s')
      request.onsuccess = () => resolve(request.result)
      request.onerror = () => reject(request.error)
    })
    const transaction = (puts: number) =>
      new Promise<void>((resolve, reject) => {
        const tx = db.transaction('s', 'readwrite')
        const store = tx.objectStore('s')
        for (let i = 0; i < puts; i++) store.put(new Uint8Array(100), crypto.getRandomValues(new Uint8Array(24)))
        tx.oncomplete = () => resolve()
        tx.onabort = () => reject(tx.error)
        ;(tx as any).commit?.()
      })
    const start = performance.now()
    for (let t = 0; t < 10; t++) await transaction(3000)
    const putsPerSecond = Math.round(30_000 / ((performance.now() - start) / 1000))
    const commits: number[] = []
    for (let t = 0; t < 100; t++) {
      const t0 = performance.now()
      await transaction(4)
      commits.push(performance.now() - t0)
    }
    commits.sort((a, b) => a - b)
    db.close()
    return { putsPerSecond, smallCommitMedianMs: commits[50], smallCommitP99Ms: commits[98] }
  })
  await page.context().close()
  return {
    storage: 'indexeddb (raw)',
    putsPerSecond: result.putsPerSecond,
    smallCommitMedianMs: round(result.smallCommitMedianMs),
    smallCommitP99Ms: round(result.smallCommitP99Ms),
  }
}

async function coldCatchUp(browser: Browser, site: string, hubUrl: string, tabs: boolean, total: number): Promise<Record<string, unknown>> {
  const page = await harness(browser, site)
  const result = await page.evaluate(
    async ({ hubUrl, schema, tabs, expected }) => {
      const { hyperemitter } = globalThis as any
      const chat = hyperemitter.HyperEmitter({ name: `bench-${Date.now()}`, schema, tabs })
      await chat.ready()
      const start = performance.now()
      const peer = await chat.connect(hubUrl)
      await peer.synced
      const seconds = (performance.now() - start) / 1000
      const stored = chat.log.length
      const usage = await navigator.storage.estimate()
      await chat.close()
      if (stored !== expected) throw new Error(`caught up ${stored} events, expected ${expected}`)
      return { seconds, stored, idbUsageMb: Math.round(((usage as any).usageDetails?.indexedDB ?? usage.usage ?? 0) / 2 ** 20) }
    },
    { hubUrl, schema: CHAT_SCHEMA, tabs, expected: total },
  )
  await page.context().close()
  return {
    seconds: round(result.seconds),
    eventsPerSecond: Math.round(total / result.seconds),
    target: 20_000,
    idbUsageMb: result.idbUsageMb,
  }
}

/** Latency stats (ms) of `samples` emits from `sender` seen by `receiver`. */
async function measure(sender: Page, receiver: Page): Promise<Record<string, unknown>> {
  await receiver.evaluate(() => {
    const g = globalThis as any
    g.latencies = []
    g.bench.on('chat.Message', (m: any) => {
      if (m.author === 'latency') g.latencies.push(performance.timeOrigin + performance.now() - m.sent_at)
    })
  })
  // One at a time, a few ms apart: latency, not throughput.
  await sender.evaluate(async (samples) => {
    const g = globalThis as any
    for (let i = 0; i < samples; i++) {
      await g.bench.emit('chat.Message', { author: 'latency', text: `ping ${i}`, sent_at: performance.timeOrigin + performance.now() })
      await new Promise((r) => setTimeout(r, 5))
    }
  }, SAMPLES)
  await receiver.waitForFunction((n) => (globalThis as any).latencies.length >= n, SAMPLES, { timeout: 60_000 })
  const latencies: number[] = await receiver.evaluate(() => (globalThis as any).latencies)
  latencies.sort((a, b) => a - b)
  const at = (q: number) => round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))])
  return { medianMs: at(0.5), p90Ms: at(0.9), p99Ms: at(0.99), maxMs: round(latencies[latencies.length - 1]), targetP99Ms: 20 }
}

async function open(page: Page, hubUrl: string, name: string): Promise<void> {
  await page.evaluate(
    async ({ hubUrl, schema, name }) => {
      const g = globalThis as any
      g.bench = g.hyperemitter.HyperEmitter({ name, schema })
      const peer = await g.bench.connect(hubUrl)
      await peer.synced
    },
    { hubUrl, schema: CHAT_SCHEMA, name },
  )
}

async function latencyThroughHub(browser: Browser, site: string, hubUrl: string): Promise<Record<string, unknown>> {
  // The hub already holds the catch-up events: start both pages synced, then measure.
  const a = await harness(browser, site)
  const b = await harness(browser, site)
  await open(a, hubUrl, 'latency-a')
  await open(b, hubUrl, 'latency-b')
  const stats = await measure(a, b)
  await a.context().close()
  await b.context().close()
  return stats
}

async function latencyBetweenTabs(browser: Browser, site: string, hubUrl: string): Promise<Record<string, unknown>> {
  const context = await browser.newContext()
  const pages: Page[] = []
  for (let i = 0; i < 2; i++) {
    const page = await context.newPage()
    await page.goto(site)
    await page.waitForFunction(() => document.getElementById('state')?.textContent === 'ready')
    await open(page, hubUrl, 'latency-tabs')
    pages.push(page)
  }
  const roles = await Promise.all(pages.map((p) => p.evaluate(() => (globalThis as any).bench.role)))
  const stats = await measure(pages[0], pages[1])
  await context.close()
  return { roles, ...stats }
}

function round(n: number): number {
  return Math.round(n * 100) / 100
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
