/**
 * Refusals on one connection, both ways: writers whose nodes we refused
 * from the peer (their later nodes are dropped unstored; a peer that keeps
 * sending them past what was already in flight is disconnected), and writers
 * the peer refused from us (never sent to it again on this connection).
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { peekNodeSeq, peekNodeWriter } from './protocol.js'

/**
 * Nodes of writers we refused that may still arrive: what the peer had in
 * flight before our Refused reached it (its maxInFlight, 8192 by default).
 */
export const REFUSED_GRACE_NODES = 65536

/** A refusal as the session reports it, once per writer per connection. */
export interface RefusalInfo {
  /** The writer id (hex). */
  writer: string
  /** Its nodes from this seq on are refused. */
  seq: number
  code: string
  error: HyperEmitterError
  /** 'us': we refused the peer's nodes; 'peer': the peer refused ours. */
  by: 'us' | 'peer'
  /** Two validly signed nodes of the writer at one seq. */
  fork: boolean
}

export class Refusals {
  /** Writers we refused, by hex. */
  private readonly ours = new Set<string>()
  private dropped = 0

  /** Whether `hex`'s nodes are refused from this peer. */
  has(hex: string): boolean {
    return this.ours.has(hex)
  }

  /** Records that we refused `hex`; true the first time. */
  refuse(hex: string): boolean {
    if (this.ours.has(hex)) return false
    this.ours.add(hex)
    return true
  }

  /**
   * `nodes` without those of refused writers (undecodable ones stay: the
   * log refuses the frame for them). Throws PROTOCOL_ERROR once the peer
   * sent more of them than could have been in flight.
   */
  filter(nodes: Uint8Array[], hexOf: (writer: Uint8Array) => string): Uint8Array[] {
    if (this.ours.size === 0) return nodes
    const kept = nodes.filter((n) => peekNodeSeq(n) < 0 || !this.ours.has(hexOf(peekNodeWriter(n))))
    this.dropped += nodes.length - kept.length
    if (this.dropped > REFUSED_GRACE_NODES) {
      throw new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `the peer kept sending nodes of writers it was told are refused (${this.dropped} nodes)`, {
        details: { dropped: this.dropped },
      })
    }
    return kept
  }
}
