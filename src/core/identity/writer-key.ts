/**
 * How a writer id is bound to an Ed25519 key, and what exactly is signed.
 *
 * A writer id (16 bytes, in every node) is the first 16 bytes of
 * SHA-256(WRITER_DOMAIN || public key || chain), where `chain` is 16 random
 * bytes picked when the log starts its chain of nodes. Anyone given the
 * public key and the chain can check the binding; making a second key for
 * someone else's id takes a SHA-256 second preimage. One key may own several
 * chains (a db copied and run twice starts a new chain, see the README), so
 * the key, not the writer id, is who wrote an event.
 *
 * Signed messages start with a domain string, so a signature made for one
 * purpose is never valid for another:
 *   NODE_DOMAIN || node key (32)                 covers the node and every node
 *                                                of its writer in its past
 *   HANDSHAKE_DOMAIN || challenge (32) || writer  proves the key to one peer
 */
import { equalBytes } from '../bytes/bytes.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { PUBLIC_KEY_BYTES } from './ed25519.js'

/** SHA-256 (the log's HashFn, spelled out: types.ts imports this module). */
type HashFn = (data: Uint8Array) => Uint8Array

export const WRITER_ID_BYTES = 16
export const CHAIN_BYTES = 16
export const CHALLENGE_BYTES = 32

const encoder = new TextEncoder()
const WRITER_DOMAIN = encoder.encode('hyperemitter/v1 writer\0')
const NODE_DOMAIN = encoder.encode('hyperemitter/v1 node\0')
const HANDSHAKE_DOMAIN = encoder.encode('hyperemitter/v1 handshake\0')

/** A writer's public key and chain: what binds it to its writer id. */
export interface WriterKey {
  publicKey: Uint8Array
  chain: Uint8Array
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** The writer id of `key`. */
export function writerIdOf(hash: HashFn, key: WriterKey): Uint8Array {
  return hash(concat(WRITER_DOMAIN, key.publicKey, key.chain)).slice(0, WRITER_ID_BYTES)
}

/** Whether `key` is well formed and bound to `writer`. */
export function isBound(hash: HashFn, key: WriterKey, writer: Uint8Array): boolean {
  return (
    key.publicKey instanceof Uint8Array &&
    key.publicKey.length === PUBLIC_KEY_BYTES &&
    key.chain instanceof Uint8Array &&
    key.chain.length === CHAIN_BYTES &&
    equalBytes(writerIdOf(hash, key), writer)
  )
}

/** What a writer signs to vouch for the node with `key` and its own nodes before it. */
export function nodeMessage(key: Uint8Array): Uint8Array {
  return concat(NODE_DOMAIN, key)
}

/** What a peer signs to prove its key to the peer that sent `challenge`. */
export function handshakeMessage(challenge: Uint8Array, writer: Uint8Array): Uint8Array {
  return concat(HANDSHAKE_DOMAIN, challenge, writer)
}

/** A fresh random chain. */
export function newChain(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(CHAIN_BYTES))
}

/** The first 8 bytes of a public key in hex: what a UI shows for an author. */
export function fingerprint(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `a public key is ${PUBLIC_KEY_BYTES} bytes`)
  }
  let hex = ''
  for (let i = 0; i < 8; i++) hex += publicKey[i].toString(16).padStart(2, '0')
  return hex
}
