/**
 * Ed25519 (RFC 8032) behind one small interface, so the core signs and
 * verifies the same way in every runtime: WebCrypto where the runtime has
 * Ed25519 (Node 20, Chromium), @noble/curves otherwise (loaded only then).
 * The Node entry injects node:crypto's, which is faster (src/node/ed25519.ts).
 * Every implementation verifies strictly (RFC 8032 / FIPS 186-5, not ZIP 215),
 * so no signature is valid on one peer and not on another.
 */
import { ErrorCodes, HyperEmitterError } from '../errors.js'

export const SECRET_KEY_BYTES = 32
export const PUBLIC_KEY_BYTES = 32
export const SIGNATURE_BYTES = 64

/** Signs with one secret key. */
export interface Signer {
  /** The 32-byte public key of the secret key. */
  readonly publicKey: Uint8Array
  /** The 64-byte signature of `message` (Ed25519 is deterministic: one message, one signature). */
  sign(message: Uint8Array): Promise<Uint8Array>
}

/** What the log and the sync layer need of Ed25519. */
export interface Ed25519 {
  /** A signer for a 32-byte secret key (the RFC 8032 seed). Rejects INVALID_ARGUMENT for any other size. */
  signer(secretKey: Uint8Array): Promise<Signer>
  /** Whether `signature` is `publicKey`'s over `message`; false (never a throw) for malformed input. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>
}

/** A fresh secret key: 32 random bytes are a valid Ed25519 seed. */
export function generateSecretKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SECRET_KEY_BYTES))
}

export function checkSecretKey(secretKey: unknown): asserts secretKey is Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== SECRET_KEY_BYTES) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `an Ed25519 secret key is a ${SECRET_KEY_BYTES}-byte Uint8Array`, {
      details: { length: secretKey instanceof Uint8Array ? secretKey.length : undefined },
    })
  }
}

/** Whether the three inputs have the sizes a verification needs. */
export function wellFormed(publicKey: Uint8Array, signature: Uint8Array): boolean {
  return publicKey instanceof Uint8Array && publicKey.length === PUBLIC_KEY_BYTES && signature instanceof Uint8Array && signature.length === SIGNATURE_BYTES
}

/** PKCS #8 wrapping of a 32-byte Ed25519 seed (RFC 8410): what WebCrypto and node:crypto import. */
export function pkcs8(secretKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(PKCS8_PREFIX.length + SECRET_KEY_BYTES)
  out.set(PKCS8_PREFIX)
  out.set(secretKey, PKCS8_PREFIX.length)
  return out
}
const PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20)

/**
 * Imported public keys kept for verification, so a peer's key is imported
 * once, not per frame; bounded: cleared when full.
 */
export class KeyCache<K> {
  private readonly keys = new Map<string, K>()
  constructor(private readonly max = 1024) {}
  get(id: string, make: () => K): K {
    let key = this.keys.get(id)
    if (key === undefined) {
      if (this.keys.size >= this.max) this.keys.clear()
      key = make()
      this.keys.set(id, key)
    }
    return key
  }
}

/** WebCrypto's typings want an ArrayBuffer-backed view; a view of a shared buffer never reaches here. */
function buffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>
}

function latin1(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes)
}

/** Ed25519 through `crypto.subtle`. */
function webCrypto(subtle: SubtleCrypto): Ed25519 {
  const ALGORITHM = { name: 'Ed25519' }
  const publicKeys = new KeyCache<Promise<CryptoKey>>()
  return {
    async signer(secretKey) {
      checkSecretKey(secretKey)
      // Extractable only long enough to read the public key out of its JWK.
      const extractable = await subtle.importKey('pkcs8', buffer(pkcs8(secretKey)), ALGORITHM, true, ['sign'])
      const jwk = await subtle.exportKey('jwk', extractable)
      const publicKey = fromBase64Url(jwk.x ?? '')
      const key = await subtle.importKey('pkcs8', buffer(pkcs8(secretKey)), ALGORITHM, false, ['sign'])
      return { publicKey, sign: async (message) => new Uint8Array(await subtle.sign(ALGORITHM, key, buffer(message))) }
    },
    async verify(publicKey, message, signature) {
      if (!wellFormed(publicKey, signature)) return false
      try {
        const key = await publicKeys.get(latin1(publicKey), () => subtle.importKey('raw', buffer(publicKey), ALGORITHM, false, ['verify']))
        return await subtle.verify(ALGORITHM, key, buffer(signature), buffer(message))
      } catch {
        return false
      }
    },
  }
}

/** Ed25519 in pure JS (@noble/curves), for runtimes whose WebCrypto lacks it. */
async function noble(): Promise<Ed25519> {
  const { ed25519 } = await import('@noble/curves/ed25519')
  return {
    async signer(secretKey) {
      checkSecretKey(secretKey)
      const secret = secretKey.slice()
      return { publicKey: ed25519.getPublicKey(secret), sign: async (message) => ed25519.sign(message, secret) }
    },
    async verify(publicKey, message, signature) {
      if (!wellFormed(publicKey, signature)) return false
      try {
        return ed25519.verify(signature, message, publicKey, { zip215: false })
      } catch {
        return false
      }
    },
  }
}

function fromBase64Url(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

/** Whether `subtle` signs and verifies Ed25519 (a runtime without it throws NotSupportedError). */
async function hasEd25519(subtle: SubtleCrypto | undefined): Promise<boolean> {
  if (subtle === undefined) return false
  try {
    await subtle.importKey('pkcs8', buffer(pkcs8(new Uint8Array(SECRET_KEY_BYTES))), { name: 'Ed25519' }, false, ['sign'])
    return true
  } catch {
    return false
  }
}

let chosen: Promise<Ed25519> | undefined

/** The runtime's WebCrypto Ed25519 where it has one, else the pure-JS one; chosen once. */
function pick(): Promise<Ed25519> {
  return (chosen ??= (async () => {
    const subtle = globalThis.crypto?.subtle
    return (await hasEd25519(subtle)) ? webCrypto(subtle!) : noble()
  })())
}

/** The default Ed25519: WebCrypto, or @noble/curves where WebCrypto has no Ed25519. */
export const defaultEd25519: Ed25519 = {
  signer: async (secretKey) => (await pick()).signer(secretKey),
  verify: async (publicKey, message, signature) => (await pick()).verify(publicKey, message, signature),
}

/** The pure-JS Ed25519 alone (tests check it agrees with WebCrypto). */
export const nobleEd25519: Ed25519 = {
  signer: async (secretKey) => (await noble()).signer(secretKey),
  verify: async (publicKey, message, signature) => (await noble()).verify(publicKey, message, signature),
}

/** WebCrypto's Ed25519 alone; rejects NOT_SUPPORTED where the runtime lacks it. */
export async function webCryptoEd25519(): Promise<Ed25519> {
  const subtle = globalThis.crypto?.subtle
  if (!(await hasEd25519(subtle))) throw new HyperEmitterError(ErrorCodes.NOT_SUPPORTED, 'this runtime has no WebCrypto Ed25519')
  return webCrypto(subtle!)
}
