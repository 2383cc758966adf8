/**
 * What the log knows in memory once open: its writer, change count, heads,
 * clock and where each key is stored. Moves only when a batch is durable
 * (see commit.ts), so a failed batch leaves it as it was.
 */
import type { Identity } from '../identity/stored-key.js'
import { WriterKeys } from './signatures.js'
import type { Clock } from '../types.js'
import { KeyIndex, RecentKeys, UnindexedKeys } from './key-index.js'

export const HELD = 0
export const ABSENT = 1
export const UNKNOWN = 2
/** What memory can tell of a key: held, absent, or only the db knows. */
export type Located = typeof HELD | typeof ABSENT | typeof UNKNOWN

export class LogState {
  writer: Uint8Array = new Uint8Array(0)
  writerHex = ''
  /** The writer's key and signer, once open. */
  identity: Identity | undefined
  /** The keys of every writer whose nodes the log holds (its own too). */
  readonly writerKeys = new WriterKeys()
  /** Highest change number committed. */
  changes = 0
  clock: Clock = new Map()
  /** Writer hex -> key of its node at its clock seq (its tip), where known: what tells two copies at one seq apart. */
  tips = new Map<string, Uint8Array>()
  heads: Uint8Array[] = []
  // The node stored last (at change `changes`), so the next batch can
  // continue its writer-index run; unknown after open, which only costs one
  // index record.
  lastWriter: Uint8Array | undefined
  lastSeq = 0
  readonly index = new KeyIndex()
  readonly recent: RecentKeys
  readonly unindexed = new UnindexedKeys()

  constructor(recentKeys: number) {
    this.recent = new RecentKeys(recentKeys)
  }

  /** Whether a committed node has `key`, as far as memory can tell (the db settles UNKNOWN). */
  locate(key: Uint8Array): Located {
    const candidates = this.index.candidates(key)
    let found: Located = ABSENT
    for (const change of candidates) {
      const match = this.recent.matches(key, change)
      if (match === true) return HELD
      if (match === undefined) found = UNKNOWN
    }
    return found
  }
}
