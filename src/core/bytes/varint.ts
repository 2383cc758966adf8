/**
 * The core's one protobuf base-128 varint codec, for the hand-written
 * codecs (node, envelope, chunk, replication frames) and the plain decoder.
 * Unsigned up to 2^53 by arithmetic, since seqs and change numbers pass 32
 * bits; full 64-bit varints are read as two 32-bit halves.
 */

/** The longest valid varint (a 64-bit value). */
export const VARINT_MAX_BYTES = 10
/** next() of a truncated varint, or one longer than VARINT_MAX_BYTES. */
export const MALFORMED = -1
/** next() of a well-formed varint above 2^53, which a number cannot hold exactly. */
export const TOO_BIG = -2

/** Bytes the varint of `n` takes. */
export function varintLength(n: number): number {
  let length = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    length++
  }
  return length
}

/** Writes the varint of `n` at `pos`; returns the position after it. */
export function writeVarint(out: Uint8Array, pos: number, n: number): number {
  if (n <= 0xffffffff) {
    // Within 32 bits the bit operators are exact, and faster than division.
    while (n > 127) {
      out[pos++] = (n & 127) | 128
      n >>>= 7
    }
    out[pos++] = n
    return pos
  }
  while (n >= 128) {
    out[pos++] = (n % 128) | 128
    n = Math.floor(n / 128)
  }
  out[pos++] = n
  return pos
}

/** Writes the varint of the 64-bit value with unsigned halves `lo` and `hi`; returns the position after it. */
export function writeVarint64(out: Uint8Array, pos: number, lo: number, hi: number): number {
  while (hi !== 0 || lo > 127) {
    out[pos++] = (lo & 127) | 128
    lo = ((lo >>> 7) | (hi << 25)) >>> 0
    hi = hi >>> 7
  }
  out[pos++] = lo
  return pos
}

/**
 * Reads varints from `bytes` between `pos` and `end` in turn: one reader
 * per message (or one reused cursor) rather than a result object per varint.
 */
export class VarintReader {
  /** The halves of the last next64(). */
  lo = 0
  hi = 0

  constructor(
    public bytes: Uint8Array,
    public pos = 0,
    public end = bytes.length,
  ) {}

  /** Points the reader at `bytes` from `pos` to `end`. */
  reset(bytes: Uint8Array, pos: number, end: number): void {
    this.bytes = bytes
    this.pos = pos
    this.end = end
  }

  /** The unsigned varint at `pos`, which moves past it; MALFORMED or TOO_BIG when it is not one a number holds. */
  next(): number {
    const bytes = this.bytes
    let pos = this.pos
    const end = this.end
    if (pos < end && bytes[pos] < 0x80) {
      this.pos = pos + 1
      return bytes[pos]
    }
    let value = 0
    let scale = 1
    for (let i = 0; i < VARINT_MAX_BYTES && pos < end; i++) {
      const b = bytes[pos++]
      value += (b & 0x7f) * scale
      if (b < 0x80) {
        this.pos = pos
        return value > Number.MAX_SAFE_INTEGER ? TOO_BIG : value
      }
      scale *= 128
    }
    this.pos = pos
    return MALFORMED
  }

  /** next() for a varint in its shortest form of at most `maxBytes` bytes; MALFORMED for anything else. */
  nextMinimal(maxBytes: number): number {
    const bytes = this.bytes
    let pos = this.pos
    const end = this.end
    let value = 0
    let scale = 1
    for (let i = 0; i < maxBytes && pos < end; i++) {
      const b = bytes[pos++]
      value += (b & 0x7f) * scale
      if (b < 0x80) {
        this.pos = pos
        return b === 0 && i > 0 ? MALFORMED : value
      }
      scale *= 128
    }
    this.pos = pos
    return MALFORMED
  }

  /** Any varint (up to 64 bits) into `lo` and `hi`, unsigned; false when truncated or too long. */
  next64(): boolean {
    const bytes = this.bytes
    let pos = this.pos
    const end = this.end
    let lo = 0
    let hi = 0
    let b = 0x80
    for (let shift = 0; shift < 28 && pos < end; shift += 7) {
      b = bytes[pos++]
      lo |= (b & 0x7f) << shift
      if (b < 0x80) break
    }
    if (b >= 0x80 && pos < end) {
      // The fifth byte straddles the halves: 4 bits to lo, 3 to hi.
      b = bytes[pos++]
      lo |= (b & 0x0f) << 28
      hi = (b & 0x7f) >> 4
      for (let shift = 3; b >= 0x80 && shift < 32 && pos < end; shift += 7) {
        b = bytes[pos++]
        hi |= (b & 0x7f) << shift
      }
    }
    this.pos = pos
    if (b >= 0x80) return false
    this.lo = lo >>> 0
    this.hi = hi >>> 0
    return true
  }
}
