import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../src/core/errors.js'
import { encodeNode } from '../src/core/codec/node.js'
import { ClockEntrySchema, ClockSchema, FrameSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'
import { countLinks, DEFAULT_MAX_LINKS_PER_NODE, limitInbound } from '../src/sync/inbound-limits.js'
import { MAX_LINKS_PER_APPEND } from '../src/core/codec/node.js'
import { ackFrame, clockFrame, clockFromWire, decodeFrame, pingFrame, pongFrame } from '../src/sync/protocol.js'
import { clockFrameLimit, readClockFrame } from '../src/sync/clock-frame.js'
import { makeLog } from './session-helpers.js'

const writer = (i: number) => {
  const w = new Uint8Array(16)
  new DataView(w.buffer).setUint32(12, i)
  return w
}
const entriesOf = (body: ReturnType<typeof decodeFrame>) => {
  if (body.case !== 'clock') throw new Error(`expected a clock, got ${body.case}`)
  return body.value.entries
}
const hex = (i: number) => Buffer.from(writer(i)).toString('hex')

describe('Clock frames', () => {
  it('decode by hand exactly as protobuf-es does, in any field order and with unknown fields', () => {
    const clock = new Map([
      [hex(1), 5],
      [hex(2), 2 ** 40],
      [hex(3), 0],
    ])
    const bytes = clockFrame(clock)
    const body = decodeFrame(bytes)
    expect(body.case).toBe('clock')
    const reference = fromBinary(FrameSchema, bytes).body
    expect(body.value).toEqual(reference.value)
    expect(clockFromWire(entriesOf(body), 16)).toEqual(new Map([[hex(1), 5], [hex(2), 2 ** 40]]))

    // seq before writer, and an unknown varint field 9 inside an entry.
    const entry = new Uint8Array([0x10, 0x07, 0x48, 0x01, 0x0a, 16, ...writer(4)])
    const frame = new Uint8Array([0x12, entry.length + 2, 0x0a, entry.length, ...entry])
    const odd = decodeFrame(frame)
    expect(clockFromWire(entriesOf(odd), 16)).toEqual(new Map([[hex(4), 7]]))
  })

  it('refuse more than maxClockWriters writers with LIMIT_EXCEEDED, and malformed ones with PROTOCOL_ERROR', () => {
    const clock = new Map(Array.from({ length: 101 }, (_, i) => [hex(i), i + 1] as [string, number]))
    const bytes = clockFrame(clock)
    expect(() => decodeFrame(bytes, 100)).toThrow(expect.objectContaining({ code: ErrorCodes.LIMIT_EXCEEDED }))
    expect(decodeFrame(bytes, 101).case).toBe('clock')
    expect(() => decodeFrame(bytes.subarray(0, bytes.length - 3))).toThrow(expect.objectContaining({ code: ErrorCodes.PROTOCOL_ERROR }))
    const wire3 = toBinary(FrameSchema, create(FrameSchema, { body: { case: 'clock', value: create(ClockSchema, { entries: [create(ClockEntrySchema, { writer: writer(1), seq: 1n })] }) } }))
    const broken = wire3.slice()
    broken[2] = (1 << 3) | 3 // a group start where an entry should be
    expect(() => decodeFrame(broken)).toThrow(expect.objectContaining({ code: ErrorCodes.PROTOCOL_ERROR }))
  })

  it('keep only the writers we hold when given our clock', () => {
    const entries = [1, 2, 3].map((i) => create(ClockEntrySchema, { writer: writer(i), seq: BigInt(i) }))
    expect(clockFromWire(entries, 16, new Map([[hex(2), 9]]))).toEqual(new Map([[hex(2), 2]]))
  })

  it('read on arrival and filtered by fingerprint: what clockFromWire keeps, however the fingerprints collide', () => {
    // writer(i) share their first 4 bytes (one fingerprint); random ones do not.
    const random = Array.from({ length: 50 }, () => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex'))
    const peer = new Map<string, number>([...Array.from({ length: 20 }, (_, i) => [hex(i), i + 1] as [string, number]), ...random.map((h, i) => [h, 100 + i] as [string, number])])
    const ours = new Map<string, number>([[hex(3), 1], [hex(17), 50], [random[7], 1], [random[42], 9], [hex(999), 4], ['ff'.repeat(16), 2]])
    const bytes = clockFrame(peer)
    const wire = readClockFrame(bytes, 1000)
    expect(wire.entries().length).toBe(70)
    const expected = clockFromWire(entriesOf(decodeFrame(bytes)), 16, ours)
    expect(wire.filter(ours)).toEqual(expected)
    expect(expected).toEqual(new Map([[hex(3), 4], [hex(17), 18], [random[7], 107], [random[42], 142]]))
    // A writer of another length, or none, is malformed even when nobody holds it.
    expect(() => readClockFrame(new Uint8Array([0x12, 6, 0x0a, 4, 0x0a, 2, 1, 2]), 10)).toThrow(expect.objectContaining({ code: ErrorCodes.PROTOCOL_ERROR }))
    expect(() => readClockFrame(new Uint8Array([0x12, 4, 0x0a, 2, 0x10, 1]), 10)).toThrow(expect.objectContaining({ code: ErrorCodes.PROTOCOL_ERROR }))
    // So is a tip that is not TIP_BYTES (8) long.
    const badTip = new Uint8Array([0x12, 25, 0x0a, 23, 0x0a, 16, ...writer(3), 0x1a, 5, 1, 2, 3, 4, 5])
    expect(() => readClockFrame(badTip, 10)).toThrow(expect.objectContaining({ code: ErrorCodes.PROTOCOL_ERROR }))
    expect(() => readClockFrame(bytes, 69)).toThrow(expect.objectContaining({ code: ErrorCodes.LIMIT_EXCEEDED }))
  })

  it('fit clockFrameLimit(maxClockWriters) whatever their seqs, so a larger frame can be refused from its length', () => {
    const most = new Map(Array.from({ length: 300 }, () => [Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex'), Number.MAX_SAFE_INTEGER] as [string, number]))
    // With tips, as a log sends it.
    const frame = clockFrame(most, () => new Uint8Array(32).fill(7))
    expect(frame.length).toBeLessThanOrEqual(clockFrameLimit(300))
    expect(frame.length).toBeGreaterThan(clockFrameLimit(300) - 300 * 2)
    expect(readClockFrame(frame, 300).tips(new Map([...most].slice(0, 2))).size).toBe(2)
  })
})

describe('Ack, Ping and Pong frames', () => {
  it('are written and read by hand exactly as protobuf-es does', () => {
    for (const n of [0, 1, 127, 128, 300, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const cases = [
        [ackFrame(n), 'ack', { count: BigInt(n) }],
        [pingFrame(n), 'ping', { nonce: BigInt(n) }],
        [pongFrame(n), 'pong', { nonce: BigInt(n) }],
      ] as const
      for (const [bytes, kind, fields] of cases) {
        const reference = fromBinary(FrameSchema, bytes).body
        expect(reference.case).toBe(kind)
        expect(reference.value).toMatchObject(fields)
        expect(toBinary(FrameSchema, create(FrameSchema, { body: reference }))).toEqual(bytes)
        expect(decodeFrame(bytes)).toEqual(reference)
      }
    }
  })
})

describe('limitInbound', () => {
  const link = (i: number) => new Uint8Array(32).fill(i & 0xff)
  const node = (links: number) => encodeNode({ writer: writer(7), seq: 1, links: Array.from({ length: links }, (_, i) => link(i)), value: new Uint8Array([1]) })

  it('counts the links of a canonical node in place', () => {
    for (const n of [0, 1, 3, 300]) expect(countLinks(node(n))).toBe(n)
    expect(countLinks(new Uint8Array([1, 2, 3]))).toBe(0)
  })

  it('refuses a frame over maxNodesPerFrame or with a node over maxLinksPerNode, storing nothing', async () => {
    const log = await makeLog()
    const limited = limitInbound(log, { maxNodesPerFrame: 2, maxLinksPerNode: MAX_LINKS_PER_APPEND })
    await expect(limited.addMany([node(0), node(0), node(0)])).rejects.toMatchObject({ code: ErrorCodes.LIMIT_EXCEEDED })
    await expect(limited.addMany([node(MAX_LINKS_PER_APPEND + 1)])).rejects.toMatchObject({
      code: ErrorCodes.LIMIT_EXCEEDED,
      details: { maxLinksPerNode: MAX_LINKS_PER_APPEND },
    })
    // By default: twice the links a log ever writes, far below the thousands a 4 MiB frame could carry.
    await expect(limitInbound(log).addMany([node(0), node(DEFAULT_MAX_LINKS_PER_NODE + 1)])).rejects.toMatchObject({ code: ErrorCodes.LIMIT_EXCEEDED, details: { index: 1 } })
    expect(DEFAULT_MAX_LINKS_PER_NODE).toBe(2 * MAX_LINKS_PER_APPEND)
    expect(log.length).toBe(0)
    await log.close()
  })

  it('refuses a maxLinksPerNode below what honest nodes carry', () => {
    expect(() => limitInbound({} as never, { maxLinksPerNode: MAX_LINKS_PER_APPEND - 1 })).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
  })
})
