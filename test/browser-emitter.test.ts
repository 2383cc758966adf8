// BrowserHyperEmitter outside a browser (no IndexedDB, no Web Locks: memory
// storage, no tab coordination), against a real Node hub over WebSocket: the
// connection state a page shows, pending counts, and refusals.
import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import { BrowserHyperEmitter, HyperEmitter as BrowserEmitter, type ConnectionState } from '../src/browser.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { HyperEmitter, type NodeHyperEmitter } from '../src/index.js'
import { DbKnownPeers } from '../src/sync/known-peers.js'
import { until } from './session-helpers.js'

const SCHEMA = 'syntax = "proto3"; message Note { string text = 1; }'
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function hub(port = 0, options: object = {}): Promise<{ emitter: NodeHyperEmitter; url: string; port: number }> {
  const emitter = HyperEmitter(null, SCHEMA, options) as NodeHyperEmitter
  const address = await emitter.listen(port, '127.0.0.1')
  cleanups.push(() => emitter.close())
  return { emitter, port: address.port, url: `ws://127.0.0.1:${address.port}/` }
}

function browser(options: object = {}): BrowserHyperEmitter {
  const emitter = BrowserEmitter({ schema: SCHEMA, reconnectTimeout: 20, maxReconnectTimeout: 100, ...options })
  cleanups.push(() => emitter.close())
  return emitter
}


describe('BrowserHyperEmitter against a Node hub', () => {
  it('syncs both ways and says so: connect() resolves, peer.synced, connection state "synced"', async () => {
    const h = await hub()
    const page = browser()
    const states: ConnectionState['state'][] = []
    page.status.on('connection', (c: ConnectionState) => void states.push(c.state))
    const got: string[] = []
    page.on('Note', (m: { text: string }) => void got.push(m.text))
    await page.emit('Note', { text: 'from the page' })
    const peer = await page.connect(h.url)
    expect(page.peers).toEqual([peer])
    await peer.synced
    expect(page.role).toBe('single')
    expect(page.connection).toMatchObject({ state: 'synced', pending: 0, hubs: [{ address: h.url, state: 'synced' }] })
    expect(states).toContain('connecting')
    await h.emitter.emit('Note', { text: 'from the hub' })
    await until(() => got.includes('from the hub'), 10_000, 'the hub event')
    const atHub: string[] = []
    h.emitter.on('Note', (m: { text: string }) => void atHub.push(m.text), { from: 'beginning' })
    await until(() => atHub.includes('from the page'), 10_000, 'the page event at the hub')
  })

  it('a failure to remember a hub reaches status "error" (the connection itself goes on)', async () => {
    const h = await hub()
    const db = new MemoryLevel()
    // The db refuses writes of the known-peer records, as a full disk would.
    db.hooks.prewrite.add((op: { key: unknown }) => {
      if (String(op.key).includes('hyperemitter-peers')) throw new Error('disk full')
    })
    const page = browser({ db })
    const errors: Error[] = []
    page.status.on('error', (err: Error) => void errors.push(err))
    const peer = await page.connect(h.url)
    await peer.synced
    await until(() => errors.length > 0, 10_000, 'the status error')
    expect(errors.some((e) => /known peers|disk full/.test(`${e.message} ${(e as any).cause?.message} ${(e as any).cause?.cause?.message}`))).toBe(true)
    expect(page.connection.state).toBe('synced')
  })

  it('counts what it wrote while the hub was away, and syncs it when the hub is back', async () => {
    const h = await hub()
    const port = h.port
    const page = browser()
    const peer = await page.connect(h.url)
    await peer.synced
    await h.emitter.close()
    await until(() => page.connection.state === 'offline', 10_000, 'offline')
    for (let i = 0; i < 3; i++) await page.emit('Note', { text: `pending ${i}` })
    expect(page.connection.pending).toBe(3)
    const again = await hub(port)
    await until(() => page.connection.state === 'synced', 10_000, 'synced again')
    expect(page.connection.pending).toBe(0)
    const atHub: string[] = []
    again.emitter.on('Note', (m: { text: string }) => void atHub.push(m.text), { from: 'beginning' })
    await until(() => atHub.length === 3, 10_000, 'the pending events at the hub')
  })

  it('keeps trying a hub that is down when connect() is called, and resolves once it is up', async () => {
    const h = await hub()
    const port = h.port
    await h.emitter.close()
    const page = browser()
    const connecting = page.connect(`ws://127.0.0.1:${port}/`)
    await until(() => page.connection.state === 'offline', 10_000, 'offline while the hub is down')
    await hub(port)
    const peer = await connecting
    await peer.synced
    expect(page.connection.state).toBe('synced')
  })

  it('reconnects at start-up to the hubs its db remembers, skipping addresses a page cannot dial', async () => {
    const h = await hub()
    const db = new MemoryLevel()
    cleanups.push(() => db.close())
    const known = new DbKnownPeers(db)
    await known.remember('tcp://127.0.0.1:1', 0)
    await known.remember(h.url, 0)
    const page = BrowserEmitter(db, SCHEMA, { reconnectTimeout: 20, maxReconnectTimeout: 100 })
    cleanups.push(() => page.close())
    await until(() => page.connection.state === 'synced', 10_000, 'synced with the remembered hub')
    expect(page.peers.map((p) => p.address)).toEqual([h.url])
  })

  it('rejects what a browser cannot dial, and a hub that refuses it', async () => {
    const page = browser()
    for (const target of [8080, 'tcp://127.0.0.1:8080', 'http://127.0.0.1/']) {
      const err = await page.connect(target as string).catch((e) => e)
      expect(isHyperEmitterError(err, ErrorCodes.NOT_SUPPORTED), String(target)).toBe(true)
    }
    const h = await hub(0, { authenticate: ({ token }: { token: string }) => token === 'secret' })
    const failed: unknown[] = []
    page.status.on('peer:failed', (info: unknown) => void failed.push(info))
    const err = await page.connect(h.url, { token: 'wrong' }).catch((e) => e)
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(failed).toHaveLength(1)
    expect(page.peers[0].state).toBe('closed')
    // Called again with the right token, the same emitter gets through.
    const peer = await page.connect(h.url, { token: 'secret' })
    await peer.synced
    expect(page.connection.state).toBe('synced')
  })

  it('close() rejects connect() calls and pending synced promises with CLOSED', async () => {
    const page = browser()
    const h = await hub()
    await h.emitter.close()
    const connecting = page.connect(h.url)
    await page.close()
    const err = await connecting.catch((e) => e)
    expect(isHyperEmitterError(err, ErrorCodes.CLOSED)).toBe(true)
    expect(isHyperEmitterError(await page.connect(h.url).catch((e) => e), ErrorCodes.CLOSED)).toBe(true)
  })
})
