/**
 * Where each stored node is, by key: an in-memory open-addressing table from
 * a 32-bit fingerprint of the key to its change number, 8 bytes a slot (so
 * 11 to 21 bytes a node as the table fills and doubles).
 *
 * Why in memory: a key record per node would be one more db write per
 * node, the cost that bounds a batch. The log stores keys packed instead and
 * rebuilds this table from them at open (32 bytes read per node).
 *
 * A fingerprint can collide, so a hit is only a candidate: the log confirms
 * it against the stored key before trusting it. A miss is certain.
 */
import { grown } from '../bytes/bytes.js'
import { keyWord } from '../bytes/keyed-hash.js'
import { KEY_BYTES } from '../codec/node.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { LogEntry } from '../types.js'
import { KEY_CHECKPOINT } from './format.js'

// The keyed word places the key (its low bits) and fingerprints it (all 32
// bits): a false candidate needs all 32 bits equal.
const wordOf = keyWord

const MIN_SLOTS = 1024
const NONE: readonly number[] = Object.freeze([])
// Linear probing stays short (about 2.5 probes for a hit, 8.5 for a miss) up to 3/4 full.
const MAX_LOAD = 0.75
// A change number must fit a slot's 32 bits (0 marks an empty slot).
const MAX_CHANGE = 0xffffffff

export class KeyIndex {
  // Slot i is [word, change] at 2i, 2i+1: one cache line holds eight slots.
  private slots = new Uint32Array(2 * MIN_SLOTS)
  private mask = MIN_SLOTS - 1
  private count = 0

  get size(): number {
    return this.count
  }

  /** Records that the node with the key at `at` in `key` is stored at `change` (1 to 2^32 - 1). */
  add(key: Uint8Array, change: number, at = 0): void {
    if (change > MAX_CHANGE) {
      throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `The log holds more than ${MAX_CHANGE} nodes, the most its key index can`)
    }
    if (this.count + 1 > (this.mask + 1) * MAX_LOAD) this.grow()
    this.place(wordOf(key, at), change)
    this.count++
  }

  /** Makes room for `total` keys at once, so loading a large log never regrows the table. Only while empty. */
  reserve(total: number): void {
    if (this.count > 0) return
    let slots = MIN_SLOTS
    while (total > slots * MAX_LOAD) slots *= 2
    if (slots === this.mask + 1) return
    this.slots = new Uint32Array(2 * slots)
    this.mask = slots - 1
  }

  /** Change numbers that may hold `key` (usually none or one); confirm before use. */
  candidates(key: Uint8Array): readonly number[] {
    const word = wordOf(key)
    const slots = this.slots
    let out: number[] | undefined
    for (let i = word & this.mask; slots[2 * i + 1] !== 0; i = (i + 1) & this.mask) {
      if (slots[2 * i] === word) (out ??= []).push(slots[2 * i + 1])
    }
    return out ?? NONE
  }

  clear(): void {
    this.slots = new Uint32Array(2 * MIN_SLOTS)
    this.mask = MIN_SLOTS - 1
    this.count = 0
  }

  private place(word: number, change: number): void {
    const slots = this.slots
    let i = word & this.mask
    while (slots[2 * i + 1] !== 0) i = (i + 1) & this.mask
    slots[2 * i] = word
    slots[2 * i + 1] = change
  }

  private grow(): void {
    const old = this.slots
    this.mask = old.length - 1
    this.slots = new Uint32Array(2 * old.length)
    for (let i = 0; i < old.length; i += 2) if (old[i + 1] !== 0) this.place(old[i], old[i + 1])
  }
}

/**
 * The keys of the last `capacity` stored nodes, whole, by change number: a
 * candidate from the KeyIndex that is this recent is confirmed in memory
 * (live traffic links recent nodes); older ones are confirmed in the db.
 */
export class RecentKeys {
  private readonly bytes: Uint8Array
  // Changes in (floor, top] were added, the last `capacity` of them kept.
  private floor = 0
  private top = 0

  constructor(private readonly capacity: number) {
    this.bytes = new Uint8Array(capacity * 32)
  }

  /** Remembers `key` as stored at `change`, the change after the last one added. */
  add(key: Uint8Array, change: number): void {
    this.top = change
    if (this.capacity === 0) return
    const at = (change % this.capacity) * 32
    for (let i = 0; i < 32; i++) this.bytes[at + i] = key[i]
  }

  /** Whether `key` is the one stored at `change`; undefined when that change is not remembered. */
  matches(key: Uint8Array, change: number): boolean | undefined {
    if (change <= this.floor || change > this.top || change <= this.top - this.capacity) return undefined
    const at = (change % this.capacity) * 32
    for (let i = 0; i < 32; i++) if (this.bytes[at + i] !== key[i]) return false
    return true
  }

  /** Forgets everything; the next change added is after `change`. */
  reset(change: number): void {
    this.floor = this.top = change
  }
}

/**
 * The keys of the changes after the last key index checkpoint (k record),
 * which the next checkpoint will hold.
 */
export class UnindexedKeys {
  private keys: Uint8Array = new Uint8Array(KEY_CHECKPOINT * KEY_BYTES)
  private held = 0

  get count(): number {
    return this.held
  }

  /** Holds `key` for the next checkpoint. */
  keep(key: Uint8Array): void {
    const at = this.held * KEY_BYTES
    this.keys = grown(this.keys, at, at + KEY_BYTES)
    this.keys.set(key, at)
    this.held++
  }

  /** The keys held, then those of `entries`: the next k record. */
  record(entries: LogEntry[]): Uint8Array {
    const held = this.held * KEY_BYTES
    const out = new Uint8Array(held + entries.length * KEY_BYTES)
    out.set(this.keys.subarray(0, held))
    for (let i = 0; i < entries.length; i++) out.set(entries[i].key, held + i * KEY_BYTES)
    return out
  }

  /** A checkpoint holds them now. */
  clear(): void {
    this.held = 0
  }

  /** A checkpoint (written by another log on the db) holds the first `count` of them now. */
  drop(count: number): void {
    const n = Math.min(count, this.held)
    this.keys.copyWithin(0, n * KEY_BYTES, this.held * KEY_BYTES)
    this.held -= n
  }
}
