/**
 * Small byte helpers shared by the core. Plain Uint8Array only: the core runs
 * in browsers, so no Buffer.
 */

// ASCII codes of the two hex digits of each byte value: hex is written as
// ASCII bytes and decoded in one call, since concatenation builds a rope.
const HEX_CODES = new Uint8Array(512)
for (let i = 0; i < 256; i++) {
  const h = (i < 16 ? '0' : '') + i.toString(16)
  HEX_CODES[2 * i] = h.charCodeAt(0)
  HEX_CODES[2 * i + 1] = h.charCodeAt(1)
}
const asciiDecoder = new TextDecoder()
const scratch = new Uint8Array(128)
// Views of scratch by length, made once: subarray() per call costs as much as the encoding.
const scratchViews: Uint8Array[] = []

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  const out = bytes.length * 2 <= scratch.length ? scratch : new Uint8Array(bytes.length * 2)
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i] * 2
    out[2 * i] = HEX_CODES[c]
    out[2 * i + 1] = HEX_CODES[c + 1]
  }
  if (out !== scratch) return asciiDecoder.decode(out)
  const n = bytes.length * 2
  return asciiDecoder.decode((scratchViews[n] ??= scratch.subarray(0, n)))
}

/** Bytes of a lowercase or uppercase hex string; returns undefined when `hex` is not valid hex. */
export function fromHex(hex: string): Uint8Array | undefined {
  if (hex.length % 2 !== 0) return undefined
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) {
    const hi = nibble(hex.charCodeAt(2 * i))
    const lo = nibble(hex.charCodeAt(2 * i + 1))
    if (hi < 0 || lo < 0) return undefined
    out[i] = (hi << 4) | lo
  }
  return out
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** True when `a` and `b` hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  // The same array is common: runs of one writer's nodes share theirs.
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lexicographic byte order: negative, zero or positive like Array.prototype.sort expects. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.length - b.length
}

const TWO_32 = 0x1_0000_0000

/** Writes `n` (a safe non-negative integer) as 8 big-endian bytes at `offset`. */
export function writeUint64BE(out: Uint8Array, offset: number, n: number): void {
  // Split arithmetically: JS bit operators only see 32 bits.
  const hi = Math.floor(n / TWO_32)
  const lo = n >>> 0
  out[offset] = hi >>> 24
  out[offset + 1] = (hi >>> 16) & 0xff
  out[offset + 2] = (hi >>> 8) & 0xff
  out[offset + 3] = hi & 0xff
  out[offset + 4] = lo >>> 24
  out[offset + 5] = (lo >>> 16) & 0xff
  out[offset + 6] = (lo >>> 8) & 0xff
  out[offset + 7] = lo & 0xff
}

/** Reads 8 big-endian bytes at `offset` as a number (exact up to 2^53). */
export function readUint64BE(bytes: Uint8Array, offset: number): number {
  const hi = ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0
  const lo = ((bytes[offset + 4] << 24) | (bytes[offset + 5] << 16) | (bytes[offset + 6] << 8) | bytes[offset + 7]) >>> 0
  return hi * TWO_32 + lo
}

/** 8 big-endian bytes of `n`. */
export function uint64BE(n: number): Uint8Array {
  const out = new Uint8Array(8)
  writeUint64BE(out, 0, n)
  return out
}

/** A view of `length` bytes of `arr` from `start` (cheaper than subarray in V8). */
export function view(arr: Uint8Array, start: number, length: number): Uint8Array {
  return new Uint8Array(arr.buffer, arr.byteOffset + start, length)
}

/**
 * Copies `length` bytes of `source` from `start` into `out` at `pos`. A
 * plain loop for small copies: TypedArray#set's call, and the subarray it
 * would need, cost more than the copy.
 */
export function copyBytes(out: Uint8Array, pos: number, source: Uint8Array, start: number, length: number): void {
  if (length <= 64) {
    for (let i = 0; i < length; i++) out[pos + i] = source[start + i]
  } else {
    out.set(start === 0 && length === source.length ? source : source.subarray(start, start + length), pos)
  }
}

/** Grows `arr` to hold at least `need` bytes, keeping its first `used`. Old views stay valid (they keep the old buffer). */
export function grown(arr: Uint8Array, used: number, need: number): Uint8Array {
  if (need <= arr.length) return arr
  const out = new Uint8Array(Math.max(need, arr.length * 2))
  out.set(arr.subarray(0, used))
  return out
}
