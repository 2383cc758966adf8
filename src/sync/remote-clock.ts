/**
 * What the peer is known to hold: per writer, the highest seq it sent us,
 * said it had, or was sent. Both directions consult it so that no node goes
 * back to a peer that has it.
 */
import { equalBytes, toHex } from '../core/bytes/bytes.js'
import type { Clock, LogEntry } from '../core/types.js'

export class RemoteClock {
  /** writer hex -> highest seq the remote is known to hold. */
  readonly seqs: Clock = new Map()
  // Consecutive entries usually share a writer: its hex is kept.
  private lastWriter?: Uint8Array
  private lastWriterHex = ''

  /** `writer` in hex. */
  hexOf(writer: Uint8Array): string {
    const last = this.lastWriter
    if (last === undefined || !equalBytes(last, writer)) {
      this.lastWriter = writer
      this.lastWriterHex = toHex(writer)
    }
    return this.lastWriterHex
  }

  mark(writer: string, seq: number): void {
    if ((this.seqs.get(writer) ?? 0) < seq) this.seqs.set(writer, seq)
  }

  /** The peer holds another branch of `writer` after `seq`: ours is to be sent from there. */
  lower(writer: string, seq: number): void {
    if ((this.seqs.get(writer) ?? 0) > seq) this.seqs.set(writer, seq)
  }

  /** The peer refused `writer`: nothing more of it goes to this peer. */
  refuse(writer: string): void {
    this.seqs.set(writer, Infinity)
  }

  has(entry: LogEntry): boolean {
    return (this.seqs.get(this.hexOf(entry.writer)) ?? 0) >= entry.seq
  }
}
