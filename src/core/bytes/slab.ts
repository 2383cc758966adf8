/**
 * The core's one slab allocator: small arrays carved out of shared buffers,
 * for whatever makes many small private copies (received nodes, hashes,
 * socket frames).
 */

/**
 * Carves arrays of up to `maxShared` bytes (default a quarter of `size`)
 * out of shared buffers of `size` bytes; larger ones get their own. A
 * standalone array over 64 bytes costs V8 an off-heap store of its own,
 * several times a view's cost. The arrays share ArrayBuffers: never hand
 * `.buffer` on whole, transfer or detach it (see chunk.ts for the db).
 */
export class Slab {
  private buf = new ArrayBuffer(0)
  private pos = 0

  constructor(
    private readonly size: number,
    private readonly maxShared = size / 4,
  ) {}

  alloc(n: number): Uint8Array {
    if (n > this.maxShared) return new Uint8Array(n)
    if (this.pos + n > this.buf.byteLength) {
      this.buf = new ArrayBuffer(this.size)
      this.pos = 0
    }
    const v = new Uint8Array(this.buf, this.pos, n)
    this.pos += n
    return v
  }
}
