/**
 * The core's one keyed hash of node keys, for its in-memory tables (the
 * key index, key sets): four bytes of the 32-byte key, at an offset chosen
 * at random per process, so nobody can precompute keys that pile up in one
 * bucket or probe chain.
 */

const WORD_AT = Math.floor(Math.random() * 29)

/** A 32-bit unsigned word of the 32-byte key at `at` in `key`, the same for equal keys within this process. */
export function keyWord(key: Uint8Array, at = 0): number {
  const i = at + WORD_AT
  return ((key[i] << 24) | (key[i + 1] << 16) | (key[i + 2] << 8) | key[i + 3]) >>> 0
}
