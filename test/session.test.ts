import { REFUSED_GRACE_NODES } from '../src/sync/refusals.js'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { encodeNode } from '../src/core/codec/node.js'
import { toHex } from '../src/core/bytes/bytes.js'
import type { LogEntry } from '../src/core/types.js'
import { createMemoryPair } from '../src/transport/memory.js'
import { FrameSchema, NodesSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'
import { SyncSession } from '../src/sync/session.js'
import { signatureOver, signedNodes } from './helpers/signing.js'
import {
  ackFrame,
  clockFrame,
  decodeFrame,
  errorFrame,
  nodesFrame,
  isNodeBy,
  peekNodeSeq,
  peekNodeWriter,
  pingFrame,
  PROTOCOL_VERSION,
  syncedFrame,
} from '../src/sync/protocol.js'
import {
  appendMany,
  closeOf,
  connect,
  headKeys,
  makeLog,
  nodesIn,
  randomWriter,
  settle,
  until,
  withRawPeer,
  within,
  type TestLog,
} from './session-helpers.js'
import { readMissing } from './helpers/missing.js'

const hex = toHex

function sameState(a: TestLog, b: TestLog): void {
  expect([...b.clock()].sort()).toEqual([...a.clock()].sort())
  expect(b.length).toBe(a.length)
}

async function allEntries(log: TestLog): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  for await (const e of readMissing(log, new Map())) out.push(e)
  return out
}

describe('protocol helpers', () => {
  it('decodeFrame reads any bytes that start like a Nodes frame exactly as protobuf-es does', () => {
    const general = (bytes: Uint8Array) => {
      try {
        const body = fromBinary(FrameSchema, bytes, { readUnknownFields: false }).body
        return body.case === 'nodes' ? { nodes: body.value.nodes.map((n) => [...n]) } : { case: body.case }
      } catch {
        return 'error'
      }
    }
    const fast = (bytes: Uint8Array) => {
      try {
        const body = decodeFrame(bytes)
        return body.case === 'nodes' ? { nodes: body.value.nodes.map((n) => [...n]) } : { case: body.case }
      } catch {
        return 'error'
      }
    }
    const items = fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 6 })
    fc.assert(
      fc.property(items, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(8), (nodes, flips, cut) => {
        const bytes = nodesFrame(nodes)
        for (const [at, value] of flips) bytes[at % bytes.length] = value
        bytes[0] = 0x1a
        const framed = bytes.subarray(0, Math.max(1, bytes.length - cut))
        expect(fast(framed)).toEqual(general(framed))
      }),
      { numRuns: 500 },
    )
  })

  it('hand-written Nodes frames are byte-identical to protobuf-es output', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (nodes) => {
        const expected = toBinary(FrameSchema, create(FrameSchema, { body: { case: 'nodes', value: create(NodesSchema, { nodes }) } }))
        expect(nodesFrame(nodes)).toEqual(expected)
        const back = decodeFrame(nodesFrame(nodes))
        expect(back.case).toBe('nodes')
        expect(back.case === 'nodes' && back.value.nodes.map((n) => [...n])).toEqual(nodes.map((n) => [...n]))
      }),
    )
  })

  it('peekNodeSeq, peekNodeWriter and isNodeBy read writer and seq of canonical nodes in place', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ maxLength: 50 }),
        (writer, seq, value) => {
          const node = encodeNode({ writer, seq, links: [new Uint8Array(32)], value })
          expect(peekNodeSeq(node)).toBe(seq)
          expect([...peekNodeWriter(node)]).toEqual([...writer])
          expect(isNodeBy(node, writer)).toBe(true)
          const other = writer.slice()
          other[15] ^= 1
          expect(isNodeBy(node, other)).toBe(false)
        },
      ),
    )
    for (const garbage of [new Uint8Array([0x0a, 0x05, 1]), new Uint8Array([]), new Uint8Array([0x10, 0x01])]) {
      expect(peekNodeSeq(garbage)).toBe(-1)
    }
  })

  it('decodeFrame refuses garbage and empty frames with PROTOCOL_ERROR', () => {
    for (const bytes of [new Uint8Array([0xff, 0xff]), new Uint8Array([]), new Uint8Array([0x1a, 0x05])]) {
      let caught: unknown
      try {
        decodeFrame(bytes)
      } catch (err) {
        caught = err
      }
      expect(isHyperEmitterError(caught, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
    }
  })
})

