import { describe, expect, it } from 'vitest'
import { KeyIndex } from '../src/core/log/key-index.js'

const randomKey = () => crypto.getRandomValues(new Uint8Array(32))

describe('KeyIndex', () => {
  it('finds every key it was given at its change, across growth', () => {
    const index = new KeyIndex()
    const keys = Array.from({ length: 20_000 }, randomKey)
    keys.forEach((k, i) => index.add(k, i + 1))
    expect(index.size).toBe(20_000)
    keys.forEach((k, i) => expect(index.candidates(k)).toContain(i + 1))
  })

  it('a key it never saw almost never has candidates (a 32-bit fingerprint)', () => {
    const index = new KeyIndex()
    for (let i = 1; i <= 20_000; i++) index.add(randomKey(), i)
    let false_ = 0
    for (let i = 0; i < 20_000; i++) false_ += index.candidates(randomKey()).length
    expect(false_).toBeLessThan(3)
  })

  it('keeps every change of keys that share a fingerprint: the caller confirms which', () => {
    const index = new KeyIndex()
    const key = randomKey()
    index.add(key, 7)
    index.add(Uint8Array.from(key), 9)
    expect([...index.candidates(key)].sort()).toEqual([7, 9])
  })

  it('reads keys in place from a packed record, reserved ahead, as the log loads them at open', () => {
    const index = new KeyIndex()
    const count = 2_000
    const packed = crypto.getRandomValues(new Uint8Array(count * 32))
    index.reserve(count)
    for (let i = 0; i < count; i++) index.add(packed, i + 1, i * 32)
    expect(index.size).toBe(count)
    for (let i = 0; i < count; i++) expect(index.candidates(packed.slice(i * 32, i * 32 + 32))).toContain(i + 1)
    // Reserving once keys are in is a no-op, never a loss.
    index.reserve(4 * count)
    expect(index.candidates(packed.slice(0, 32))).toContain(1)
  })

  it('clear() forgets everything', () => {
    const index = new KeyIndex()
    const key = randomKey()
    index.add(key, 1)
    index.clear()
    expect(index.size).toBe(0)
    expect(index.candidates(key)).toEqual([])
  })
})
