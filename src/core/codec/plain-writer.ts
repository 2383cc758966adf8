/**
 * The plain encoder's output buffer: one growing buffer reused for every
 * encode, written with the core's varint codec, with the encoder's
 * position in the value (event, field path, depth) for error messages.
 */
import { grown } from '../bytes/bytes.js'
import { varintLength, writeVarint, writeVarint64 } from '../bytes/varint.js'

const utf8Encoder = new TextEncoder()
const scratch = new DataView(new ArrayBuffer(8))

export class Writer {
  buf: Uint8Array = new Uint8Array(1024)
  pos = 0
  busy = false
  event = ''
  path: string[] = []
  depth = 0

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = grown(this.buf, this.pos, this.pos + n)
  }

  /** Unsigned 32-bit varint (v in [0, 2^32)). */
  varint32(v: number): void {
    this.ensure(5)
    this.pos = writeVarint(this.buf, this.pos, v)
  }

  /** int32 semantics: negatives take ten bytes, sign-extended to 64 bits. */
  int32(v: number): void {
    if (v >= 0) this.varint32(v)
    else this.varint64(v >>> 0, 0xffffffff)
  }

  varint64(lo: number, hi: number): void {
    this.ensure(10)
    this.pos = writeVarint64(this.buf, this.pos, lo, hi)
  }

  fixed32(v: number): void {
    this.ensure(4)
    const buf = this.buf
    const pos = this.pos
    buf[pos] = v & 255
    buf[pos + 1] = (v >>> 8) & 255
    buf[pos + 2] = (v >>> 16) & 255
    buf[pos + 3] = (v >>> 24) & 255
    this.pos = pos + 4
  }

  float(v: number): void {
    scratch.setFloat32(0, v, true)
    this.fixed32(scratch.getUint32(0, true))
  }

  double(v: number): void {
    scratch.setFloat64(0, v, true)
    this.fixed32(scratch.getUint32(0, true))
    this.fixed32(scratch.getUint32(4, true))
  }

  /** Reserve a length prefix of `guess` bytes; returns where content starts. */
  beginLen(guess: number): number {
    this.ensure(guess)
    this.pos += guess
    return this.pos
  }

  /** Write the length of the content since `start` into its reserved prefix. */
  endLen(start: number, guess: number): void {
    const len = this.pos - start
    const need = varintLength(len)
    if (need !== guess) {
      // The content outgrew the guessed prefix: slide it right.
      this.ensure(need - guess)
      this.buf.copyWithin(start + need - guess, start, this.pos)
      this.pos += need - guess
    }
    writeVarint(this.buf, start - guess, len)
  }

  string(s: string): void {
    const n = s.length
    const guess = varintLength(n)
    this.ensure(guess + n * 3)
    const start = this.beginLen(guess)
    const buf = this.buf
    let pos = start
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        pos = start + utf8Encoder.encodeInto(s, buf.subarray(start)).written
        break
      }
      buf[pos++] = c
    }
    this.pos = pos
    this.endLen(start, guess)
  }

  bytes(b: Uint8Array): void {
    this.varint32(b.length)
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
}
