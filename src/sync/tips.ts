/**
 * Clock tips: each Clock entry carries a prefix of the key of the writer's
 * node at that seq, so two peers at one seq with different nodes (a fork:
 * a db copied and run twice) see it at the handshake instead of trading
 * nodes that can never link.
 */
import type { Clock } from '../core/types.js'

/** Db lookups one Clock may cost (a seq below our own): a Clock naming more writers gets the rest compared at our head only. */
export const MAX_TIP_LOOKUPS = 1024

/** Bytes of a key a Clock entry carries: enough to tell two nodes apart by chance never, small on the wire. */
export const TIP_BYTES = 8

/** Writer hex -> tip prefix, as a peer's Clock gave them. */
export type Tips = Map<string, Uint8Array>

/** What a tip comparison needs of a log. */
export interface TipSource {
  clock(): Clock
  tipOf(writerHex: string): Uint8Array | undefined
  keyAt(writer: Uint8Array, seq: number): Promise<Uint8Array | undefined>
}

/** Whether `tip` (a prefix) names `key`. */
export function sameTip(tip: Uint8Array, key: Uint8Array): boolean {
  if (tip.length > key.length) return false
  for (let i = 0; i < tip.length; i++) if (tip[i] !== key[i]) return false
  return true
}

/**
 * The writers whose node at the peer's seq is not ours at that seq: the
 * peer holds another branch. Only writers the peer holds no more of than
 * we do are checked (the side ahead checks the other); a seq at our own
 * head costs nothing, a lower one one lookup (it comes before nodes we
 * would read to send anyway).
 */
export async function divergedWriters(log: TipSource, remote: Clock, tips: Tips, writerOf: (hex: string) => Uint8Array | undefined): Promise<string[]> {
  const ours = log.clock()
  const out: string[] = []
  let lookups = 0
  for (const [hex, tip] of tips) {
    const seq = remote.get(hex) ?? 0
    const have = ours.get(hex) ?? 0
    if (seq < 1 || seq > have) continue
    let key = seq === have ? log.tipOf(hex) : undefined
    if (key === undefined) {
      if (++lookups > MAX_TIP_LOOKUPS) continue
      const writer = writerOf(hex)
      if (writer === undefined) continue
      key = await log.keyAt(writer, seq)
    }
    if (key !== undefined && !sameTip(tip, key)) out.push(hex)
  }
  return out
}
