/**
 * PeerManager's reconnect policy, with an injected random and a fake dial
 * over in-memory channels: exponential backoff with full jitter from
 * reconnectTimeout, capped; the counter resets after a completed catch-up
 * and not when a connection merely opens; every step is a status event.
 * Then what a page uses on top: retrying from the first failed attempt
 * (keepConnected), reconnectNow() when it comes back online, dropOutgoing()
 * when it goes offline, and the failures and state changes it relays.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, HyperEmitterError, isHyperEmitterError } from '../src/core/errors.js'
import type { StatusEvents } from '../src/core/emitter.js'
import { TypedEmitter } from '../src/core/emitter/typed-emitter.js'
import type { FrameChannel } from '../src/transport/channel.js'
import { createMemoryPair } from '../src/transport/memory.js'
import { backoffDelay, PeerManager, type Dial, type KnownPeerStore, type Peer, type PeerState } from '../src/sync/peers.js'
import { clockFrame, decodeFrame, errorFrame, handshakeFrame } from '../src/sync/protocol.js'
import { appendMany, headKeys, makeLog, randomWriter, until, within, type TestLog } from './session-helpers.js'
import { identityFor } from './helpers/signing.js'

interface Recorded {
  event: string
  info: Record<string, any>
}

/** A status emitter that records every peer event in order. */
function recorder(): { status: TypedEmitter<StatusEvents>; events: Recorded[]; of: (event: string) => Record<string, any>[] } {
  const status = new TypedEmitter<StatusEvents>()
  const events: Recorded[] = []
  for (const event of ['peer:connected', 'peer:disconnected', 'peer:error', 'peer:reconnecting', 'peer:synced', 'peer:failed']) {
    status.on(event, (info: Record<string, any>) => events.push({ event, info }))
  }
  return { status, events, of: (event) => events.filter((e) => e.event === event).map((e) => e.info) }
}

/**
 * A fake network with one server: `mode` decides what the next dial gets.
 *  up:     a channel whose far end a real PeerManager (the server) accepts
 *  down:   CONNECTION_FAILED
 *  flaky:  a far end that answers the handshake and clock, then hangs up before any catch-up
 *  refuse: a far end that answers with an UNAUTHORIZED Error frame
 */
class FakeNet {
  mode: 'up' | 'down' | 'flaky' | 'refuse' = 'up'
  dials = 0
  readonly serverSide = new Set<FrameChannel>()
  constructor(private readonly server: PeerManager) {}

  readonly dial: Dial = async () => {
    this.dials++
    if (this.mode === 'down') throw new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, 'connection refused (fake)')
    const [client, far] = createMemoryPair()
    if (this.mode === 'up') {
      this.serverSide.add(far)
      far.on('close', () => this.serverSide.delete(far))
      this.server.accept(far)
    } else {
      const mode = this.mode
      far.on('frame', async (bytes) => {
        const frame = decodeFrame(bytes)
        if (frame.case !== 'handshake') return
        far.send(handshakeFrame(true, new Uint8Array(32)))
        if (mode === 'refuse') {
          far.send(errorFrameBytes(ErrorCodes.UNAUTHORIZED))
        } else {
          far.send(await identityFor(await randomWriter(), frame.value.challenge))
          far.send(clockFrame(new Map()))
        }
        far.close()
      })
    }
    return client
  }

  /** Drop every live connection from the server's side. */
  dropAll(): void {
    for (const channel of [...this.serverSide]) channel.close()
  }
}

function errorFrameBytes(code: string): Uint8Array {
  return errorFrame(code, 'refused by the fake server')
}

const managers: PeerManager[] = []
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()))
})

async function setup(
  options: { reconnectTimeout?: number; maxReconnectTimeout?: number; random?: () => number; store?: KnownPeerStore; onChange?: (peer: Peer) => void } = {},
) {
  const serverLog = await makeLog()
  const clientLog = await makeLog()
  const server = new PeerManager(serverLog, { dial: () => Promise.reject(new Error('the server never dials')), status: new TypedEmitter() })
  const net = new FakeNet(server)
  const rec = recorder()
  const client = new PeerManager(clientLog, {
    dial: net.dial,
    status: rec.status,
    reconnectTimeout: options.reconnectTimeout ?? 10,
    maxReconnectTimeout: options.maxReconnectTimeout ?? 80,
    random: options.random ?? (() => 1),
    session: { keepAliveInterval: 0 },
    store: options.store,
    onChange: options.onChange,
  })
  managers.push(client, server)
  return { serverLog, clientLog, server, client, net, rec }
}

