/**
 * Protobuf base-128 varints for the hand-written codecs (node, envelope,
 * replication frames). Unsigned, up to 2^53: division rather than shifts,
 * since sequence and change numbers may pass 32 bits.
 */

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
  while (n >= 128) {
    out[pos++] = (n % 128) | 128
    n = Math.floor(n / 128)
  }
  out[pos++] = n
  return pos
}

/**
 * Reads varints from `bytes` in turn, for the decoders on hot paths: one
 * reader per message rather than a result object per varint.
 */
export class VarintReader {
  constructor(
    readonly bytes: Uint8Array,
    public pos = 0,
  ) {}

  /** The varint at `pos`, which moves past it; -1 when truncated, longer than 8 bytes or above 2^53. */
  next(): number {
    const bytes = this.bytes
    let value = 0
    let scale = 1
    for (let i = 0; i < 8 && this.pos < bytes.length; i++) {
      const b = bytes[this.pos++]
      value += (b & 0x7f) * scale
      if (b < 0x80) return Number.isSafeInteger(value) ? value : -1
      scale *= 128
    }
    return -1
  }
}
