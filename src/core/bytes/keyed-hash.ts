/**
 * The core's one keyed hash of node keys, for its in-memory tables (the
 * key index, key sets): four bytes of the 32-byte key, at an offset chosen
 * at random per process, so nobody can precompute keys that pile up in one
 * bucket or probe chain.
 */

const WORD_AT = Math.floor(Math.random() * 29)

/** A 32-bit unsigned word of `key` (32 bytes), the same for equal keys within this process. */
export function keyWord(key: Uint8Array): number {
  return ((key[WORD_AT] << 24) | (key[WORD_AT + 1] << 16) | (key[WORD_AT + 2] << 8) | key[WORD_AT + 3]) >>> 0
}