describe('SyncSession', () => {
  it('converges two logs with disjoint histories, both ways; listeners see each event once', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 120, 'a')
    await appendMany(B, 80, 'b')
    const seenOnB = new Map<string, number>()
    B.onChange((entries) => {
      for (const e of entries) if (hex(e.writer) === hex(A.writer)) seenOnB.set(hex(e.key), (seenOnB.get(hex(e.key)) ?? 0) + 1)
    })
    const { a, b } = connect(A, B, {}, {}, {})
    const handshakes: string[] = []
    b.on('handshake', (w: string) => handshakes.push(w))
    await within(Promise.all([a.synced, b.synced]), 10_000, 'synced')
    sameState(A, B)
    expect(A.length).toBe(200)
    expect(headKeys(A)).toEqual(headKeys(B))
    expect(seenOnB.size).toBe(120)
    expect([...seenOnB.values()].every((n) => n === 1)).toBe(true)
    expect(a.remoteWriter).toBe(hex(B.writer))
    expect(handshakes).toEqual([hex(A.writer)])
    expect(a.stats.nodesSent).toBe(120)
    expect(b.stats.nodesSent).toBe(80)
    expect(a.stats.nodesReceived).toBe(80)
    a.close()
    b.close()
  })

  it('catch-up costs what is missing, not the log size', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 10_000)
    const first = connect(A, B, { live: false }, { live: false })
    await within(Promise.all([first.closedA, first.closedB]), 20_000, 'first sync')
    expect(await first.closedA).toBeUndefined()
    sameState(A, B)

    await appendMany(A, 10, 'more')
    const second = connect(A, B, { live: false }, { live: false })
    await within(Promise.all([second.closedA, second.closedB]), 10_000, 'second sync')
    expect(second.a.stats.nodesSent).toBe(10)
    expect(nodesIn(second.sentByA)).toHaveLength(10)
    expect(second.b.stats.nodesSent).toBe(0)
    expect(nodesIn(second.sentByB)).toHaveLength(0)
    // Handshake, Clock, Nodes, Synced, and maybe Acks: a handful of frames either way.
    expect(second.sentByA.length).toBeLessThanOrEqual(6)
    expect(second.sentByB.length).toBeLessThanOrEqual(6)
    sameState(A, B)
  })

  it('streams live appends both ways without sending a node twice or echoing it back', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 5, 'a')
    await appendMany(B, 5, 'b')
    const c = connect(A, B)
    await within(Promise.all([c.a.synced, c.b.synced]), 10_000, 'synced')
    for (let i = 0; i < 30; i++) {
      await A.append(new TextEncoder().encode(`live-a${i}`))
      if (i % 3 === 0) await B.append(new TextEncoder().encode(`live-b${i}`))
    }
    await until(() => A.length === 50 && B.length === 50, 10_000, 'live convergence')
    sameState(A, B)
    const aToB = nodesIn(c.sentByA).map((n) => hex(n))
    const bToA = nodesIn(c.sentByB).map((n) => hex(n))
    expect(new Set(aToB).size).toBe(aToB.length)
    expect(new Set(bToA).size).toBe(bToA.length)
    expect(aToB).toHaveLength(35)
    expect(bToA).toHaveLength(15)
    // No echo: whatever went one way never comes back the other.
    expect(aToB.filter((n) => bToA.includes(n))).toEqual([])
    for (const n of nodesIn(c.sentByA)) expect(hex(peekNodeWriter(n))).toBe(hex(A.writer))
    for (const n of nodesIn(c.sentByB)) expect(hex(peekNodeWriter(n))).toBe(hex(B.writer))
    c.a.close()
    expect(await within(c.closedB, 5000, 'B close')).toBeUndefined()
  })

  it('live events one at a time cost their node, its signature and at most 20% more on the wire, acks included', async () => {
    const A = await makeLog()
    const B = await makeLog()
    const c = connect(A, B)
    await within(Promise.all([c.a.synced, c.b.synced]), 5000, 'synced')
    const sentBefore = c.a.stats.bytesSent + c.b.stats.bytesSent
    let nodeBytes = 0
    // Worst case for overhead: each event travels alone and is acked alone.
    for (let i = 0; i < 50; i++) {
      const e = await A.append(new TextEncoder().encode(`{"from":"Matteo","message":"hello ${i}"}`))
      nodeBytes += e.bytes.byteLength
      await until(() => B.length === i + 1 && c.b.stats.framesSent - 3 >= i + 1, 5000, `event ${i}`)
    }
    await until(() => c.a.stats.framesReceived >= c.b.stats.framesSent, 5000, 'last ack')
    const wire = c.a.stats.bytesSent + c.b.stats.bytesSent - sentBefore
    // Alone in its frame, each event carries its writer's signature entry (id, 64-byte signature, tags).
    const signatureEntry = 2 + 2 + 16 + 2 + 64
    expect(wire / (nodeBytes + 50 * signatureEntry)).toBeLessThanOrEqual(1.2)
    c.a.close()
  })

  it('relays through a hub and stores nodes arriving by two paths once', async () => {
    const A = await makeLog()
    const H = await makeLog()
    const B = await makeLog()
    const ah = connect(A, H)
    const hb = connect(H, B)
    await within(Promise.all([ah.a.synced, hb.b.synced]), 10_000, 'synced')
    await appendMany(A, 20, 'a')
    await until(() => B.length === 20, 10_000, 'relay to B')
    sameState(A, B)

    const ab = connect(A, B)
    await within(ab.a.synced, 10_000, 'direct synced')
    expect(nodesIn(ab.sentByA)).toHaveLength(0)
    await appendMany(A, 15, 'a2')
    await appendMany(B, 7, 'b')
    await until(() => A.length === 42 && B.length === 42 && H.length === 42, 10_000, 'mesh convergence')
    // Stored once: length equals the number of distinct keys.
    for (const log of [A, H, B]) {
      const keys = (await allEntries(log)).map((e) => hex(e.key))
      expect(new Set(keys).size).toBe(42)
      expect(keys).toHaveLength(42)
    }
    sameState(A, B)
    sameState(A, H)
    // Each connection carried a node at most once per direction.
    for (const c of [ah, hb, ab]) {
      for (const frames of [c.sentByA, c.sentByB]) {
        const sent = nodesIn(frames).map((n) => hex(n))
        expect(new Set(sent).size).toBe(sent.length)
      }
    }
    for (const c of [ah, hb, ab]) c.a.close()
  })

  it('one-shot mode closes cleanly after catch-up on both sides', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 300, 'a')
    await appendMany(B, 3, 'b')
    const c = connect(A, B, { live: false }, {})
    expect(await within(c.closedA, 10_000, 'A close')).toBeUndefined()
    expect(await within(c.closedB, 10_000, 'B close')).toBeUndefined()
    await c.a.synced
    await c.b.synced
    sameState(A, B)
    // Nothing after the close is forwarded.
    await A.append(new Uint8Array([1]))
    await settle()
    expect(B.length).toBe(303)
  })

  it('packs many nodes per frame within maxBatchBytes', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 2000, 'payload-of-some-length-')
    const c = connect(A, B, { maxBatchBytes: 8 * 1024 })
    await within(c.b.synced, 10_000, 'synced')
    const nodeFrames = c.sentByA.filter((f) => f.case === 'nodes')
    expect(nodeFrames.length).toBeGreaterThan(10)
    const sizes = nodeFrames.map((f) => toBinary(FrameSchema, create(FrameSchema, { body: f })).byteLength)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(8 * 1024)
    const nodeBytes = nodesIn(c.sentByA).reduce((s, n) => s + n.byteLength, 0)
    const acks = c.sentByB.filter((f) => f.case === 'ack').length
    expect(acks).toBeLessThanOrEqual(nodeFrames.length)
    expect(c.a.stats.bytesSent / nodeBytes).toBeLessThan(1.05)
    c.a.close()
  })

  describe('misbehaving peers', () => {
    it("refuses a tampered node's writer with a Refused frame, stores nothing of it, stays up and takes other writers", async () => {
      const src = await makeLog()
      await appendMany(src, 3, 'x')
      const good = (await allEntries(src)).map((e) => e.bytes)
      const other = await makeLog()
      await appendMany(other, 2, 'other')
      const otherNodes = (await allEntries(other)).map((e) => e.bytes)
      const L = await makeLog()
      await appendMany(L, 2, 'own')
      const before = L.clock()
      const { session, peer } = withRawPeer(L)
      const refusals: unknown[] = []
      session.on('refused', (r) => refusals.push(r))
      await peer.handshake(src)
      peer.emptyClock()
      // The log hashes what it receives, so a flipped value byte yields another
      // valid-looking node: the writer's signature over the last node, whose
      // past holds the original, does not cover it.
      const tampered = good[0].slice()
      tampered[tampered.length - 1] ^= 0x01
      peer.send(await signedNodes([tampered, good[1], good[2], ...otherNodes], [src, other]))
      await until(() => peer.of('refused').length === 1, 5000, 'refused frame')
      const refused = peer.of('refused')[0]
      expect(refused.code).toBe(ErrorCodes.BAD_SIGNATURE)
      expect(toHex(refused.writer)).toBe(src.writerId)
      expect(refused.seq).toBe(1n)
      // The other writer of the same frame landed; the refused one did not.
      await until(() => L.length === 4, 5000, "the other writer's nodes")
      expect(L.clock()).toEqual(new Map([...before, [other.writerId, 2]]))
      // Every node is acked, refused ones too: the sender's flow control must not stall.
      await until(() => peer.of('ack').reduce((n, a) => n + Number(a.count), 0) === 5, 5000, 'acks')
      // More of the refused writer (in flight when it was refused) is dropped quietly; the session stays up.
      peer.send(await signedNodes(good, [src]))
      await appendMany(other, 1, 'more')
      const more = (await allEntries(other)).map((e) => e.bytes).slice(2)
      peer.send(await signedNodes(more, [other]))
      await until(() => L.length === 5, 5000, 'a later frame of the other writer')
      expect(peer.of('refused')).toHaveLength(1)
      expect(peer.of('error')).toHaveLength(0)
      expect(peer.closed).toBe(false)
      expect(refusals).toEqual([expect.objectContaining({ writer: src.writerId, seq: 1, code: ErrorCodes.BAD_SIGNATURE, by: 'us', fork: false })])
      session.close()
    })

    it('refuses an undecodable node with INVALID_NODE', async () => {
      const src = await makeLog()
      await appendMany(src, 1, 'x')
      const [only] = await allEntries(src)
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      await peer.handshake(src)
      peer.emptyClock()
      const broken = only.bytes.slice()
      broken[0] ^= 0x01 // the writer field's tag now has wire type 3 (groups), which a Node never uses
      peer.send(nodesFrame([broken]))
      expect(isHyperEmitterError(await within(closed, 5000, 'close'), ErrorCodes.INVALID_NODE)).toBe(true)
      await until(() => peer.of('error').length === 1, 5000, 'error frame')
      expect(peer.of('error')[0].code).toBe(ErrorCodes.INVALID_NODE)
      expect(L.length).toBe(0)
    })

    it('refuses a node whose link is missing with a Refused MISSING_LINK, and stays up', async () => {
      const X = await makeLog()
      await appendMany(X, 2, 'x')
      const Y = await makeLog()
      const c = connect(X, Y, { live: false })
      await within(c.closedB, 5000, 'copy X to Y')
      const y1 = await Y.append(new Uint8Array([7])) // Y's seq 1, linking X's heads
      const L = await makeLog()
      const { session, peer } = withRawPeer(L)
      await peer.handshake(Y)
      peer.emptyClock()
      peer.send(await signedNodes([y1.bytes], [Y]))
      await until(() => peer.of('refused').length === 1, 5000, 'refused frame')
      expect(peer.of('refused')[0].code).toBe(ErrorCodes.MISSING_LINK)
      expect(L.length).toBe(0)
      expect(peer.closed).toBe(false)
      session.close()
    })

    it('refuses a node that skips seqs with a Refused SEQ_MISMATCH, keeping the frames stored before it', async () => {
      const X = await makeLog()
      await appendMany(X, 1, 'x')
      const [x1] = await allEntries(X)
      const skipping = encodeNode({ writer: X.writer, seq: 5, links: [x1.key], value: new Uint8Array([1]) })
      const L = await makeLog()
      const { session, peer } = withRawPeer(L)
      await peer.handshake(X)
      peer.emptyClock()
      peer.send(await signedNodes([x1.bytes], [X]))
      peer.send(await signedNodes([skipping], [X]))
      await until(() => peer.of('refused').length === 1, 5000, 'refused frame')
      expect(peer.of('refused')[0].code).toBe(ErrorCodes.SEQ_MISMATCH)
      expect(peer.of('refused')[0].seq).toBe(5n)
      expect(L.length).toBe(1)
      await until(() => peer.of('ack').reduce((n, a) => n + Number(a.count), 0) === 2, 5000, 'acks')
      expect(peer.of('error')).toHaveLength(0)
      session.close()
    })

    it('disconnects a peer that keeps sending a refused writer past what could have been in flight', async () => {
      const X = await makeLog()
      await appendMany(X, 1, 'x')
      const [x1] = await allEntries(X)
      const skipping = encodeNode({ writer: X.writer, seq: 5, links: [x1.key], value: new Uint8Array([1]) })
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      await peer.handshake(X)
      peer.emptyClock()
      const frame = await signedNodes([skipping], [X])
      peer.send(frame)
      await until(() => peer.of('refused').length === 1, 5000, 'refused frame')
      // One node a frame: the grace (REFUSED_GRACE_NODES) is passed after that many frames; bounded loop.
      const many = await signedNodes(Array.from({ length: 4096 }, () => skipping), [X])
      for (let i = 0; i < REFUSED_GRACE_NODES / 4096 + 2 && !peer.closed; i++) peer.send(many)
      const err = await within(closed, 10_000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
      expect(L.length).toBe(0)
    })

    it('version mismatch: both sides end with VERSION_MISMATCH naming both versions', async () => {
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      await peer.handshake(await randomWriter(), { version: PROTOCOL_VERSION + 1 })
      const err = await within(closed, 5000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.VERSION_MISMATCH)).toBe(true)
      expect(err!.message).toContain(String(PROTOCOL_VERSION + 1))
      expect(err!.message).toContain(String(PROTOCOL_VERSION))
      await until(() => peer.of('error').length === 1, 5000, 'error frame')
      const sentErr = peer.of('error')[0]
      expect(sentErr.code).toBe(ErrorCodes.VERSION_MISMATCH)
      expect(sentErr.message).toMatch(new RegExp(`version ${PROTOCOL_VERSION + 1}.*version ${PROTOCOL_VERSION}`))
      expect(peer.of('clock')).toHaveLength(0)
      expect(peer.of('nodes')).toHaveLength(0)
    })

    it('surfaces a VERSION_MISMATCH reported by the peer as its close error', async () => {
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      // A newer peer refuses us before sending its own handshake reply... it sent a handshake first, as the protocol says.
      await peer.handshake(await randomWriter())
      peer.send(errorFrame(ErrorCodes.VERSION_MISMATCH, 'peer speaks protocol version 1, this side speaks version 2'))
      const err = await within(closed, 5000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.VERSION_MISMATCH)).toBe(true)
      expect(err!.message).toMatch(/^peer reported: /)
    })

    it('garbage before the handshake is a PROTOCOL_ERROR, reported to the peer', async () => {
      const L = await makeLog()
      await appendMany(L, 5)
      const { peer, closed } = withRawPeer(L)
      peer.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef]))
      const err = await within(closed, 5000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
      await until(() => peer.of('error').length === 1, 5000, 'error frame')
      expect(peer.of('error')[0].code).toBe(ErrorCodes.PROTOCOL_ERROR)
      expect(peer.of('nodes')).toHaveLength(0)
    })

    it('a valid frame other than a handshake first is a PROTOCOL_ERROR', async () => {
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      peer.send(pingFrame(1))
      expect(isHyperEmitterError(await within(closed, 5000, 'close'), ErrorCodes.PROTOCOL_ERROR)).toBe(true)
    })

    it('refuses a peer announcing our own writer (connected to self)', async () => {
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      await peer.handshake(L)
      const err = await within(closed, 5000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
      expect(err!.message).toMatch(/self/)
    })

    it('an Error frame with an unknown code becomes PROTOCOL_ERROR "peer reported: ..."', async () => {
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L)
      await peer.handshake(await randomWriter())
      peer.send(errorFrame('SOMETHING_ELSE', 'it broke'))
      const err = await within(closed, 5000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
      expect(err!.message).toBe('peer reported: it broke')
    })

    it('an ack for more than was sent, a second clock, or nodes before our clock are PROTOCOL_ERRORs', async () => {
      for (const after of [
        (p: ReturnType<typeof withRawPeer>['peer']) => p.send(ackFrame(5)),
        (p: ReturnType<typeof withRawPeer>['peer']) => {
          p.emptyClock()
          p.emptyClock()
        },
        (p: ReturnType<typeof withRawPeer>['peer']) => {
          p.emptyClock()
          p.send(syncedFrame(0))
          p.send(syncedFrame(0))
        },
      ]) {
        const L = await makeLog()
        const { peer, closed } = withRawPeer(L)
        await peer.handshake(await randomWriter())
        after(peer)
        expect(isHyperEmitterError(await within(closed, 5000, 'close'), ErrorCodes.PROTOCOL_ERROR)).toBe(true)
      }
    })

    it('a peer that never answers pings is closed with TIMEOUT', async () => {
      const L = await makeLog()
      const { peer, closed } = withRawPeer(L, { keepAliveInterval: 10 })
      await peer.handshake(await randomWriter())
      peer.emptyClock()
      const err = await within(closed, 5000, 'close')
      expect(isHyperEmitterError(err, ErrorCodes.TIMEOUT)).toBe(true)
      expect(peer.of('ping').length).toBeGreaterThanOrEqual(1)
    })

    it('keep-alive pings are answered and keep an idle session open', async () => {
      const A = await makeLog()
      const B = await makeLog()
      const c = connect(A, B, { keepAliveInterval: 5 }, { keepAliveInterval: 5 })
      await within(c.a.synced, 5000, 'synced')
      // Whichever side's timer fires first pings and the other answers (a
      // ping it receives also counts as traffic), so count both directions.
      const count = (kind: string) => [...c.sentByA, ...c.sentByB].filter((f) => f.case === kind).length
      await until(() => count('ping') >= 3, 5000, 'pings')
      await until(() => count('pong') >= 3, 5000, 'pongs')
      let closedEarly = false
      c.a.once('close', () => (closedEarly = true))
      await settle(10)
      expect(closedEarly).toBe(false)
      c.a.close()
      expect(await within(c.closedB, 5000, 'close')).toBeUndefined()
    })
  })

  it('authenticate refusing: the refused side gets no Nodes, both ends see UNAUTHORIZED', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 50, 'a')
    await appendMany(B, 50, 'b')
    const seen: unknown[] = []
    const c = connect(
      A,
      B,
      {
        authenticate: (peer) => {
          seen.push(peer)
          return peer.token === 'secret'
        },
      },
      { token: 'wrong' },
    )
    const [errA, errB] = await within(Promise.all([c.closedA, c.closedB]), 5000, 'close')
    expect(isHyperEmitterError(errA, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(isHyperEmitterError(errB, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(nodesIn(c.sentByA)).toHaveLength(0)
    expect(c.sentByA.filter((f) => f.case === 'clock')).toHaveLength(0)
    expect(nodesIn(c.sentByB)).toHaveLength(0)
    expect(seen).toEqual([{ writer: hex(B.writer), publicKey: hex(B.writerKey.publicKey), token: 'wrong', remote: 'memory://a' }])
    await expect(c.a.synced).rejects.toMatchObject({ code: ErrorCodes.UNAUTHORIZED })
    expect(A.length).toBe(50)
    expect(B.length).toBe(50)
  })

  it('authenticate may be async and accept; a throwing hook refuses', async () => {
    const A = await makeLog()
    const B = await makeLog()
    await appendMany(A, 10, 'a')
    const ok = connect(A, B, { authenticate: async (p) => p.token === 't' }, { token: 't' })
    await within(ok.b.synced, 5000, 'synced')
    expect(B.length).toBe(10)
    ok.a.close()
    const C = await makeLog()
    const bad = connect(
      A,
      C,
      {
        authenticate: () => {
          throw new Error('db down')
        },
      },
      {},
    )
    expect(isHyperEmitterError(await within(bad.closedA, 5000, 'close'), ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(isHyperEmitterError(await within(bad.closedB, 5000, 'close'), ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(C.length).toBe(0)
  })

  describe('flow control', () => {
    it('stops at maxInFlight unacked nodes and continues as acks arrive', async () => {
      const A = await makeLog()
      await appendMany(A, 3000)
      const { session, peer } = withRawPeer(A, { maxInFlight: 500 })
      await peer.handshake(await randomWriter())
      peer.emptyClock()
      await until(() => session.stats.nodesSent >= 500, 5000, '500 sent')
      await settle(30)
      expect(session.stats.nodesSent).toBe(500)
      expect(nodesIn(peer.frames)).toHaveLength(500)
      peer.send(ackFrame(200))
      await until(() => session.stats.nodesSent >= 700, 5000, '700 sent')
      await settle(30)
      expect(session.stats.nodesSent).toBe(700)
      // Ack everything as it comes: the rest flows and Synced follows.
      let acked = 200
      for (let i = 0; i < 50 && peer.of('synced').length === 0; i++) {
        const received = nodesIn(peer.frames).length
        if (received > acked) {
          peer.send(ackFrame(received - acked))
          acked = received
        }
        await settle(3)
      }
      expect(peer.of('synced')).toHaveLength(1)
      expect(Number(peer.of('synced')[0].count)).toBe(3000)
      expect(nodesIn(peer.frames)).toHaveLength(3000)
      session.close()
    })

    it('stops at the channel high-water mark while the receiver is paused', async () => {
      const A = await makeLog()
      await appendMany(A, 5000, 'some-longer-payload-')
      const hwm = 32 * 1024
      const batch = 4 * 1024
      const { session, peer } = withRawPeer(A, { maxInFlight: 1_000_000, maxBatchBytes: batch }, { highWaterMark: hwm })
      await peer.handshake(await randomWriter())
      peer.emptyClock()
      // Let the handshake through, then stop reading.
      await until(() => peer.of('clock').length === 1, 5000, 'clock')
      peer.channel.pause()
      const channelA = (session as unknown as { channel: { bufferedAmount: number } }).channel
      await until(() => session.stats.nodesSent > 0, 5000, 'first nodes')
      // Until the buffer reaches the mark, where the sender must stop (each
      // frame waits for its signature, so this takes a few turns): bounded.
      let maxBuffered = 0
      for (let i = 0; i < 5000 && channelA.bufferedAmount < hwm; i++) {
        maxBuffered = Math.max(maxBuffered, channelA.bufferedAmount)
        await settle(1)
      }
      await settle(5)
      maxBuffered = Math.max(maxBuffered, channelA.bufferedAmount)
      const sentWhilePaused = session.stats.nodesSent
      expect(sentWhilePaused).toBeLessThan(5000)
      expect(maxBuffered).toBeLessThanOrEqual(hwm + batch)
      // The sender has stopped: more turns send nothing more.
      await settle(20)
      expect(session.stats.nodesSent).toBe(sentWhilePaused)
      peer.channel.resume()
      let acked = 0
      for (let i = 0; i < 500 && peer.of('synced').length === 0; i++) {
        const received = nodesIn(peer.frames).length
        if (received > acked) {
          peer.send(ackFrame(received - acked))
          acked = received
        }
        await settle(1)
      }
      expect(nodesIn(peer.frames)).toHaveLength(5000)
      session.close()
    })

    it('a live queue that overflows under backpressure falls back to reading the log, sending each node once', async () => {
      const A = await makeLog()
      const { session, peer } = withRawPeer(A, { maxLiveQueue: 50, maxBatchBytes: 2048 }, { highWaterMark: 4096 })
      await peer.handshake(await randomWriter())
      peer.emptyClock()
      peer.send(syncedFrame(0))
      await until(() => peer.of('synced').length === 1, 5000, 'synced')
      peer.channel.pause()
      await appendMany(A, 400, 'live-')
      const queueLen = (session as unknown as { outbound: { liveQueue: unknown[] } }).outbound.liveQueue.length
      expect(queueLen).toBeLessThanOrEqual(50)
      peer.channel.resume()
      let acked = 0
      for (let i = 0; i < 500 && nodesIn(peer.frames).length < 400; i++) {
        const received = nodesIn(peer.frames).length
        if (received > acked) {
          peer.send(ackFrame(received - acked))
          acked = received
        }
        await settle(1)
      }
      const sent = nodesIn(peer.frames).map((n) => hex(n))
      expect(sent).toHaveLength(400)
      expect(new Set(sent).size).toBe(400)
      // In change order, so every node's links precede it.
      expect(sent).toEqual((await allEntries(A)).map((e) => hex(e.bytes)))
      session.close()
    })
  })

  it('closing rejects synced, unsubscribes from the log and closes the channel', async () => {
    const A = await makeLog()
    const [ca] = createMemoryPair()
    const s = new SyncSession(A, ca, { keepAliveInterval: 1000 })
    const closed = closeOf(s)
    s.start()
    s.close()
    s.close()
    expect(await closed).toBeUndefined()
    await expect(s.synced).rejects.toMatchObject({ code: ErrorCodes.CLOSED })
    // The channel closes once the handshake already queued has left it.
    await until(() => ca.closed, 5000, 'channel close')
  })

  it('rejects bad options with INVALID_ARGUMENT', () => {
    const [ca] = createMemoryPair()
    const log = { writer: new Uint8Array(16) } as never
    for (const opts of [{ maxBatchBytes: 0 }, { maxInFlight: -1 }, { keepAliveInterval: -5 }, { maxLiveQueue: 1.5 }]) {
      expect(() => new SyncSession(log, ca, opts)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    }
  })

  it('clockFrame round-trips through decodeFrame', () => {
    const w = hex(crypto.getRandomValues(new Uint8Array(16)))
    const body = decodeFrame(clockFrame(new Map([[w, 42]])))
    expect(body.case).toBe('clock')
    expect(body.case === 'clock' && hex(body.value.entries[0].writer)).toBe(w)
  })
})

