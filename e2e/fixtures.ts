// Shared by the e2e specs: a page server (the demo page and a bare harness
// page, bundled once per worker) and hubs the tests can stop and restart.
//
// The pages are served from their own server, not the hub's, so a test can
// take the hub down and the page's origin (and so its IndexedDB) stays the
// same; it is told its hub with ?hub=. HubControl.page() is the demo as the
// hub itself serves it, for what only holds there (e2e/offline.spec.ts: the
// page reloads with its hub down thanks to its service worker).
import { mkdtempSync, rmSync } from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test as base, type BrowserContext, type Page } from '@playwright/test'
import { buildDemo, serveAssets, startHub, type Asset, type RunningHub } from '../examples/hub.js'
import { buildHarness } from './site.js'

export interface Site {
  /** Base URL of the page server, ending in '/'. */
  url: string
  assets: Map<string, Asset>
  /** The demo page for `hub` (a ws:// URL) on IndexedDB database `db`. */
  demo(hub: string, db: string): string
  /** The bare harness page (globalThis.hyperemitter, BrowserLevel, runConformance). */
  harness: string
}

interface ChatMessage {
  author: string
  text: string
  sent_at: number
}

/** A hub on a fixed ephemeral port and a temporary LevelDB, that can be stopped and started again. */
export class HubControl {
  hub: RunningHub | undefined
  port = 0
  /** Texts of every chat message the hub holds, in its log order, across restarts. */
  texts: string[] = []
  private readonly dir = mkdtempSync(join(tmpdir(), 'hyperemitter-e2e-hub-'))

  constructor(
    private readonly assets: Map<string, Asset>,
    /** The test site's origin: its pages connect to this hub from another port. */
    private readonly siteOrigin: string,
  ) {}

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/`
  }

  /** The demo page as the hub itself serves it (its own host is its hub), on IndexedDB database `db`. */
  page(db: string): string {
    return `http://127.0.0.1:${this.port}/?db=${encodeURIComponent(db)}&maxReconnect=1000`
  }

  async start(): Promise<RunningHub> {
    if (this.hub) return this.hub
    const hub = await startHub({ port: this.port, host: '127.0.0.1', dataDir: this.dir, assets: this.assets, allowedOrigins: [this.siteOrigin] })
    this.port = hub.port
    this.hub = hub
    this.texts = []
    hub.emitter.on('chat.Message', (m: ChatMessage) => void this.texts.push(m.text), { from: 'beginning' })
    return hub
  }

  async stop(): Promise<void> {
    const hub = this.hub
    this.hub = undefined
    await hub?.close()
  }

  async dispose(): Promise<void> {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** Emit a chat message from the hub itself. */
  async say(author: string, text: string): Promise<void> {
    await this.hub!.emitter.emit('chat.Message', { author, text, sent_at: Date.now() })
  }
}

export const test = base.extend<{ hub: HubControl; db: string }, { site: Site }>({
  site: [
    async ({}, use) => {
      const assets = await buildDemo({ minify: false })
      for (const [path, asset] of await buildHarness()) assets.set(path, asset)
      const handler = serveAssets(assets)
      const server = http.createServer(handler)
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
      await use({
        url,
        assets,
        // Reconnect attempts at most 1 s apart, so a restarted hub is found quickly.
        demo: (hub, db) => `${url}?hub=${encodeURIComponent(hub)}&db=${encodeURIComponent(db)}&maxReconnect=1000`,
        harness: `${url}harness.html`,
      })
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
    { scope: 'worker' },
  ],
  hub: async ({ site }, use) => {
    const control = new HubControl(site.assets, new URL(site.url).origin)
    await control.start()
    await use(control)
    await control.dispose()
  },
  // A database name of its own per test, so tests never see each other's IndexedDB.
  db: async ({}, use, testInfo) => {
    await use(`e2e-${testInfo.testId}-${Date.now()}`)
  },
})

export { expect }

/** Open the demo in `context` and wait until its emitter has a role (the log is open). */
export async function openChat(context: BrowserContext, url: string, label = 'page'): Promise<Page> {
  const page = await context.newPage()
  page.on('pageerror', (err) => console.error(`[${label}] page error: ${err.message}`))
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/WebSocket connection|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED/.test(msg.text())) {
      console.error(`[${label}] ${msg.text()}`)
    }
  })
  await page.goto(url)
  await expect(page.locator('#role')).not.toHaveAttribute('data-role', '')
  return page
}

/** Type `text` into the message box and send it. */
export async function send(page: Page, text: string): Promise<void> {
  await page.locator('#text').fill(text)
  await page.locator('#text').press('Enter')
}

/** The texts of the messages on the page, in display order. */
export function bodies(page: Page) {
  return page.locator('#messages .body')
}

/** Exactly one message with exactly this text is shown. */
export async function expectOnce(page: Page, text: string): Promise<void> {
  await expect(bodies(page).filter({ hasText: new RegExp(`^${escape(text)}$`) })).toHaveCount(1)
}

export async function expectState(page: Page, state: 'synced' | 'connecting' | 'offline' | 'local'): Promise<void> {
  await expect(page.locator('#status')).toHaveAttribute('data-state', state)
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
