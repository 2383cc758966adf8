import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MALFORMED, TOO_BIG, VarintReader, varintLength, writeVarint, writeVarint64 } from '../src/core/bytes/varint.js'

function encode(n: number): Uint8Array {
  const out = new Uint8Array(varintLength(n))
  expect(writeVarint(out, 0, n)).toBe(out.length)
  return out
}

/** The varint of a bigint by the textbook loop, to check ours against. */
function reference(n: bigint): number[] {
  const out: number[] = []
  while (n >= 128n) {
    out.push(Number(n & 127n) | 128)
    n >>= 7n
  }
  out.push(Number(n))
  return out
}

describe('the core varint codec', () => {
  it('writes what the textbook loop writes, and reads it back, for every safe integer', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        const bytes = encode(n)
        expect([...bytes]).toEqual(reference(BigInt(n)))
        const r = new VarintReader(bytes)
        expect(r.next()).toBe(n)
        expect(r.pos).toBe(bytes.length)
        expect(new VarintReader(bytes).nextMinimal(8)).toBe(n)
      }),
    )
  })

  it('reads 64-bit varints as two unsigned halves, as writeVarint64 writes them', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (n) => {
        const lo = Number(n & 0xffffffffn)
        const hi = Number(n >> 32n)
        const out = new Uint8Array(10)
        const end = writeVarint64(out, 0, lo, hi)
        expect([...out.subarray(0, end)]).toEqual(reference(n))
        const r = new VarintReader(out, 0, end)
        expect(r.next64()).toBe(true)
        expect([r.lo, r.hi]).toEqual([lo, hi])
        expect(r.pos).toBe(end)
      }),
    )
  })

  it('tells truncated, over-long and too-big varints apart, and padded ones from minimal ones', () => {
    expect(new VarintReader(Uint8Array.of(0x80)).next()).toBe(MALFORMED)
    expect(new VarintReader(Uint8Array.of(0x80, 0x80), 0, 1).next()).toBe(MALFORMED)
    expect(new VarintReader(new Uint8Array(11).fill(0x80)).next()).toBe(MALFORMED)
    expect(new VarintReader(new Uint8Array(11).fill(0x80)).next64()).toBe(false)
    // 2^53: well formed, but a number cannot hold it exactly.
    expect(new VarintReader(Uint8Array.from(reference(2n ** 53n))).next()).toBe(TOO_BIG)
    expect(new VarintReader(Uint8Array.from(reference(2n ** 53n - 1n))).next()).toBe(2 ** 53 - 1)
    // 1 padded to two bytes: valid protobuf, not the shortest form.
    expect(new VarintReader(Uint8Array.of(0x81, 0x00)).next()).toBe(1)
    expect(new VarintReader(Uint8Array.of(0x81, 0x00)).nextMinimal(8)).toBe(MALFORMED)
    expect(new VarintReader(encode(2 ** 40)).nextMinimal(4)).toBe(MALFORMED)
  })
})
