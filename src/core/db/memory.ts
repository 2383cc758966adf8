/**
 * An in-memory ByteStore (a sorted array, binary search): the default db
 * where nothing else is given or IndexedDB is missing. Data lives as long as
 * the object, across close() and open().
 */
import { LiteDb, type ByteOp, type ByteRange, type ByteStore } from './lite.js'

/** Byte-wise order, as IndexedDB and LevelDB sort binary keys. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.length - b.length
}

class MemoryStore implements ByteStore {
  private readonly keys: Uint8Array[] = []
  private readonly values: Uint8Array[] = []

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const i = this.search(key)
    return i < this.keys.length && compareBytes(this.keys[i], key) === 0 ? this.values[i] : undefined
  }

  async write(ops: readonly ByteOp[]): Promise<void> {
    for (const op of ops) {
      const i = this.search(op.key)
      const found = i < this.keys.length && compareBytes(this.keys[i], op.key) === 0
      if (op.type === 'del') {
        if (found) {
          this.keys.splice(i, 1)
          this.values.splice(i, 1)
        }
      } else if (found) {
        this.values[i] = own(op.value)
      } else {
        this.keys.splice(i, 0, op.key.slice())
        this.values.splice(i, 0, own(op.value))
      }
    }
  }

  async read(range: ByteRange, reverse: boolean, count: number): Promise<Array<[Uint8Array, Uint8Array]>> {
    let from = range.lower === undefined ? 0 : this.search(range.lower)
    if (range.lower !== undefined && range.lowerOpen && from < this.keys.length && compareBytes(this.keys[from], range.lower) === 0) from++
    let to = range.upper === undefined ? this.keys.length : this.search(range.upper)
    if (range.upper !== undefined && !range.upperOpen && to < this.keys.length && compareBytes(this.keys[to], range.upper) === 0) to++
    const rows: Array<[Uint8Array, Uint8Array]> = []
    if (reverse) for (let i = to - 1; i >= from && rows.length < count; i--) rows.push([this.keys[i], this.values[i]])
    else for (let i = from; i < to && rows.length < count; i++) rows.push([this.keys[i], this.values[i]])
    return rows
  }

  /** The index of the first key >= `key`. */
  private search(key: Uint8Array): number {
    let lo = 0
    let hi = this.keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (compareBytes(this.keys[mid], key) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

/** `value` with a buffer of its own, so a small record never keeps a large slab alive. */
export function own(value: Uint8Array): Uint8Array {
  return value.byteOffset !== 0 || value.byteLength !== value.buffer.byteLength ? value.slice() : value
}

/** A new, empty in-memory db. */
export function memoryDb(): LiteDb {
  return new LiteDb(new MemoryStore())
}
