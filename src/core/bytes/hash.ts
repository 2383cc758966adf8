/**
 * The default node hash: SHA-256 in pure JS (@noble/hashes), synchronous,
 * so the core runs anywhere without runtime crypto.
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha256'
import type { HashFn } from '../types.js'

// One hasher reset per call from a pristine one (noble's _cloneInto), since
// a new hasher and its buffers per call cost as much as the hashing.
const pristine = nobleSha256.create()
const hasher = nobleSha256.create()
const digest = new Uint8Array(32)

/**
 * SHA-256 of `data` (a new 32-byte array), synchronous and pure JS so the core
 * needs no runtime crypto: what browsers use. The Node entry injects
 * node:crypto's `hash()`, as fast on small nodes and far faster on large ones.
 * WebCrypto's digest is async, too slow per node.
 */
export const sha256: HashFn = (data) => {
  pristine._cloneInto(hasher)
  hasher.update(data)
  hasher.digestInto(digest)
  return digest.slice()
}
