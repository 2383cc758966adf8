import { create, toBinary } from '@bufbuild/protobuf'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { PackedBytes } from '../src/core/bytes/packed.js'
import { addEnvelope, decodeEnvelope, encodeEnvelope } from '../src/core/codec/envelope.js'
import { ErrorCodes } from '../src/core/errors.js'
import { EventSchema } from '../src/gen/hyperemitter/v1/log_pb.js'

describe('event envelope', () => {
  it('encodes byte-identically to protobuf-es and decodes back', () => {
    fc.assert(
      fc.property(fc.string(), fc.uint8Array({ maxLength: 300 }), (name, payload) => {
        const bytes = encodeEnvelope(name, payload)
        expect(bytes).toEqual(toBinary(EventSchema, create(EventSchema, { name, payload })))
        const back = decodeEnvelope(bytes)
        expect(back.name).toBe(name)
        expect(back.payload).toEqual(payload)
      }),
      { numRuns: 300 },
    )
  })

  it('refuses truncated and malformed bytes with INVALID_NODE, never misreads', () => {
    const good = encodeEnvelope('Hello', new Uint8Array([1, 2, 3]))
    const nameEnd = 2 + 'Hello'.length // a cut here is a valid envelope with no payload
    for (let cut = 1; cut < good.length; cut++) {
      if (cut === nameEnd) continue
      expect(() => decodeEnvelope(good.subarray(0, cut))).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_NODE }))
    }
    expect(() => decodeEnvelope(new Uint8Array([0x0a, 0x01, 0xff]))).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_NODE }))
    expect(() => decodeEnvelope(new Uint8Array([0x08, 0x01]))).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_NODE }))
  })

  it('packs envelopes into PackedBytes byte-identically to encodeEnvelope, from any starting capacity, across the buffer growing', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string(), fc.uint8Array({ maxLength: 700 })), { maxLength: 40 }), fc.option(fc.nat(4000)), (envelopes, capacity) => {
        const list = capacity === null ? new PackedBytes() : new PackedBytes(capacity)
        for (const [name, payload] of envelopes) addEnvelope(list, name, payload)
        expect(list.length).toBe(envelopes.length)
        expect(list.byteLength).toBe(envelopes.reduce((sum, [name, payload]) => sum + encodeEnvelope(name, payload).length, 0))
        envelopes.forEach(([name, payload], i) => {
          expect(list.sizeAt(i)).toBe(encodeEnvelope(name, payload).length)
          // Read the way the log reads a group: from the buffer, at its start.
          const start = list.startAt(i)
          expect(list.buffer.slice(start, start + list.sizeAt(i))).toEqual(encodeEnvelope(name, payload))
        })
      }),
      { numRuns: 200 },
    )
  })
})
