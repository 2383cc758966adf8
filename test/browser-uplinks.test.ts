// The browser's hub connections (src/browser/uplinks.ts), run in Node over
// real WebSockets to a NodeHyperEmitter hub: retrying a first attempt that
// fails, backoff with full jitter, reconnecting at once when the page comes
// back online, dropping sockets when it goes offline, giving up on UNAUTHORIZED.
import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import { Uplinks } from '../src/browser/uplinks.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { Log } from '../src/core/log.js'
import { TypedEmitter } from '../src/core/typed-emitter.js'
import type { StatusEvents } from '../src/core/emitter.js'
import { HyperEmitter, type NodeHyperEmitter } from '../src/index.js'
import { connectWebSocket } from '../src/transport/websocket.js'

const SCHEMA = 'syntax = "proto3"; message Note { string text = 1; }'
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function hub(port = 0, options: object = {}): Promise<{ emitter: NodeHyperEmitter; port: number; url: string }> {
  const emitter = HyperEmitter(null, SCHEMA, options) as NodeHyperEmitter
  const address = await emitter.listen(port, '127.0.0.1')
  cleanups.push(() => emitter.close())
  return { emitter, port: address.port, url: `ws://127.0.0.1:${address.port}/` }
}

async function freePort(): Promise<number> {
  const h = await hub()
  await h.emitter.close()
  return h.port
}

async function log(): Promise<Log> {
  const l = new Log(new MemoryLevel())
  await l.open()
  cleanups.push(() => l.close())
  return l
}

function uplinks(l: Log, options: Partial<ConstructorParameters<typeof Uplinks>[1]> = {}) {
  const status = new TypedEmitter<StatusEvents>()
  const events: string[] = []
  for (const e of ['peer:connected', 'peer:synced', 'peer:reconnecting', 'peer:disconnected', 'peer:error', 'peer:failed']) {
    status.on(e, () => void events.push(e))
  }
  const u = new Uplinks(l, { dial: (url) => connectWebSocket(url, { timeout: 2000 }), status, ...options })
  cleanups.push(() => u.close())
  return { u, status, events }
}

async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

describe('Uplinks (browser hub connections)', () => {
  it('keeps retrying a hub that is down at first, then syncs both ways once it is up', async () => {
    const port = await freePort()
    const l = await log()
    await l.append(Uint8Array.of(1))
    const { u, events } = uplinks(l, { reconnectTimeout: 50, maxReconnectTimeout: 200 })
    const peer = u.connect(`ws://127.0.0.1:${port}/`)
    await until(() => events.filter((e) => e === 'peer:reconnecting').length >= 2, 'two failed attempts')
    expect(peer.state).toBe('reconnecting')
    const h = await hub(port)
    await peer.synced
    expect(peer.state).toBe('synced')
    expect(peer.id).toBe(await h.emitter.getId())
    await until(() => (h.emitter as any).log.length === 1, 'the hub has our node')
    await h.emitter.emit('Note', { text: 'from the hub' })
    await until(() => l.length === 2, 'the hub node here')
    expect(u.connect(`ws://127.0.0.1:${port}/`)).toBe(peer)
  })

  it('waits out full-jitter backoff delays that grow up to the cap', async () => {
    const port = await freePort()
    const l = await log()
    const delays: number[] = []
    const { u, status } = uplinks(l, { reconnectTimeout: 10, maxReconnectTimeout: 80, random: () => 1 })
    status.on('peer:reconnecting', (info: { delay: number }) => void delays.push(info.delay))
    u.connect(`ws://127.0.0.1:${port}/`)
    await until(() => delays.length >= 5, 'five retries')
    expect(delays.slice(0, 5)).toEqual([10, 20, 40, 80, 80])
  })

  it('reconnectNow() skips the remaining delay (the page came back online)', async () => {
    const h = await hub()
    const l = await log()
    // A delay far beyond the test's patience: only reconnectNow() can bring the peer back in time.
    const { u } = uplinks(l, { reconnectTimeout: 60_000, maxReconnectTimeout: 60_000, random: () => 1 })
    const peer = u.connect(h.url)
    await peer.synced
    u.dropAll('test: offline')
    await until(() => peer.state === 'reconnecting', 'the dropped peer to wait')
    expect(peer.session).toBeUndefined()
    u.reconnectNow()
    await until(() => peer.state === 'synced', 'synced again', 5000)
    await l.append(Uint8Array.of(7))
    await until(() => (h.emitter as any).log.length === 1, 'a live node after reconnecting')
  })

  it('gives up on UNAUTHORIZED: peer:failed, synced rejects, no retries', async () => {
    const h = await hub(0, { authenticate: () => false })
    const l = await log()
    const { u, events } = uplinks(l, { reconnectTimeout: 10 })
    const peer = u.connect(h.url, 'wrong token')
    const err = await peer.synced.catch((e) => e)
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(peer.state).toBe('closed')
    expect(events).toContain('peer:failed')
    expect(events).not.toContain('peer:reconnecting')
    expect(u.peers).toEqual([])
  })

  it('close() rejects the synced promise of a peer that never got through, and stops retrying', async () => {
    const port = await freePort()
    const l = await log()
    const { u, events } = uplinks(l, { reconnectTimeout: 20 })
    const peer = u.connect(`ws://127.0.0.1:${port}/`)
    await until(() => events.includes('peer:reconnecting'), 'a retry')
    await u.close()
    const err = await peer.synced.catch((e) => e)
    expect(isHyperEmitterError(err, ErrorCodes.CLOSED)).toBe(true)
    const count = events.length
    await new Promise((r) => setTimeout(r, 100))
    expect(events.length).toBe(count)
    expect(() => u.connect(`ws://127.0.0.1:${port}/`)).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
  })
})
