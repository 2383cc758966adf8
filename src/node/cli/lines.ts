import { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'

/** Default longest NDJSON line hypem reads: 8 MiB. */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024

export interface BoundedLinesEvents {
  line: [line: string]
  /** A line over the bound: its bytes were dropped as they came, never held. */
  overlong: [bytes: number]
  close: []
}

/**
 * Lines of a byte stream, like readline's, but a line longer than
 * `maxBytes` is never held whole: its bytes are counted and dropped, and it
 * is reported once ('overlong') when its end arrives. pause() and resume()
 * apply to the stream (lines already split still come out).
 */
export class BoundedLines extends EventEmitter<BoundedLinesEvents> {
  private parts: Buffer[] = []
  private held = 0
  /** Bytes of the current line when it is over the bound (0: it is not). */
  private dropped = 0
  private closed = false

  constructor(
    private readonly input: Readable,
    readonly maxBytes: number = DEFAULT_MAX_LINE_BYTES,
  ) {
    super()
    input.on('data', this.onData)
    input.on('end', this.onEnd)
    input.on('close', this.onEnd)
  }

  pause(): void {
    this.input.pause()
  }

  resume(): void {
    this.input.resume()
  }

  /** Stop reading; 'close' follows once. */
  close(): void {
    this.input.off('data', this.onData)
    this.finish()
  }

  private readonly onData = (chunk: Buffer | string): void => {
    let bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    for (let nl = bytes.indexOf(0x0a); nl !== -1 && !this.closed; nl = bytes.indexOf(0x0a)) {
      this.take(bytes.subarray(0, nl))
      this.endLine()
      bytes = bytes.subarray(nl + 1)
    }
    if (bytes.length > 0 && !this.closed) this.take(bytes)
  }

  private take(piece: Buffer): void {
    if (this.dropped > 0 || this.held + piece.length > this.maxBytes) {
      this.dropped = (this.dropped || this.held) + piece.length
      this.parts = []
      this.held = 0
      return
    }
    if (piece.length > 0) this.parts.push(piece)
    this.held += piece.length
  }

  private endLine(): void {
    if (this.dropped > 0) {
      const bytes = this.dropped
      this.dropped = 0
      this.emit('overlong', bytes)
      return
    }
    let line = Buffer.concat(this.parts, this.held).toString('utf8')
    this.parts = []
    this.held = 0
    if (line.endsWith('\r')) line = line.slice(0, -1)
    this.emit('line', line)
  }

  private readonly onEnd = (): void => {
    if (this.closed) return
    if (this.held > 0 || this.dropped > 0) this.endLine()
    this.finish()
  }

  private finish(): void {
    if (this.closed) return
    this.closed = true
    this.input.off('end', this.onEnd)
    this.input.off('close', this.onEnd)
    this.emit('close')
  }
}
