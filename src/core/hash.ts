import { sha256 as nobleSha256 } from '@noble/hashes/sha2'
import type { HashFn } from './types.js'

/**
 * SHA-256 of `data` (32 bytes), synchronous and pure JS so the core needs no
 * runtime crypto. Measured on ~100-byte nodes (bench/hash.ts): ~3.6 us here vs
 * ~1.9 us for node:crypto's `hash()`, which the Node entry injects instead.
 * WebCrypto's digest is async and ~30-45 us per call, too slow per node.
 */
export const sha256: HashFn = (data) => nobleSha256(data)
