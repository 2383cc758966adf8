/**
 * Sets of 32-byte node keys without hex strings. Building a 64-character hex
 * string per key and hashing it measured ~2.4 us per key, and the strings
 * were the bulk of the log's garbage; a Map keyed by four bytes of the key
 * (a small integer) with full-key comparison costs a fraction of that.
 */
import { equalBytes } from './bytes.js'

// Which four bytes index the map is chosen at random per process, so nobody
// can precompute keys that pile up in one bucket.
const OFFSET = Math.floor(Math.random() * 29)

function bucketOf(key: Uint8Array): number {
  // 30 bits keep the number a V8 small integer (fast Map keys).
  return ((key[OFFSET] << 22) | (key[OFFSET + 1] << 14) | (key[OFFSET + 2] << 6) | (key[OFFSET + 3] >>> 2)) >>> 0
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

  keys(): Uint8Array[] {
    const out: Uint8Array[] = []
    for (const slot of this.map.values()) {
      if (slot instanceof Uint8Array) out.push(slot)
      else out.push(...slot)
    }
    return out
  }

  clear(): void {
    this.map.clear()
    this.count = 0
  }
}

/** One generation of RecentKeys: keys copied into one flat buffer, indexed by bucket. */
class Generation {
  readonly bytes: Uint8Array
  count = 0
  private readonly map = new Map<number, number | number[]>()

  constructor(readonly capacity: number) {
    this.bytes = new Uint8Array(capacity * 32)
  }

  private matches(index: number, key: Uint8Array): boolean {
    const base = index * 32
    for (let i = 0; i < 32; i++) if (this.bytes[base + i] !== key[i]) return false
    return true
  }

  has(key: Uint8Array): boolean {
    const slot = this.map.get(bucketOf(key))
    if (slot === undefined) return false
    if (typeof slot === 'number') return this.matches(slot, key)
    for (const i of slot) if (this.matches(i, key)) return true
    return false
  }

  /** Adds a key not yet present; the caller checks there is room. */
  add(key: Uint8Array): void {
    const index = this.count++
    this.bytes.set(key, index * 32)
    const b = bucketOf(key)
    const slot = this.map.get(b)
    if (slot === undefined) this.map.set(b, index)
    else if (typeof slot === 'number') this.map.set(b, [slot, index])
    else slot.push(index)
  }
}

/**
 * A bounded memory of recently stored keys: two generations, the older
 * dropped whole when the newer fills up, so it holds between capacity/2 and
 * capacity keys and needs no per-key eviction. Keys are copied into flat
 * buffers, so remembering a key never pins the buffer it came from.
 */
export class RecentKeys {
  private current: Generation
  private previous: Generation
  private readonly half: number

  constructor(capacity: number) {
    this.half = Math.max(0, Math.floor(capacity / 2))
    this.current = new Generation(this.half)
    this.previous = new Generation(0)
  }

  has(key: Uint8Array): boolean {
    return this.current.has(key) || this.previous.has(key)
  }

  add(key: Uint8Array): void {
    if (this.half === 0 || this.current.has(key)) return
    if (this.current.count >= this.half) {
      this.previous = this.current
      this.current = new Generation(this.half)
    }
    this.current.add(key)
  }

  clear(): void {
    this.current = new Generation(this.half)
    this.previous = new Generation(0)
  }
}
