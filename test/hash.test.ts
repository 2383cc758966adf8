import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { sha256 } from '../src/core/bytes/hash.js'
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

  it.each([
    ['sha256', sha256],
    ['nodeSha256', nodeSha256],
  ])('%s returns a new array each call: a kept key is never overwritten by later hashes', (_, hashFn) => {
    // Past a slab's worth of keys (nodeSha256 carves them from shared 16 KiB slabs).
    const kept = Array.from({ length: 1500 }, (_, i) => hashFn(Uint8Array.of(i & 255, i >> 8)))
    kept.forEach((key, i) => expect(key, `key ${i}`).toEqual(reference(Uint8Array.of(i & 255, i >> 8))))
    expect(new Set(kept).size).toBe(kept.length)
  })
})
