/**
 * Clock tips on the wire (hand codec vs protobuf-es) and the comparison
 * that tells a fork at the handshake.
 */
import { fromBinary } from '@bufbuild/protobuf'
import { describe, expect, it } from 'vitest'
import { fromHex, toHex } from '../src/core/bytes/bytes.js'
import { ErrorCodes } from '../src/core/errors.js'
import { FrameSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'
import { clockFrame, clockFromWire, decodeFrame, tipsFromWire } from '../src/sync/protocol.js'
import { divergedWriters, sameTip, TIP_BYTES, type TipSource } from '../src/sync/tips.js'

const w = (n: number) => toHex(new Uint8Array(16).fill(n))
const key = (n: number) => new Uint8Array(32).fill(n)

describe('clock tips', () => {
  it('travel as field 3 of each entry, read alike by the hand decoder and protobuf-es', () => {
    const clock = new Map([[w(1), 5], [w(2), 7]])
    const bytes = clockFrame(clock, (hex) => (hex === w(1) ? key(9) : undefined))
    const ours = decodeFrame(bytes)
    const theirs = fromBinary(FrameSchema, bytes).body
    if (ours.case !== 'clock' || theirs.case !== 'clock') throw new Error('not a clock')
    expect(ours.value.entries.map((e) => [toHex(e.writer), e.seq, toHex(e.tip)])).toEqual(theirs.value.entries.map((e) => [toHex(e.writer), e.seq, toHex(e.tip)]))
    const remote = clockFromWire(ours.value.entries, 16)
    expect(tipsFromWire(ours.value.entries, remote)).toEqual(new Map([[w(1), key(9).subarray(0, TIP_BYTES)]]))
  })

  it('refuses a tip of another length', () => {
    const entries = [{ writer: fromHex(w(1))!, seq: 1n, tip: new Uint8Array(5) }]
    expect(() => tipsFromWire(entries, new Map([[w(1), 1]]))).toThrow(expect.objectContaining({ code: ErrorCodes.PROTOCOL_ERROR }))
  })

  it('tell a fork only where this side holds the seq the peer names', async () => {
    const keys = new Map([[`${w(1)}:3`, key(3)], [`${w(1)}:2`, key(2)], [`${w(2)}:4`, key(4)]])
    const log: TipSource = {
      clock: () => new Map([[w(1), 3], [w(2), 4]]),
      tipOf: (hex) => keys.get(`${hex}:${hex === w(1) ? 3 : 4}`),
      keyAt: async (writer, seq) => keys.get(`${toHex(writer)}:${seq}`),
    }
    const tip = (n: number) => key(n).subarray(0, TIP_BYTES)
    const writerOf = (hex: string) => fromHex(hex)
    // Same node at the same seq, and at a lower one: no fork.
    expect(await divergedWriters(log, new Map([[w(1), 3], [w(2), 4]]), new Map([[w(1), tip(3)], [w(2), tip(4)]]), writerOf)).toEqual([])
    expect(await divergedWriters(log, new Map([[w(1), 2]]), new Map([[w(1), tip(2)]]), writerOf)).toEqual([])
    // Another node at a seq we hold: a fork.
    expect(await divergedWriters(log, new Map([[w(1), 2], [w(2), 4]]), new Map([[w(1), tip(7)], [w(2), tip(8)]]), writerOf)).toEqual([w(1), w(2)])
    // The peer is ahead: it compares, not us.
    expect(await divergedWriters(log, new Map([[w(2), 5]]), new Map([[w(2), tip(8)]]), writerOf)).toEqual([])
    expect(sameTip(tip(3), key(3))).toBe(true)
  })
})
