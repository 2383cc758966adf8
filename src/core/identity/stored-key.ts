/**
 * A log's own key, kept in its db: record `i` of the log's sublevel holds
 * chain(16) || public key(32) || secret key(32). When the application
 * supplies the secret key (the `secretKey` option) the record holds no
 * secret, and every later open must supply the same key again.
 */
import type { AbstractSublevel } from 'abstract-level'
import { equalBytes } from '../bytes/bytes.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { HashFn } from '../types.js'
import { checkSecretKey, type Ed25519, generateSecretKey, PUBLIC_KEY_BYTES, SECRET_KEY_BYTES, type Signer } from './ed25519.js'
import { CHAIN_BYTES, newChain, type WriterKey, writerIdOf } from './writer-key.js'

type Sub = AbstractSublevel<any, any, Uint8Array, Uint8Array>

export const IDENTITY_KEY = Uint8Array.of(0x69) // 'i'

/** A log's writer: its id, the key and chain it is bound to, and a signer. */
export interface Identity {
  writer: Uint8Array
  key: WriterKey
  signer: Signer
}

/**
 * Reads the log's key from `sub`, or makes one (from `secretKey` when given)
 * and stores it. Rejects INVALID_ARGUMENT when `secretKey` is malformed or
 * is not this db's key, or when the db's key was supplied and `secretKey`
 * is missing; STORAGE_FAILED when the record is damaged.
 */
export async function loadIdentity(sub: Sub, ed25519: Ed25519, hash: HashFn, secretKey: Uint8Array | undefined): Promise<Identity> {
  if (secretKey !== undefined) checkSecretKey(secretKey)
  const record = await sub.get(IDENTITY_KEY)
  if (record === undefined) {
    const secret = secretKey ?? generateSecretKey()
    const signer = await ed25519.signer(secret)
    const key = { publicKey: signer.publicKey, chain: newChain() }
    const stored = new Uint8Array(CHAIN_BYTES + PUBLIC_KEY_BYTES + (secretKey === undefined ? SECRET_KEY_BYTES : 0))
    stored.set(key.chain)
    stored.set(key.publicKey, CHAIN_BYTES)
    if (secretKey === undefined) stored.set(secret, CHAIN_BYTES + PUBLIC_KEY_BYTES)
    await sub.put(IDENTITY_KEY, stored)
    return { writer: writerIdOf(hash, key), key, signer }
  }
  const withSecret = record.length === CHAIN_BYTES + PUBLIC_KEY_BYTES + SECRET_KEY_BYTES
  if (!withSecret && record.length !== CHAIN_BYTES + PUBLIC_KEY_BYTES) {
    throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `The log's key record is ${record.length} bytes: damaged`)
  }
  const key = { chain: record.slice(0, CHAIN_BYTES), publicKey: record.slice(CHAIN_BYTES, CHAIN_BYTES + PUBLIC_KEY_BYTES) }
  const secret = secretKey ?? (withSecret ? record.slice(CHAIN_BYTES + PUBLIC_KEY_BYTES) : undefined)
  if (secret === undefined) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, "This db's writer key was supplied by the application: pass the same secretKey again")
  }
  const signer = await ed25519.signer(secret)
  if (!equalBytes(signer.publicKey, key.publicKey)) {
    throw new HyperEmitterError(
      ErrorCodes.INVALID_ARGUMENT,
      withSecret && secretKey !== undefined ? 'secretKey is not the key this db was created with' : "The db's public key does not match its secret key",
    )
  }
  return { writer: writerIdOf(hash, key), key, signer }
}
