/**
 * Sets of 32-byte node keys without hex strings (a hex string per key was
 * the bulk of the log's garbage): a Map keyed by the keyed word of the key,
 * a small integer, with full-key comparison.
 */
import { equalBytes } from '../bytes/bytes.js'
import { keyWord } from '../bytes/keyed-hash.js'

function bucketOf(key: Uint8Array): number {
  // 30 bits keep the number a V8 small integer (fast Map keys).
  return keyWord(key) >>> 2
}

/** An unbounded set of 32-byte keys (used per batch and per request). */
export class KeySet {
  private readonly map = new Map<number, Uint8Array | Uint8Array[]>()
  private count = 0

  get size(): number {
    return this.count
  }

  has(key: Uint8Array): boolean {
    const slot = this.map.get(bucketOf(key))
    if (slot === undefined) return false
    if (slot instanceof Uint8Array) return equalBytes(slot, key)
    for (const k of slot) if (equalBytes(k, key)) return true
    return false
  }

  /** Adds `key` (held by reference: do not mutate it afterwards). */
  add(key: Uint8Array): void {
    const b = bucketOf(key)
    const slot = this.map.get(b)
    if (slot === undefined) {
      this.map.set(b, key)
    } else if (slot instanceof Uint8Array) {
      if (equalBytes(slot, key)) return
      this.map.set(b, [slot, key])
    } else {
      for (const k of slot) if (equalBytes(k, key)) return
      slot.push(key)
    }
    this.count++
  }
}

/**
 * Keys gathered one by one where most questions are answered without them
 * (the previous node, a head): the set is only built on the first has().
 */
export class LazyKeySet {
  private readonly list: Uint8Array[] = []
  private set: KeySet | undefined

  add(key: Uint8Array): void {
    this.list.push(key)
    this.set?.add(key)
  }

  has(key: Uint8Array): boolean {
    if (this.list.length === 0) return false
    if (this.set === undefined) {
      this.set = new KeySet()
      for (const k of this.list) this.set.add(k)
    }
    return this.set.has(key)
  }
}
