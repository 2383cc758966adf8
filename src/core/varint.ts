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

/** Reads a varint at `pos`: its value and the position after it; undefined if truncated, too long or above 2^53. */
export function readVarint(bytes: Uint8Array, pos: number): { value: number; pos: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < 8 && pos < bytes.byteLength; i++) {
    const b = bytes[pos++]
    value += (b & 0x7f) * scale
    if (b < 0x80) return Number.isSafeInteger(value) ? { value, pos } : undefined
    scale *= 128
  }
  return undefined
}
