/**
 * Fills one Nodes frame from entries in change order, and says where it may
 * end. A receiver checks one signature per writer, over that writer's last
 * node in the frame, so a frame may only end where every writer's last node
 * carries a signature: this log's own (signed when sent) or one stored with
 * a received node. Received runs always end at such a node, so a clean end
 * comes within one received frame's worth of entries; the byte budget is
 * exceeded to reach it, up to the channel's frame limit.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { LogEntry } from '../core/types.js'
import { nodesFrameSize, nodeWireSize } from './protocol.js'

/** Bytes kept per writer for its signature entry (writer, signature, key and tags). */
export const SIGNATURE_RESERVE = 160

export class FrameBuilder {
  readonly entries: LogEntry[] = []
  private body = 0
  /** Per writer hex: whether its last entry so far is signed. */
  private readonly lastSigned = new Map<string, boolean>()
  private unsigned = 0
  /** Entries in the frame at its last clean end. */
  private clean = 0

  constructor(
    private readonly ownHex: string,
    /** The frame size to aim for, and the most entries. */
    private readonly targetBytes: number,
    private readonly maxEntries: number,
    /** The frame size never to exceed (the channel's limit). */
    private readonly hardBytes: number,
    private readonly hexOf: (writer: Uint8Array) => string,
  ) {}

  /**
   * Adds `entry` unless the frame is full and may end before it (false).
   * Throws LIMIT_EXCEEDED when no clean end fits the channel's limit.
   */
  offer(entry: LogEntry): boolean {
    const hex = this.hexOf(entry.writer)
    const known = this.lastSigned.get(hex)
    const size = nodeWireSize(entry.bytes.length) + (known === undefined ? SIGNATURE_RESERVE : 0)
    const full = this.entries.length >= this.maxEntries || nodesFrameSize(this.body + size) > this.targetBytes
    if (full && this.clean > 0) return false
    if (nodesFrameSize(this.body + size) > this.hardBytes) {
      throw new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, `no signed end for a Nodes frame within ${this.hardBytes} bytes`, {
        details: { limit: this.hardBytes },
      })
    }
    const signed = hex === this.ownHex || entry.signature !== undefined
    if (known === false) this.unsigned--
    if (!signed) this.unsigned++
    this.lastSigned.set(hex, signed)
    this.entries.push(entry)
    this.body += size
    if (this.unsigned === 0) this.clean = this.entries.length
    return true
  }

  /**
   * The entries to send now: up to the last clean end, or all of them when
   * no more are coming (`last`: the receiver then judges an unsigned end).
   * The rest are to be offered again first.
   */
  split(last: boolean): { send: LogEntry[]; rest: LogEntry[] } {
    if (last || this.clean === this.entries.length || this.clean === 0) return { send: this.entries, rest: [] }
    return { send: this.entries.slice(0, this.clean), rest: this.entries.slice(this.clean) }
  }
}
