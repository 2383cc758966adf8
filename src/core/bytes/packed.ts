/**
 * Values packed one after another into one growing buffer, read back by
 * index: how a group of emits holds its envelopes until its batch commits.
 */
import { grown } from './bytes.js'

/** One buffer instead of an array per value, which garbage collection would copy while many emits are in flight. */
export class PackedBytes {
  private bytes: Uint8Array
  private readonly ends: number[] = []
  private pos = 0

  /**
   * `capacity`: the bytes expected, when known (a wrong guess costs a copy
   * or some slack). The default, 64 bytes, is the most V8 keeps on its own
   * heap (larger arrays get a costlier off-heap store), and an awaited
   * emit's group holds one small envelope.
   */
  constructor(capacity = 64) {
    this.bytes = new Uint8Array(Math.max(64, capacity))
  }

  /** The bytes held so far. */
  get byteLength(): number {
    return this.pos
  }

  get length(): number {
    return this.ends.length
  }

  /** Makes room for a value of `size` bytes: write it into `buffer` from the returned offset. */
  reserve(size: number): number {
    const end = this.pos + size
    this.bytes = grown(this.bytes, this.pos, end)
    const at = this.pos
    this.pos = end
    this.ends.push(end)
    return at
  }

  /** The buffer reserve() made room in (replaced when it grows). */
  get buffer(): Uint8Array {
    return this.bytes
  }

  /** The length of the value at `index`. */
  sizeAt(index: number): number {
    return this.ends[index] - this.startAt(index)
  }

  /** Where the value at `index` starts in `buffer`. */
  startAt(index: number): number {
    return index === 0 ? 0 : this.ends[index - 1]
  }
}
