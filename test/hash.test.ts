import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { sha256 } from '../src/core/hash.js'
import { nodeSha256 } from '../src/node/hash.js'

const reference = (data: Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest())

describe('sha256 (the core, pure-JS one) and nodeSha256', () => {
  it('equal node:crypto on any input, call after call (the core reuses one hasher)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 8 }), (inputs) => {
        const keys = inputs.map((d) => sha256(d))
        inputs.forEach((d, i) => {
          expect(keys[i]).toEqual(reference(d))
          expect(new Uint8Array(nodeSha256(d))).toEqual(reference(d))
        })
      }),
      { numRuns: 200 },
    )
  })

  it('returns a new array each call: a kept key is never overwritten by the next hash', () => {
    const a = sha256(Uint8Array.of(1))
    const copy = a.slice()
    const b = sha256(Uint8Array.of(2))
    expect(a).not.toBe(b)
    expect(a).toEqual(copy)
  })
})
