import { beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { create, toBinary } from '@bufbuild/protobuf'
import { ErrorCodes, isHyperEmitterError, type HyperEmitterError } from '../src/core/errors.js'
import {
  AckSchema,
  ClockEntrySchema,
  ClockSchema,
  ErrorSchema,
  FrameSchema,
  HandshakeSchema,
  IdentitySchema,
  NodesSchema,
  PingSchema,
  PongSchema,
  SyncedSchema,
  type Frame,
} from '../src/gen/hyperemitter/v1/sync_pb.js'
import { WriterKeySchema } from '../src/gen/hyperemitter/v1/log_pb.js'
import { nodesFrame, PROTOCOL_VERSION } from '../src/sync/protocol.js'
import type { SyncSession } from '../src/sync/session.js'
import { appendMany, makeLog, randomWriter, type RawPeer, withRawPeer, within, type TestLog } from './session-helpers.js'
import { collectEscapes } from './helpers/watch.js'
import { readMissing } from './helpers/missing.js'

const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes))

// Any rejection or exception escaping the session fails the property, not just the run.
const escaped = collectEscapes()

/** Nodes the target log can never accept as sent: a foreign writer's seq >= 3, linking nodes it lacks. */
let foreignNodes: Uint8Array[] = []
let foreignWriter: TestLog

beforeAll(async () => {
  const X = await makeLog()
  await appendMany(X, 6, 'foreign-')
  const all = []
  for await (const e of readMissing(X, new Map())) all.push(e)
  foreignWriter = X
  foreignNodes = all.filter((e) => e.seq >= 3).map((e) => e.bytes)
})

const frameBody = (body: Frame['body']): Uint8Array => toBinary(FrameSchema, create(FrameSchema, { body }))

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
const bytes = (max: number) => fc.uint8Array({ maxLength: max })

/** Structurally valid frames of every kind, with arbitrary field values. */
const structuredFrame: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.record({ v: fc.nat(5), challenge: bytes(40), live: fc.boolean() }).map((h) =>
    frameBody({ case: 'handshake', value: create(HandshakeSchema, { protocolVersion: h.v, challenge: h.challenge, live: h.live }) }),
  ),
  fc.record({ publicKey: bytes(40), chain: bytes(20), signature: bytes(70), token: fc.string({ maxLength: 10 }) }).map((i) =>
    frameBody({
      case: 'identity',
      value: create(IdentitySchema, { key: create(WriterKeySchema, { publicKey: i.publicKey, chain: i.chain }), signature: i.signature, token: i.token }),
    }),
  ),
  fc.array(fc.record({ writer: bytes(20), seq: u64 }), { maxLength: 4 }).map((entries) =>
    frameBody({ case: 'clock', value: create(ClockSchema, { entries: entries.map((e) => create(ClockEntrySchema, e)) }) }),
  ),
  fc.array(bytes(120), { maxLength: 4 }).map((nodes) => frameBody({ case: 'nodes', value: create(NodesSchema, { nodes }) })),
  u64.map((count) => frameBody({ case: 'synced', value: create(SyncedSchema, { count }) })),
  u64.map((count) => frameBody({ case: 'ack', value: create(AckSchema, { count }) })),
  fc.record({ code: fc.oneof(fc.constantFrom(...KNOWN_CODES), fc.string({ maxLength: 20 })), message: fc.string({ maxLength: 30 }) }).map((e) =>
    frameBody({ case: 'error', value: create(ErrorSchema, e) }),
  ),
  u64.map((nonce) => frameBody({ case: 'ping', value: create(PingSchema, { nonce }) })),
  u64.map((nonce) => frameBody({ case: 'pong', value: create(PongSchema, { nonce }) })),
  fc.constant(new Uint8Array(0)),
)

/** A valid Nodes frame of foreign nodes, then one corruption: a flipped bit, a truncation, or a replaced byte. */
const corruptedNodesFrame: fc.Arbitrary<Uint8Array> = fc
  .record({
    pick: fc.subarray([0, 1, 2, 3], { minLength: 1 }),
    how: fc.constantFrom('flip', 'truncate', 'set'),
    at: fc.nat(),
    bit: fc.nat(7),
    byte: fc.nat(255),
  })
  .map(({ pick, how, at, bit, byte }) => {
    const frame = nodesFrame(pick.map((i) => foreignNodes[i]))
    const i = at % frame.length
    if (how === 'truncate') return frame.slice(0, i)
    const out = frame.slice()
    out[i] = how === 'flip' ? out[i] ^ (1 << bit) : byte
    return out
  })

const anyFrame = fc.oneof(structuredFrame, corruptedNodesFrame, bytes(64))

async function target(): Promise<TestLog> {
  const L = await makeLog()
  await appendMany(L, 3, 'own-')
  return L
}

/** Sends `frames`, ends the peer side, and checks the outcome every property shares. */
async function drive(L: TestLog, prelude: (peer: RawPeer) => Promise<void> | void, frames: Uint8Array[]): Promise<{ err: Error | undefined; session: SyncSession }> {
  const clockBefore = [...L.clock()].sort()
  const lengthBefore = L.length
  const { session, peer, closed } = withRawPeer(L)
  let synced = false
  session.synced.then(
    () => (synced = true),
    () => {},
  )
  await prelude(peer)
  for (const f of frames) peer.send(f)
  // Let the frames through, then hang up: the session must end either way.
  await new Promise((r) => setTimeout(r, 1))
  peer.channel.close()
  const err = await within(closed, 5000, 'session close')
  if (err === undefined) {
    expect(synced).toBe(true)
  } else {
    expect(isHyperEmitterError(err)).toBe(true)
    expect(KNOWN_CODES.has((err as HyperEmitterError).code)).toBe(true)
  }
  expect([...L.clock()].sort()).toEqual(clockBefore)
  expect(L.length).toBe(lengthBefore)
  expect(escaped).toEqual([])
  return { err, session }
}

describe('SyncSession under hostile input', () => {
  it('random frames before a handshake: coded close, log untouched', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(bytes(64), structuredFrame), { minLength: 1, maxLength: 5 }), async (frames) => {
        const L = await target()
        await drive(L, () => {}, frames)
      }),
      { numRuns: 150 },
    )
  })

  it('random, truncated and mutated frames after a valid handshake: no crash, log untouched', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(anyFrame, { minLength: 1, maxLength: 8 }), fc.boolean(), async (frames, sendClock) => {
        const L = await target()
        await drive(
          L,
          async (peer) => {
            await peer.handshake(foreignWriter)
            if (sendClock) peer.emptyClock()
          },
          frames,
        )
      }),
      { numRuns: 200 },
    )
  })

  it('a corrupted Nodes frame never stores anything and ends the session with a coded error', async () => {
    await fc.assert(
      fc.asyncProperty(corruptedNodesFrame, async (frame) => {
        const L = await target()
        const { err } = await drive(
          L,
          async (peer) => {
            await peer.handshake(await randomWriter())
            peer.emptyClock()
          },
          [frame],
        )
        expect(err).toBeDefined()
      }),
      { numRuns: 200 },
    )
  })

  it('a second handshake is a PROTOCOL_ERROR', async () => {
    const L = await target()
    const hs = frameBody({ case: 'handshake', value: create(HandshakeSchema, { protocolVersion: PROTOCOL_VERSION, challenge: new Uint8Array(32), live: true }) })
    const { err } = await drive(L, (peer) => peer.send(hs), [hs])
    expect(isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
  })
})
