import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import { checkSecretKey, type Ed25519, KeyCache, pkcs8, wellFormed } from '../core/identity/ed25519.js'

// SubjectPublicKeyInfo of a raw 32-byte Ed25519 key (RFC 8410).
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const publicKeys = new KeyCache<KeyObject>()

/**
 * node:crypto's Ed25519 (OpenSSL), injected by the Node entry: synchronous
 * underneath and about twice as fast as WebCrypto's in Node 20.
 */
export const nodeEd25519: Ed25519 = {
  async signer(secretKey) {
    checkSecretKey(secretKey)
    const key = createPrivateKey({ key: Buffer.from(pkcs8(secretKey)), format: 'der', type: 'pkcs8' })
    const spki = createPublicKey(key).export({ format: 'der', type: 'spki' })
    const publicKey = new Uint8Array(spki.subarray(SPKI_PREFIX.length))
    return { publicKey, sign: async (message) => new Uint8Array(sign(null, message, key)) }
  },
  async verify(publicKey, message, signature) {
    if (!wellFormed(publicKey, signature)) return false
    try {
      const key = publicKeys.get(Buffer.from(publicKey).toString('latin1'), () =>
        createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }),
      )
      return verify(null, message, key, signature)
    } catch {
      return false
    }
  },
}
