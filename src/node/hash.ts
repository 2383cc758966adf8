import { createHash, hash } from 'node:crypto'
import type { HashFn } from '../core/types.js'

/**
 * node:crypto's one-shot hash() (Node >= 20.12) is the fastest SHA-256 here,
 * about twice the pure-JS one (bench/hash.ts); createHash() covers older 20.x.
 */
export const nodeSha256: HashFn =
  typeof hash === 'function'
    ? (data) => hash('sha256', data, 'buffer') as unknown as Uint8Array
    : (data) => createHash('sha256').update(data).digest()
