/**
 * Replication end to end through the public API (`HyperEmitter` from
 * src/index.ts), over real sockets on 127.0.0.1 with ephemeral ports: one
 * suite run over TCP and over WebSocket, and over memory-level and
 * classic-level where storage matters. Raw clients (test/helpers/raw-peers.ts)
 * speak the protocol by hand where a test needs to misbehave.
 */
import { readFileSync } from 'node:fs'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import * as net from 'node:net'
import { create, toBinary } from '@bufbuild/protobuf'
import type { IncomingMessage } from 'node:http'
import { HyperEmitter, ErrorCodes, isHyperEmitterError, type Db, type Peer, type ReplicationOptions } from '../src/index.js'
import { toHex } from '../src/core/bytes/bytes.js'
import type { Log } from '../src/core/log/log.js'
import { encodeNode, decodeNode } from '../src/core/codec/node.js'
import type { LogEntry } from '../src/core/types.js'
import { ClockSchema, FrameSchema, NodesSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'
import { clockFrame, decodeFrame, handshakeFrame, identityFrame, nodesFrame, pingFrame, PROTOCOL_VERSION } from '../src/sync/protocol.js'
import { handshakeMessage } from '../src/core/identity/writer-key.js'
import { encodeFrame as lengthPrefixed, FrameDecoder } from '../src/transport/tcp.js'
import { classicFactory, memoryFactory, type DbFactory } from './helpers/dbs.js'
import { clockFrameLimit } from '../src/sync/clock-frame.js'
import { identityFor, signatureOver, signedNodes } from './helpers/signing.js'
import { sha256 } from '../src/core/bytes/hash.js'
import { rawHandshake, rawTcp, rawWebSocket, type RawClient } from './helpers/raw-peers.js'
import { randomWriter, until, within } from './session-helpers.js'
import { collectEscapes, nextStatus } from './helpers/watch.js'

// The seed's fixture schema: Hello, userAdded, userRemoved (proto2).
const SCHEMA = readFileSync(new URL('./fixtures/messages.proto', import.meta.url), 'utf8')
const HOST = '127.0.0.1'

type Emitter = HyperEmitter

/** The log behind an emitter: tests compare heads and lengths, the public API stays as it is. */
function logOf(e: Emitter): Log {
  return (e as unknown as { log: Log }).log
}

function heads(e: Emitter): string[] {
  return logOf(e).heads().map(toHex).sort()
}

interface Transport {
  name: 'tcp' | 'websocket'
  /** Dial the hub at `port` the way users would for this transport. */
  connect(e: Emitter, port: number, options?: { token?: string; query?: string }): Promise<Peer>
  /** A raw client speaking the protocol by hand. */
  raw(port: number): Promise<RawClient>
}

const tcp: Transport = {
  name: 'tcp',
  connect: (e, port, o = {}) => (o.token === undefined ? e.connect(port, HOST) : e.connect(port, HOST, { token: o.token })),
  raw: (port) => rawTcp(port),
}
const websocket: Transport = {
  name: 'websocket',
  connect: (e, port, o = {}) => e.connect(`ws://${HOST}:${port}/${o.query ?? ''}`, { token: o.token }),
  raw: (port) => rawWebSocket(`ws://${HOST}:${port}/`),
}
const transports = [tcp, websocket]

// ---- bookkeeping: every emitter and db made here is closed after each test ----

const open: Emitter[] = []
const factories: DbFactory[] = []
const memory = memoryFactory()
const classic = classicFactory()
factories.push(memory, classic)

function make(db: Db | null = null, options: ReplicationOptions = {}): Emitter {
  const e = HyperEmitter(db, SCHEMA, { reconnectTimeout: 50, ...options })
  open.push(e)
  // Background failures are expected in many tests (refused peers...); they must not print.
  e.status.on('error', () => {})
  return e
}

async function closeAll(...emitters: Emitter[]): Promise<void> {
  await Promise.all(emitters.map((e) => e.close()))
}

const dbsToClose: Db[] = []
function db(factory: DbFactory): Db {
  const d = factory.create()
  dbsToClose.push(d)
  return d
}
function reopen(factory: DbFactory, d: Db): Db {
  const again = factory.reopen(d)!
  dbsToClose.push(again)
  return again
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close().catch(() => {})))
  await Promise.all(dbsToClose.splice(0).map((d) => d.close().catch(() => {})))
})
afterAll(() => {
  for (const f of factories) f.cleanup()
})

// Anything escaping (an unhandled rejection, an uncaught exception) fails the suite.
const escaped = collectEscapes()
afterAll(() => {
  expect(escaped).toEqual([])
})

// ---- small helpers ----


/** Records every `name` event a listener gets. */
function record<T = any>(e: Emitter, name: string): T[] {
  const seen: T[] = []
  e.on(name, (m: T) => {
    seen.push(m)
  })
  return seen
}