/** Resolves with the next status event `event` recorded after index `from`. */
async function nextEvent(rec: ReturnType<typeof recorder>, event: string, from: number): Promise<Record<string, any>> {
  await until(() => rec.events.slice(from).some((e) => e.event === event), 10_000, event)
  return rec.events.slice(from).find((e) => e.event === event)!.info
}

describe('backoffDelay', () => {
  it('is uniform over [0, min(max, base * 2^attempt)]: full jitter on a capped exponential', () => {
    const top = () => 1
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffDelay(a, 50, 1000, top))).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000])
    expect([0, 1, 2, 3].map((a) => backoffDelay(a, 50, 1000, () => 0))).toEqual([0, 0, 0, 0])
    const draws = [0.5, 0.25, 0.1, 0.9]
    expect(draws.map((r, a) => backoffDelay(a, 100, 30_000, () => r))).toEqual([50, 50, 40, 720])
    // Huge attempt counts stay finite and capped (no Infinity * 0 = NaN).
    expect(backoffDelay(5000, 1000, 30_000, () => 0.5)).toBe(15_000)
    expect(backoffDelay(5000, 1000, 30_000, () => 0)).toBe(0)
  })

  it('with the default 30 s cap, the seed reconnectTimeout grows to it and stays there', () => {
    const caps = Array.from({ length: 12 }, (_, a) => backoffDelay(a, 1000, 30_000, () => 1))
    expect(caps).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000, 30000, 30000])
  })
})

