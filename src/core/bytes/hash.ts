import { sha256 as nobleSha256 } from '@noble/hashes/sha2'
import type { HashFn } from '../types.js'

// One hasher, reset per call from a pristine one with _cloneInto (which
// noble documents as its way to reuse an instance), instead of a new hasher
// and its buffers per call: measured ~1.1 us against ~2.2 us per ~100-byte
// node, the size of a typical event.
const pristine = nobleSha256.create()
const hasher = nobleSha256.create()
const digest = new Uint8Array(32)

/**
 * SHA-256 of `data` (a new 32-byte array), synchronous and pure JS so the core
 * needs no runtime crypto: what browsers use. The Node entry injects
 * node:crypto's `hash()`, as fast on small nodes and far faster on large ones.
 * WebCrypto's digest is async and measured 11-21 us per call in Chromium,
 * too slow per node.
 */
export const sha256: HashFn = (data) => {
  pristine._cloneInto(hasher)
  hasher.update(data)
  hasher.digestInto(digest)
  return digest.slice()
}