/** Every event in the emitter's log, from the beginning, as { name, payload }. */
async function allEvents(e: Emitter): Promise<Array<{ name: string; payload: any }>> {
  const n = logOf(e).length
  const out: Array<{ name: string; payload: any }> = []
  if (n === 0) return out
  const it = e.events({ from: 'beginning' })
  for await (const event of it) {
    out.push(event)
    if (out.length === n) break
  }
  return out
}

/** Resolves once every emitter's log holds `n` nodes (bounded). */
async function converged(emitters: Emitter[], n: number, ms = 20_000): Promise<void> {
  await until(() => emitters.every((e) => logOf(e).length === n), ms, `all logs at ${n} (now ${emitters.map((e) => logOf(e).length).join(',')})`)
}

/** All nodes of an emitter's log, in change order. */
async function nodesOf(e: Emitter): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  for await (const entry of logOf(e).read()) out.push(entry)
  return out
}

const frameBytes = (body: any): Uint8Array => toBinary(FrameSchema, create(FrameSchema, { body }))

// =====================================================================================

describe.each(transports)('replication over $name', (T) => {
  describe.each([memory, classic])('on $name', (factory) => {
    it('pairs: every listener on every peer sees every event exactly once, both directions (the seed example)', async () => {
      const one = make(db(factory))
      const two = make(db(factory))
      const { port } = await one.listen(0, HOST)
      const peer = await T.connect(two, port)
      await within(peer.synced, 10_000, 'first sync')

      const removedOnOne = record(one, 'userRemoved')
      const addedOnTwo = record(two, 'userAdded')
      const helloOne = [record(one, 'Hello'), record(one, 'Hello')]
      const helloTwo = [record(two, 'Hello'), record(two, 'Hello')]

      // The seed: each message sent on the opposite emitter, each handled once.
      await one.emit('userAdded', { id: 1, username: 'user' })
      await two.emit('userRemoved', { id: 1 })
      const pending: Promise<void>[] = []
      for (let i = 0; i < 20; i++) {
        pending.push(one.emit('Hello', { from: 'one', message: `${i}` }))
        pending.push(two.emit('Hello', { from: 'two', message: `${i}` }))
      }
      await Promise.all(pending)
      // Sentinels last: each peer's nodes arrive in its change order, so once
      // both sentinels are seen everything before them is in, and any echo or
      // duplicate would have been counted.
      await Promise.all([one.emit('Hello', { from: 'one', message: 'end' }), two.emit('Hello', { from: 'two', message: 'end' })])
      const listeners = [...helloOne, ...helloTwo]
      await until(() => listeners.every((l) => l.filter((m: any) => m.message === 'end').length === 2), 10_000, 'sentinels')

      expect(removedOnOne).toEqual([{ id: 1 }])
      expect(addedOnTwo).toEqual([{ id: 1, username: 'user' }])
      const expected = ['one', 'two'].flatMap((from) => [...Array.from({ length: 20 }, (_, i) => `${from}:${i}`), `${from}:end`]).sort()
      for (const l of listeners) expect(l.map((m: any) => `${m.from}:${m.message}`).sort()).toEqual(expected)
      expect(heads(one)).toEqual(heads(two))
      expect(logOf(one).length).toBe(logOf(two).length)
      // No echo, nothing twice: two sent exactly its own 22 nodes and received the rest of the log once.
      const stats = peer.session!.stats
      expect(stats.nodesSent).toBe(22)
      expect(stats.nodesReceived).toBe(logOf(two).length - 22)
    })
  })

  it('a restarted peer (same classic-level dir) reconnects to its known peer by itself and catches up', async () => {
    const hub = make(db(memory))
    const { port } = await hub.listen(0, HOST)
    const dbB = db(classic)
    const b = make(dbB)
    await within((await T.connect(b, port)).synced, 10_000, 'sync')
    await b.emit('Hello', { from: 'b', message: 'before restart' })
    await converged([hub, b], 2)
    await b.close()
    await dbB.close()

    // Missed while b was away.
    for (let i = 0; i < 5; i++) await hub.emit('Hello', { from: 'hub', message: `missed ${i}` })
    const b2 = make(reopen(classic, dbB))
    const synced = nextStatus(b2, 'peer:synced')
    const seen = record(b2, 'Hello')
    // No connect(): the known peer comes from the db.
    const info = await synced
    expect(info).toMatchObject({ direction: 'outgoing', id: await hub.getId() })
    await converged([hub, b2], logOf(hub).length)
    expect(seen.map((m: any) => m.message)).toEqual(['missed 0', 'missed 1', 'missed 2', 'missed 3', 'missed 4'])
    expect(heads(b2)).toEqual(heads(hub))
    expect(b2.peers.map((p) => p.address)).toEqual([T.name === 'tcp' ? `tcp://${HOST}:${port}` : `ws://${HOST}:${port}/`])
    // Caught up on what was missed, not the whole log again.
    expect(info.nodesReceived).toBe(5)
  })

  it('reconnects after the server restarts on the same port: peer:reconnecting, then synced again', async () => {
    const dbA = db(classic)
    const a = make(dbA)
    const { port } = await a.listen(0, HOST)
    const b = make(db(memory), { reconnectTimeout: 50 })
    await within((await T.connect(b, port)).synced, 10_000, 'sync')
    const common = logOf(a).length
    const reconnecting = nextStatus(b, 'peer:reconnecting')
    await a.close()
    await dbA.close()
    const first = await reconnecting
    expect(first).toMatchObject({ attempt: 1 })
    expect(first.delay).toBeGreaterThanOrEqual(0)
    expect(first.delay).toBeLessThanOrEqual(50)

    // Written on b while the server is down.
    await b.emit('Hello', { from: 'b', message: 'while down' })
    const a2 = make(reopen(classic, dbA))
    const resynced = nextStatus(b, 'peer:synced')
    expect((await a2.listen(port, HOST)).port).toBe(port)
    await resynced
    await a2.emit('Hello', { from: 'a', message: 'after restart' })
    await converged([a2, b], common + 2)
    expect(heads(a2)).toEqual(heads(b))
    expect((await allEvents(a2)).map((e) => e.payload.message)).toContain('while down')
    expect(b.peers[0].state).toBe('synced')
    expect(b.peers[0].attempt).toBe(0)
  })

  it('mesh from EventPeer: C connects to B through discovery; discover:false prevents it', async () => {
    const a = make()
    const { port } = await a.listen(0, HOST)
    const b = make()
    const bAddress = await b.listen(0, HOST)
    await within((await T.connect(b, port)).synced, 10_000, 'b synced')
    const bId = await b.getId()

    // b announced 127.0.0.1: dialing a loopback address a peer names takes the application's word.
    const c = make(null, { discover: (p) => p.private && p.id === bId })
    const cToB = nextStatus(c, 'peer:connected', (info) => info.id === bId)
    await T.connect(c, port)
    const info = await cToB
    expect(info).toMatchObject({ direction: 'outgoing', address: `tcp://${HOST}:${bAddress.port}`, transport: 'tcp' })
    await nextStatus(c, 'peer:synced', (i) => i.id === bId)
    expect(c.peers.map((p) => p.address).sort()).toEqual(
      [T.name === 'tcp' ? `tcp://${HOST}:${port}` : `ws://${HOST}:${port}/`, `tcp://${HOST}:${bAddress.port}`].sort(),
    )

    // The same setup with discover: false: d learns of b (the EventPeer is in its log) and stays put.
    const d = make(null, { discover: false })
    const sawEventPeer = new Promise<void>((resolve) => d.on('EventPeer', (m: any) => {
      if (m.id === bId) resolve()
    }))
    const dialedB: unknown[] = []
    d.status.on('peer:connected', (i: any) => i.id === bId && dialedB.push(i))
    await T.connect(d, port)
    await within(sawEventPeer, 10_000, "b's EventPeer on d")
    // Discovery acts within a few turns of the event (an id lookup, then connect()).
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0))
    expect(d.peers.map((p) => p.address)).toEqual([T.name === 'tcp' ? `tcp://${HOST}:${port}` : `ws://${HOST}:${port}/`])
    expect(dialedB).toEqual([])
  })

  it('ten peers in a star converge to the same heads', async () => {
    const hub = make()
    const { port } = await hub.listen(0, HOST)
    const spokes = Array.from({ length: 9 }, () => make(null, { discover: false }))
    await Promise.all(spokes.map(async (s) => within((await T.connect(s, port)).synced, 15_000, 'spoke sync')))
    const all = [hub, ...spokes]
    await Promise.all(all.flatMap((e, i) => Array.from({ length: 5 }, (_, j) => e.emit('Hello', { from: `p${i}`, message: `${j}` }))))
    // The hub's EventPeer plus 5 events from each of the ten.
    await converged(all, 1 + 50)
    const expected = heads(hub)
    for (const s of spokes) expect(heads(s)).toEqual(expected)
    const events = await allEvents(spokes[8])
    expect(events.filter((e) => e.name === 'Hello')).toHaveLength(50)
  })

  it('authenticate refuses a peer: it gets no Nodes frame and an UNAUTHORIZED error', async () => {
    const requests: IncomingMessage[] = []
    const hub = make(null, {
      authenticate: (peer) => {
        if (peer.transport === 'tcp') return peer.token === 'secret'
        const request = peer.request as IncomingMessage
        requests.push(request)
        return request.headers['x-token'] === 'secret' || new URL(request.url ?? '/', 'http://x').searchParams.get('token') === 'secret'
      },
    })
    const { port } = await hub.listen(0, HOST)
    await hub.emit('Hello', { from: 'hub', message: 'private' })

    // An emitter with the right credentials replicates.
    const good = make()
    const goodPeer = await T.connect(good, port, T.name === 'tcp' ? { token: 'secret' } : { query: '?token=secret' })
    await within(goodPeer.synced, 10_000, 'authorised sync')
    expect(logOf(good).length).toBe(logOf(hub).length)

    // One without is refused with a coded error, and holds nothing of the hub's log.
    const bad = make()
    const err = await T.connect(bad, port, { token: 'wrong' }).catch((e: unknown) => e)
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(logOf(bad).length).toBe(0)
    expect(bad.peers).toEqual([])

    // By hand: the refused peer's connection carries no Nodes frame at all.
    // Nothing of the hub's log, not even its writer id, and no Pong: only its
    // challenge, then the refusal (pings before and after the Identity).
    const raw = await T.raw(port)
    raw.send(handshakeFrame(true, crypto.getRandomValues(new Uint8Array(32))))
    raw.send(pingFrame(1))
    raw.send(await identityFor(await randomWriter(), (await raw.next('handshake')).challenge, 'wrong'))
    raw.send(pingFrame(2))
    const error = await raw.next('error')
    expect(error.code).toBe(ErrorCodes.UNAUTHORIZED)
    await within(raw.closed, 10_000, 'refused connection closed')
    expect(raw.frames.map((f) => f.case)).toEqual(['handshake', 'error'])
    expect(error.message).not.toContain(logOf(hub).writerId)

    // A peer that cannot prove the key it claims is refused the same way, before authenticate runs.
    const liar = await T.raw(port)
    liar.send(handshakeFrame(true, crypto.getRandomValues(new Uint8Array(32))))
    const challenge = (await liar.next('handshake')).challenge
    const claimed = await randomWriter()
    const impostor = await randomWriter()
    liar.send(identityFrame(claimed.writerKey, await impostor.sign(handshakeMessage(challenge, claimed.writer)), 'secret'))
    expect((await liar.next('error')).code).toBe(ErrorCodes.BAD_SIGNATURE)
    await within(liar.closed, 10_000, 'liar closed')
    expect(liar.frames.map((f) => f.case)).toEqual(['handshake', 'error'])

    if (T.name === 'websocket') {
      // The hook saw the upgrade request: a header is enough.
      expect(requests.every((r) => typeof r.headers.host === 'string')).toBe(true)
      const withHeader = await rawWebSocket(`ws://${HOST}:${port}/`, { 'x-token': 'secret' })
      await rawHandshake(withHeader, await randomWriter())
      await withHeader.next('clock')
      withHeader.send(clockFrame(new Map()))
      const nodes = await withHeader.next('nodes')
      expect(nodes.nodes.length).toBe(logOf(hub).length)
      withHeader.destroy()
    }
  })

  it('a hub admits peers by public key alone: an allow-list, no token', async () => {
    const friend = make()
    const stranger = make()
    const allowed = new Set([await friend.getPublicKey()])
    const seen: string[] = []
    const hub = make(null, {
      authenticate: (peer) => {
        seen.push(peer.publicKey)
        return allowed.has(peer.publicKey)
      },
    })
    const { port } = await hub.listen(0, HOST)
    await hub.emit('Hello', { from: 'hub', message: 'members only' })
    await within((await T.connect(friend, port)).synced, 10_000, 'friend synced')
    expect(logOf(friend).length).toBe(logOf(hub).length)
    const err = await T.connect(stranger, port).catch((e: unknown) => e)
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(logOf(stranger).length).toBe(0)
    expect(seen).toEqual([await friend.getPublicKey(), await stranger.getPublicKey()])
  })

  it('a tampered, forged or badly signed node is refused with its code (Refused, or an Error for garbage), nothing of it is stored, and the hub keeps serving', async () => {
    const hub = make()
    const { port } = await hub.listen(0, HOST)
    await hub.emit('Hello', { from: 'hub', message: 'x' })

    // Genuine nodes of another writer, then tampered, forged and badly signed copies.
    const source = make()
    for (let i = 0; i < 3; i++) await source.emit('Hello', { from: 'src', message: `${i}` })
    const src = logOf(source)
    const genuine = (await nodesOf(source)).map((e) => e.bytes)
    const first = decodeNode(genuine[0])
    const changedValue = encodeNode({ ...first, value: first.value.map((b, i) => (i === first.value.length - 1 ? b ^ 1 : b)) })
    const attacker = await randomWriter()
    // A node under the source's id at its next seq, made by someone without its key.
    const forged = encodeNode({ writer: src.writer, seq: 4, links: [sha256(genuine[2])], value: first.value })
    const oldSignature = await signatureOver(src, genuine[0])
    const badBits = { ...(await signatureOver(src, genuine[2])) }
    badBits.signature = badBits.signature.slice()
    badBits.signature[5] ^= 0x10
    const cases: Array<{ what: string; frame: Uint8Array; code: string }> = [
      // The first node's payload changed: the signature over the last node does not cover it.
      { what: 'changed payload', frame: await signedNodes([changedValue, genuine[1], genuine[2]], [src]), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'flipped byte in the encoding', frame: await signedNodes([genuine[0].map((b, i) => (i === 1 ? 0xff : b))], [src]), code: ErrorCodes.INVALID_NODE },
      { what: 'no signature at all', frame: nodesFrame(genuine), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'a forged node under the source’s id, signed by another key', frame: await signedNodes([...genuine, forged], [], [{ ...(await signatureOver(attacker, forged)), writer: src.writer, key: src.writerKey }]), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'the attacker’s key claimed for the source’s id', frame: await signedNodes([...genuine, forged], [], [{ ...(await signatureOver(attacker, forged)), writer: src.writer }]), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'a bit flipped in the signature', frame: await signedNodes(genuine, [], [badBits]), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'a valid signature over other bytes', frame: await signedNodes(genuine, [], [{ ...oldSignature, signature: await src.sign(new Uint8Array(32)) }]), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'a replayed older signature', frame: await signedNodes(genuine, [], [oldSignature]), code: ErrorCodes.BAD_SIGNATURE },
      { what: 'a forged node of the hub’s own writer', frame: await signedNodes([encodeNode({ ...first, writer: logOf(hub).writer })], [attacker]), code: ErrorCodes.BAD_SIGNATURE },
    ]
    const before = { length: logOf(hub).length, heads: heads(hub) }
    const errors: any[] = []
    const refusals: any[] = []
    hub.status.on('peer:error', (i: any) => errors.push(i.error))
    hub.status.on('peer:refused', (i: any) => refusals.push(i))
    for (const c of cases) {
      const raw = await T.raw(port)
      await rawHandshake(raw, attacker)
      await raw.next('clock')
      raw.send(clockFrame(new Map()))
      raw.send(c.frame)
      if (c.code === ErrorCodes.INVALID_NODE) {
        // Garbage: the peer is disconnected.
        const error = await raw.next('error')
        expect(error.code, c.what).toBe(c.code)
        await within(raw.closed, 10_000, 'disconnect after a bad node')
      } else {
        // A refused writer: told with Refused, the connection stays up.
        const refused = await raw.next('refused')
        expect(refused.code, c.what).toBe(c.code)
        expect(raw.frames.some((f) => f.case === 'error'), c.what).toBe(false)
        raw.destroy()
      }
      expect(logOf(hub).length, c.what).toBe(before.length)
      expect(heads(hub), c.what).toEqual(before.heads)
    }
    expect(errors.filter((e) => e.code !== ErrorCodes.CONNECTION_FAILED).map((e) => e.code)).toEqual([ErrorCodes.INVALID_NODE])
    // Each refusal once, not per connection: one per writer, code and seq.
    const keys = refusals.map((r) => `${r.writer}:${r.code}:${r.seq}`)
    expect(new Set(keys).size).toBe(keys.length)
    expect(refusals.every((r) => r.by === 'us' && r.code === ErrorCodes.BAD_SIGNATURE)).toBe(true)

    // Still up, still serving; and the forged node never blocks its real writer.
    await source.emit('Hello', { from: 'src', message: 'after the forgery' })
    await within((await T.connect(source, port)).synced, 10_000, 'the real writer syncs')
    expect(heads(hub)).toEqual(heads(source))
    const peer = make()
    await within((await T.connect(peer, port)).synced, 10_000, 'sync after the attacks')
    expect(heads(peer)).toEqual(heads(hub))
  })

  it('until the peer\'s Clock is in, a frame bigger than maxClockWriters allows is refused from its length; the Handshake says maxFrameSize', async () => {
    const hub = make(null, { maxClockWriters: 100 })
    const { port } = await hub.listen(0, HOST)
    const errors: any[] = []
    hub.status.on('peer:error', (i: any) => errors.push(i.error))
    const raw = await T.raw(port)
    await rawHandshake(raw, await randomWriter())
    expect((await raw.next('handshake')).maxFrameSize).toBe(4 * 1024 * 1024)
    // The hub accepted us and sent its Clock: a Clock of ours is what it takes next.
    await raw.next('clock')
    const over = clockFrameLimit(100) + 1
    if (T.name === 'tcp') {
      // Only the length: the hub must not wait for a body it would refuse.
      raw.sendRaw(Uint8Array.of(0, 0, over >> 8, over & 0xff))
    } else {
      raw.send(new Uint8Array(over).fill(0x12, 0, 1))
    }
    await within(raw.closed, 10_000, 'disconnect on an oversize clock')
    await until(() => errors.length > 0, 10_000, 'peer:error')
    expect(errors[0].code).toBe(ErrorCodes.FRAME_TOO_LARGE)
    // A Clock within it is taken, and frames after it may be of any size again.
    const honest = make()
    await honest.emit('Hello', { from: 'honest', message: 'x'.repeat(20_000) })
    const peer = await T.connect(honest, port)
    await within(peer.synced, 10_000, 'sync after the refusal')
    expect(heads(hub)).toEqual(heads(honest))
  })

  it('a sender builds no frame bigger than the maxFrameSize the peer\'s Handshake said', async () => {
    const hub = make(null, { session: { maxBatchBytes: 256 * 1024 } })
    const pending: Promise<void>[] = []
    for (let i = 0; i < 300; i++) pending.push(hub.emit('Hello', { from: 'hub', message: `${i} ${'x'.repeat(200)}` }))
    await Promise.all(pending)
    const { port } = await hub.listen(0, HOST)
    const raw = await T.raw(port)
    await rawHandshake(raw, await randomWriter(), { maxFrameSize: 8 * 1024 })
    await raw.next('clock')
    raw.send(clockFrame(new Map()))
    await raw.next('synced')
    const nodes = raw.frames.filter((f) => f.case === 'nodes')
    expect(nodes.reduce((n, f) => n + (f.value as { nodes: unknown[] }).nodes.length, 0)).toBe(logOf(hub).length)
    // 300 nodes of ~250 bytes: one 256 KiB frame if the sender ignored the peer's limit.
    expect(nodes.length).toBeGreaterThan(8)
    expect(Math.max(...raw.sizes)).toBeLessThan(8 * 1024)
    raw.destroy()
  })

  it('random and truncated frames never crash the process nor change the log (fast-check)', async () => {
    const hub = make()
    const { port } = await hub.listen(0, HOST)
    await hub.emit('Hello', { from: 'hub', message: 'x' })
    const before = { length: logOf(hub).length, heads: heads(hub) }
    const source = make()
    for (let i = 0; i < 3; i++) await source.emit('Hello', { from: 'src', message: `${i}` })
    const foreign = (await nodesOf(source)).map((e) => e.bytes).slice(1)
    const valid = [
      handshakeFrame(true, new Uint8Array(32)),
      clockFrame(new Map()),
      frameBytes({ case: 'clock', value: create(ClockSchema, { entries: [] }) }),
      nodesFrame(foreign),
      frameBytes({ case: 'nodes', value: create(NodesSchema, { nodes: [new Uint8Array(40)] }) }),
    ]
    const frame = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.constantFrom(...valid),
      // A valid frame cut short.
      fc.tuple(fc.constantFrom(...valid), fc.nat()).map(([f, n]) => f.subarray(0, n % Math.max(1, f.length))),
    )
    const script = fc.record({
      handshakeFirst: fc.boolean(),
      frames: fc.array(frame, { maxLength: 6 }),
      // TCP only: raw bytes appended after the frames (a truncated prefix or garbage).
      tail: fc.uint8Array({ maxLength: 12 }),
    })
    await fc.assert(
      fc.asyncProperty(script, async ({ handshakeFirst, frames, tail }) => {
        const raw = await T.raw(port)
        if (handshakeFirst) raw.send(valid[0])
        for (const f of frames) raw.send(f)
        if (T.name === 'tcp' && tail.length > 0) raw.sendRaw(tail)
        raw.end()
        await Promise.race([raw.closed, new Promise((r) => setTimeout(r, 3000))])
        raw.destroy()
        expect(logOf(hub).length).toBe(before.length)
        expect(heads(hub)).toEqual(before.heads)
      }),
      { numRuns: 40 },
    )
    // The process is alive and so is the hub.
    const peer = make()
    await within((await T.connect(peer, port)).synced, 10_000, 'sync after fuzzing')
    expect(heads(peer)).toEqual(heads(hub))
  })

  it('a version mismatch is a clear VERSION_MISMATCH on both sides', async () => {
    const hub = make()
    const { port } = await hub.listen(0, HOST)
    const hubError = nextStatus(hub, 'peer:error', (i) => isHyperEmitterError(i.error, ErrorCodes.VERSION_MISMATCH))
    const raw = await T.raw(port)
    raw.send(handshakeFrame(true, new Uint8Array(32), PROTOCOL_VERSION + 1))
    const error = await raw.next('error')
    expect(error.code).toBe(ErrorCodes.VERSION_MISMATCH)
    expect(error.message).toMatch(new RegExp(`version ${PROTOCOL_VERSION + 1}.*version ${PROTOCOL_VERSION}`))
    expect(raw.frames.map((f) => f.case)).not.toContain('nodes')
    expect((await hubError).error.message).toMatch(/protocol version/)
    await within(raw.closed, 10_000, 'closed after mismatch')
  })
})