describe('PeerManager reconnect policy', () => {
  it('backs off exponentially while the server is down, reports each step, and resets only after a completed catch-up', async () => {
    const { serverLog, clientLog, client, net, rec } = await setup()
    await appendMany(serverLog, 5, 's')
    const peer = await client.connect('tcp://fake:1')
    await within(peer.synced, 10_000, 'first sync')
    expect(clientLog.length).toBe(5)
    expect(rec.of('peer:connected')).toHaveLength(1)
    expect(peer.attempt).toBe(0)

    // The server goes away: five failed attempts, each delay the doubled cap (random() = 1), then capped at 80.
    net.mode = 'down'
    const mark = rec.events.length
    net.dropAll()
    await until(() => rec.events.slice(mark).filter((e) => e.event === 'peer:reconnecting').length >= 5, 10_000, 'five reconnect attempts')
    const delays = rec.events
      .slice(mark)
      .filter((e) => e.event === 'peer:reconnecting')
      .slice(0, 5)
    expect(delays.map((e) => e.info.delay)).toEqual([10, 20, 40, 80, 80])
    expect(delays.map((e) => e.info.attempt)).toEqual([1, 2, 3, 4, 5])
    // Each failed dial is reported, not swallowed.
    expect(rec.events.slice(mark).filter((e) => e.event === 'peer:error').length).toBeGreaterThanOrEqual(4)
    expect(rec.of('peer:failed')).toEqual([])

    // Back up: the next attempt connects and catches up on what was emitted meanwhile.
    await appendMany(serverLog, 3, 't')
    const beforeUp = rec.events.length
    net.mode = 'up'
    await nextEvent(rec, 'peer:synced', beforeUp)
    await until(() => clientLog.length === 8, 10_000, 'catch-up after reconnect')
    expect(peer.state).toBe('synced')
    expect(peer.attempt).toBe(0)
    expect(headKeys(clientLog)).toEqual(headKeys(serverLog))

    // Dropped again: the first delay is back at reconnectTimeout.
    const again = rec.events.length
    net.dropAll()
    const first = await nextEvent(rec, 'peer:reconnecting', again)
    expect(first).toMatchObject({ attempt: 1, delay: 10 })
    await nextEvent(rec, 'peer:synced', again)
  })

  it('does not reset the counter when a connection opens but drops before catching up', async () => {
    const { client, net, rec } = await setup()
    const peer = await client.connect('tcp://fake:1')
    await within(peer.synced, 10_000, 'first sync')

    // Every attempt is accepted (handshake and clock come back) and then dropped before Synced.
    net.mode = 'flaky'
    const mark = rec.events.length
    net.dropAll()
    await until(() => rec.events.slice(mark).filter((e) => e.event === 'peer:reconnecting').length >= 4, 10_000, 'four attempts')
    const steps = rec.events.slice(mark).filter((e) => e.event === 'peer:reconnecting').slice(0, 4)
    expect(steps.map((e) => e.info.delay)).toEqual([10, 20, 40, 80])
    // The flaky attempts did connect: opening is not what resets the backoff.
    expect(rec.events.slice(mark).filter((e) => e.event === 'peer:connected').length).toBeGreaterThanOrEqual(2)

    net.mode = 'up'
    await nextEvent(rec, 'peer:synced', mark)
    expect(peer.attempt).toBe(0)
  })

  it('spreads retries with the injected random (full jitter), never in lockstep', async () => {
    const draws = [0.5, 0.25, 0.75, 0.1]
    let i = 0
    const { client, net, rec } = await setup({ reconnectTimeout: 8, maxReconnectTimeout: 1000, random: () => draws[i++ % draws.length] })
    const peer = await client.connect('tcp://fake:1')
    await within(peer.synced, 10_000, 'first sync')
    net.mode = 'down'
    const mark = rec.events.length
    net.dropAll()
    await until(() => rec.events.slice(mark).filter((e) => e.event === 'peer:reconnecting').length >= 4, 10_000, 'four attempts')
    const delays = rec.events
      .slice(mark)
      .filter((e) => e.event === 'peer:reconnecting')
      .slice(0, 4)
      .map((e) => e.info.delay)
    // caps 8, 16, 32, 64 times the draws
    expect(delays).toEqual([4, 4, 24, 6])
    net.mode = 'up'
    await nextEvent(rec, 'peer:synced', mark)
  })

  it('gives up loudly on a permanent refusal (peer:failed), and the first failure of connect() is the caller’s', async () => {
    const { client, net, rec } = await setup()
    net.mode = 'refuse'
    const err = await client.connect('tcp://fake:1').catch((e: unknown) => e)
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(client.peers).toEqual([])

    net.mode = 'down'
    const down = await client.connect('tcp://fake:2').catch((e: unknown) => e)
    expect(isHyperEmitterError(down, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(client.peers).toEqual([])

    // A connected peer refused later (say its token was revoked) is given up with a status event.
    net.mode = 'up'
    const peer = await client.connect('tcp://fake:3')
    await within(peer.synced, 10_000, 'sync')
    net.mode = 'refuse'
    const mark = rec.events.length
    net.dropAll()
    const failed = await nextEvent(rec, 'peer:failed', mark)
    expect(isHyperEmitterError(failed.error, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(peer.state).toBe('closed')
    expect(client.peers).toEqual([])
    const dials = net.dials
    // Nothing is retried after a give-up: one more reconnect window passes with no dial.
    await new Promise((r) => setTimeout(r, 100))
    expect(net.dials).toBe(dials)
  })

  it('retries remembered peers at start-up, reporting the failures, and close() stops every timer', async () => {
    const remembered: string[] = ['tcp://fake:9']
    const store: KnownPeerStore = {
      list: async () => remembered.map((address) => ({ address, lastSynced: 0 })),
      remember: async () => {},
      forget: async () => {},
    }
    const { client, net, rec } = await setup({ store, reconnectTimeout: 5, maxReconnectTimeout: 20 })
    net.mode = 'down'
    await client.reconnectKnown()
    await until(() => rec.of('peer:reconnecting').length >= 3, 10_000, 'retries of a known peer')
    expect(rec.of('peer:error').length).toBeGreaterThanOrEqual(2)
    expect(rec.of('peer:error')[0].address).toBe('tcp://fake:9')
    net.mode = 'up'
    await until(() => rec.of('peer:synced').length >= 1, 10_000, 'known peer synced')

    // close(): no timer, no dial afterwards.
    net.mode = 'down'
    net.dropAll()
    await until(() => rec.of('peer:reconnecting').length >= 4, 10_000, 'retry after the drop')
    await client.close()
    const dials = net.dials
    await new Promise((r) => setTimeout(r, 60))
    expect(net.dials).toBe(dials)
    expect(client.peers.every((p) => p.state === 'closed' && p.timer === undefined)).toBe(true)
  })

  it('refuses a reconnectTimeout that is not a positive number', async () => {
    const log: TestLog = await makeLog()
    expect(() => new PeerManager(log, { dial: async () => createMemoryPair()[0], status: new TypedEmitter(), reconnectTimeout: 0 })).toThrow(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    )
  })
})

describe('PeerManager for a page: keepConnected, reconnectNow, dropOutgoing', () => {
  it('keeps retrying a hub that is down at first, then syncs both ways once it is up; onChange sees every state', async () => {
    const states: PeerState[] = []
    const { serverLog, clientLog, client, net, rec } = await setup({ onChange: (p) => void states.push(p.state) })
    await appendMany(clientLog, 1, 'c')
    net.mode = 'down'
    const peer = client.keepConnected('ws://fake/')
    await until(() => rec.of('peer:reconnecting').length >= 2, 10_000, 'two failed attempts')
    expect(peer.state).toBe('reconnecting')
    expect(peer.session).toBeUndefined()
    expect(rec.of('peer:reconnecting').map((e) => e.attempt)).toEqual([1, 2])
    expect(rec.of('peer:error')[0]).toMatchObject({ address: 'ws://fake/' })
    expect(client.keepConnected('ws://fake/')).toBe(peer)

    net.mode = 'up'
    await within(peer.synced, 10_000, 'synced once the hub is up')
    expect(peer.state).toBe('synced')
    expect(peer.id).toBe(serverLog.writerId)
    await until(() => serverLog.length === 1, 10_000, 'the hub has our node')
    await appendMany(serverLog, 1, 's')
    await until(() => clientLog.length === 2, 10_000, 'the hub node here')
    expect(states.slice(0, 4)).toEqual(['connecting', 'reconnecting', 'connecting', 'reconnecting'])
    expect(states.slice(-2)).toEqual(['connected', 'synced'])

    await client.close()
    expect(states.at(-1)).toBe('closed')
  })

  it('waits out full-jitter backoff delays that grow up to the cap from the first failed attempt', async () => {
    const { client, net, rec } = await setup({ reconnectTimeout: 10, maxReconnectTimeout: 80, random: () => 1 })
    net.mode = 'down'
    client.keepConnected('ws://fake/')
    await until(() => rec.of('peer:reconnecting').length >= 5, 10_000, 'five retries')
    expect(rec.of('peer:reconnecting').slice(0, 5).map((e) => e.delay)).toEqual([10, 20, 40, 80, 80])
    // Every failed dial is reported, once.
    expect(rec.of('peer:error').length).toBeGreaterThanOrEqual(5)
    expect(rec.of('peer:error').length).toBeLessThanOrEqual(net.dials)
  })

  it('dropOutgoing() closes live connections to be retried; reconnectNow() skips the remaining delay from the first one on', async () => {
    // Delays far beyond the test's patience: only reconnectNow() can bring the peer back in time.
    const { serverLog, clientLog, client, net, rec } = await setup({ reconnectTimeout: 60_000, maxReconnectTimeout: 600_000, random: () => 1 })
    const peer = client.keepConnected('ws://fake/')
    await within(peer.synced, 10_000, 'first sync')
    const dials = net.dials
    client.reconnectNow()
    expect(net.dials).toBe(dials)

    net.mode = 'down'
    const mark = rec.events.length
    client.dropOutgoing('test: offline')
    expect(peer.state).toBe('reconnecting')
    expect(peer.session).toBeUndefined()
    expect(rec.events.slice(mark).map((e) => e.event)).toEqual(['peer:disconnected', 'peer:error', 'peer:reconnecting'])
    const dropped = rec.events[mark + 1].info.error
    expect(isHyperEmitterError(dropped, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(dropped.message).toContain('test: offline')
    expect(rec.events[mark + 2].info).toMatchObject({ attempt: 1, delay: 60_000 })

    // Still offline: the retry fails, and the counter started over (attempt 1, not 2).
    client.reconnectNow()
    const retried = await nextEvent(rec, 'peer:reconnecting', mark + 3)
    expect(retried).toMatchObject({ attempt: 1, delay: 60_000 })
    expect(net.dials).toBe(dials + 1)

    net.mode = 'up'
    client.reconnectNow()
    await until(() => peer.state === 'synced', 5000, 'synced again')
    await appendMany(clientLog, 1, 'live')
    await until(() => serverLog.length === 1, 5000, 'a live node after reconnecting')
  })

  it('gives up on UNAUTHORIZED: peer:failed, synced rejects, no retries, the failure recorded until dialed again', async () => {
    const failedWhenClosed: Array<string | undefined> = []
    const { client, net, rec } = await setup({
      onChange: (p) => {
        if (p.state === 'closed') failedWhenClosed.push(client.failed.get(p.address))
      },
    })
    net.mode = 'refuse'
    const peer = client.keepConnected('ws://fake/', 'wrong token')
    const err = await peer.synced.catch((e: unknown) => e)
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(peer.state).toBe('closed')
    expect(rec.of('peer:failed')).toHaveLength(1)
    expect(rec.of('peer:reconnecting')).toEqual([])
    expect(client.peers).toEqual([])
    expect(client.failed.get('ws://fake/')).toBe(ErrorCodes.UNAUTHORIZED)
    // Whoever is told of the 'closed' state can already tell why.
    expect(failedWhenClosed).toEqual([ErrorCodes.UNAUTHORIZED])
    const dials = net.dials
    await new Promise((r) => setTimeout(r, 100))
    expect(net.dials).toBe(dials)

    net.mode = 'up'
    const again = client.keepConnected('ws://fake/', 'right token')
    expect(again).not.toBe(peer)
    expect(again.token).toBe('right token')
    expect(client.failed.has('ws://fake/')).toBe(false)
    await within(again.synced, 10_000, 'synced with the right token')
  })

  it('a remembered hub whose stored token is refused: given up once, saying so; the store keeps it until a new token replaces it', async () => {
    const writes: Array<[string, number, string | undefined]> = []
    const store: KnownPeerStore = {
      list: async () => [{ address: 'ws://fake/', lastSynced: 5, token: 'stored token' }],
      remember: async (address, lastSynced, token) => void writes.push([address, lastSynced, token]),
      forget: async () => {},
    }
    const { client, net, rec } = await setup({ store })
    net.mode = 'refuse'
    await client.reconnectKnown()
    const failed = await nextEvent(rec, 'peer:failed', 0)
    expect(isHyperEmitterError(failed.error, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(failed.error.message).toContain('token stored for it in the db')
    expect(failed.error.details).toEqual({ address: 'ws://fake/', storedToken: true })
    expect(isHyperEmitterError(failed.error.cause, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(client.failed.get('ws://fake/')).toBe(ErrorCodes.UNAUTHORIZED)
    expect(rec.of('peer:reconnecting')).toEqual([])
    const dials = net.dials
    await new Promise((r) => setTimeout(r, 100))
    expect(net.dials).toBe(dials)
    expect(writes).toEqual([])

    net.mode = 'up'
    const again = client.keepConnected('ws://fake/', 'new token')
    await within(again.synced, 10_000, 'synced with the new token')
    await until(() => writes.length > 0, 10_000, 'the new token stored')
    expect(writes[0]).toEqual(['ws://fake/', expect.any(Number), 'new token'])
  })

  it('close() rejects the synced promise of a peer that never got through, and stops retrying', async () => {
    const { client, net, rec } = await setup({ reconnectTimeout: 20 })
    net.mode = 'down'
    const peer = client.keepConnected('ws://fake/')
    await until(() => rec.of('peer:reconnecting').length >= 1, 10_000, 'a retry')
    await client.close()
    const err = await peer.synced.catch((e: unknown) => e)
    expect(isHyperEmitterError(err, ErrorCodes.CLOSED)).toBe(true)
    expect(peer.timer).toBeUndefined()
    const count = rec.events.length
    const dials = net.dials
    await new Promise((r) => setTimeout(r, 100))
    expect(rec.events.length).toBe(count)
    expect(net.dials).toBe(dials)
    expect(() => client.keepConnected('ws://fake/')).toThrow(expect.objectContaining({ code: ErrorCodes.CLOSED }))
  })
})