// =====================================================================================

describe('replication across transports', () => {
  it('a chain TCP -> hub -> WebSocket: the hub relays both ways without being asked', async () => {
    const hub = make()
    const { port } = await hub.listen(0, HOST)
    const viaTcp = make()
    const viaWs = make()
    const [p1, p2] = await Promise.all([viaTcp.connect(port, HOST), viaWs.connect(`ws://${HOST}:${port}/`)])
    expect(p1.session?.remoteWriter).toBe(await hub.getId())
    await Promise.all([p1.synced, p2.synced])
    const onWs = record(viaWs, 'Hello')
    const onTcp = record(viaTcp, 'Hello')
    const onHub = record(hub, 'Hello')
    await viaTcp.emit('Hello', { from: 'tcp', message: 'to ws' })
    await viaWs.emit('Hello', { from: 'ws', message: 'to tcp' })
    await hub.emit('Hello', { from: 'hub', message: 'to both' })
    await until(() => onWs.length === 3 && onTcp.length === 3 && onHub.length === 3, 10_000, 'relay')
    for (const seen of [onWs, onTcp, onHub]) expect(seen.map((m: any) => m.from).sort()).toEqual(['hub', 'tcp', 'ws'])
    expect(heads(viaTcp)).toEqual(heads(viaWs))
  })

  it("attach(): an app's http.Server hosts the hub on a path, and stays the app's", async () => {
    const http = await import('node:http')
    const server = http.createServer((_req, res) => res.end('app page'))
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
    const { port } = server.address() as net.AddressInfo
    try {
      const hub = make(null, { authenticate: (p) => (p.request as IncomingMessage).url === '/hub?key=k' })
      hub.attach(server, { path: '/hub' })
      await hub.emit('Hello', { from: 'hub', message: 'via attach' })
      const peer = make()
      await within((await peer.connect(`ws://${HOST}:${port}/hub?key=k`)).synced, 10_000, 'sync through the app server')
      expect(heads(peer)).toEqual(heads(hub))
      // Another path is not the hub's; a wrong key is refused by the hook.
      const elsewhere = await make().connect(`ws://${HOST}:${port}/other`).catch((e: unknown) => e)
      expect(isHyperEmitterError(elsewhere, ErrorCodes.CONNECTION_FAILED)).toBe(true)
      const refused = await make().connect(`ws://${HOST}:${port}/hub?key=x`).catch((e: unknown) => e)
      expect(isHyperEmitterError(refused, ErrorCodes.UNAUTHORIZED)).toBe(true)
      // close() detaches; the app's server still serves its own requests.
      await hub.close()
      const page = await new Promise<string>((resolve, reject) =>
        http.get(`http://${HOST}:${port}/`, (res) => {
          let body = ''
          res.on('data', (d) => (body += d))
          res.on('end', () => resolve(body))
        }).on('error', reject),
      )
      expect(page).toBe('app page')
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it('two listening peers that discover each other keep one connection, dialed by the lower id', async () => {
    const a = make()
    const { port } = await a.listen(0, HOST)
    // Listening (hubs) and on loopback: discovery is on only because they say so.
    const b = make(null, { discover: () => true })
    const c = make(null, { discover: () => true })
    await Promise.all([b.listen(0, HOST), c.listen(0, HOST)])
    const ids = new Map([
      [b, await b.getId()],
      [c, await c.getId()],
    ])
    const [low, high] = ids.get(b)! < ids.get(c)! ? [b, c] : [c, b]
    const linked = nextStatus(low, 'peer:connected', (i) => i.direction === 'outgoing' && i.id === ids.get(high))
    const accepted = nextStatus(high, 'peer:connected', (i) => i.direction === 'incoming' && i.id === ids.get(low))
    const highSawLow = new Promise<void>((resolve) =>
      high.on('EventPeer', (m: any) => {
        if (m.id === ids.get(low)) resolve()
      }),
    )
    await Promise.all([b.connect(port, HOST), c.connect(port, HOST)])
    await Promise.all([linked, accepted, within(highSawLow, 10_000, "the lower id's EventPeer at the higher")])
    for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0))
    expect(high.peers.map((p) => p.address)).toEqual([`tcp://${HOST}:${port}`])
    expect(low.peers).toHaveLength(2)

    // A triangle now: every node reaches b and c by two paths, and is still stored and delivered once.
    const emitters = [a, b, c]
    const seen = emitters.map((e) => record(e, 'Hello'))
    await Promise.all(emitters.flatMap((e, i) => Array.from({ length: 5 }, (_, j) => e.emit('Hello', { from: `e${i}`, message: `${j}` }))))
    await Promise.all(emitters.map((e, i) => e.emit('Hello', { from: `e${i}`, message: 'end' })))
    await until(() => seen.every((l) => l.filter((m: any) => m.message === 'end').length === 3), 10_000, 'sentinels')
    const expected = [0, 1, 2].flatMap((i) => [...['0', '1', '2', '3', '4'].map((j) => `e${i}:${j}`), `e${i}:end`]).sort()
    for (const l of seen) expect(l.map((m: any) => `${m.from}:${m.message}`).sort()).toEqual(expected)
    expect(heads(b)).toEqual(heads(a))
    expect(heads(c)).toEqual(heads(a))
  })

  it('no EventPeer if it is not needed: same db and port announce nothing new, a new port announces once', async () => {
    const dbA = db(classic)
    const a = make(dbA)
    const { port } = await a.listen(0, HOST)
    const id = await a.getId()
    const peersIn = async (e: Emitter) => (await allEvents(e)).filter((ev) => ev.name === 'hyperemitter.v1.EventPeer')
    const first = await peersIn(a)
    expect(first.map((e) => e.payload)).toEqual([
      { id, addresses: [{ ip: HOST, port, url: `ws://${HOST}:${port}/` }] },
    ])
    await a.close()
    await dbA.close()

    const dbA2 = reopen(classic, dbA)
    const a2 = make(dbA2)
    await a2.listen(port, HOST)
    expect(await peersIn(a2)).toHaveLength(1)
    const length = logOf(a2).length
    await a2.close()
    await dbA2.close()

    const a3 = make(reopen(classic, dbA))
    const moved = await a3.listen(0, HOST)
    const announced = await peersIn(a3)
    expect(logOf(a3).length).toBe(length + 1)
    expect(announced).toHaveLength(2)
    expect(announced[1].payload).toEqual({ id, addresses: [{ ip: HOST, port: moved.port, url: `ws://${HOST}:${moved.port}/` }] })
  })

  it('a peer speaking another version: connect() rejects VERSION_MISMATCH and the other side is told', async () => {
    // A fake hub from the future: it speaks first, with protocol version 2.
    const heard: any[] = []
    const server = net.createServer((socket) => {
      socket.on('error', () => {})
      socket.write(lengthPrefixed(handshakeFrame(true, new Uint8Array(32), PROTOCOL_VERSION + 1)))
      const decoder = new FrameDecoder()
      socket.on('data', (chunk) =>
        decoder.decode(chunk, (f) => {
          heard.push(decodeFrame(f))
        }),
      )
    })
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
    const { port } = server.address() as net.AddressInfo
    try {
      const e = make()
      const err = await e.connect(port, HOST).catch((x: unknown) => x)
      expect(isHyperEmitterError(err, ErrorCodes.VERSION_MISMATCH)).toBe(true)
      expect((err as Error).message).toMatch(new RegExp(`version ${PROTOCOL_VERSION + 1}.*version ${PROTOCOL_VERSION}`))
      await until(() => heard.some((f) => f?.case === 'error'), 10_000, 'error frame at the fake hub')
      expect(heard.find((f) => f?.case === 'error').value.code).toBe(ErrorCodes.VERSION_MISMATCH)
      expect(e.peers).toEqual([])
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it('no open handles after close(): servers, sockets and timers are gone', async () => {
    const count = () => {
      const tally = new Map<string, number>()
      for (const r of process.getActiveResourcesInfo()) tally.set(r, (tally.get(r) ?? 0) + 1)
      return tally
    }
    const before = count()
    const hub = make(null, { session: { keepAliveInterval: 1000 } })
    const { port } = await hub.listen(0, HOST)
    const a = make(null, { session: { keepAliveInterval: 1000 } })
    const b = make(null, { session: { keepAliveInterval: 1000 } })
    const [pa, pb] = await Promise.all([a.connect(port, HOST), b.connect(`ws://${HOST}:${port}/`)])
    await Promise.all([pa.synced, pb.synced])
    await a.emit('Hello', { from: 'a' })
    await converged([hub, a, b], 2)
    const during = count()
    expect(during.get('TCPSocketWrap') ?? 0).toBeGreaterThan(before.get('TCPSocketWrap') ?? 0)
    await closeAll(hub, a, b)
    const after = count()
    for (const kind of ['TCPServerWrap', 'TCPSocketWrap', 'Timeout', 'Immediate']) {
      expect(after.get(kind) ?? 0, kind).toBeLessThanOrEqual(before.get(kind) ?? 0)
    }
  })
})
