import { describe, expect, it } from 'vitest'
import { defaultEd25519, type Ed25519, generateSecretKey, nobleEd25519, webCryptoEd25519 } from '../src/core/identity/ed25519.js'
import { handshakeMessage, isBound, nodeMessage, writerIdOf } from '../src/core/identity/writer-key.js'
import { sha256 } from '../src/core/bytes/hash.js'
import { nodeEd25519 } from '../src/node/ed25519.js'
import { ErrorCodes } from '../src/core/errors.js'

// RFC 8032, section 7.1, TEST 2: secret, public key, message, signature.
const RFC = {
  secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
  public: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
  message: '72',
  signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
}
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'))

const implementations: Array<[string, () => Promise<Ed25519>]> = [
  ['webcrypto', webCryptoEd25519],
  ['noble', async () => nobleEd25519],
  ['node:crypto', async () => nodeEd25519],
  ['default', async () => defaultEd25519],
]

describe.each(implementations)('Ed25519 %s', (_, make) => {
  it('signs and verifies the RFC 8032 test vector', async () => {
    const ed = await make()
    const signer = await ed.signer(hex(RFC.secret))
    expect(Buffer.from(signer.publicKey).toString('hex')).toBe(RFC.public)
    const signature = await signer.sign(hex(RFC.message))
    expect(Buffer.from(signature).toString('hex')).toBe(RFC.signature)
    expect(await ed.verify(hex(RFC.public), hex(RFC.message), signature)).toBe(true)
  })

  it('refuses another message, another key, a flipped bit and malformed input without throwing', async () => {
    const ed = await make()
    const signer = await ed.signer(generateSecretKey())
    const other = await ed.signer(generateSecretKey())
    const message = nodeMessage(new Uint8Array(32).fill(7))
    const signature = await signer.sign(message)
    expect(await ed.verify(signer.publicKey, message, signature)).toBe(true)
    expect(await ed.verify(signer.publicKey, nodeMessage(new Uint8Array(32).fill(8)), signature)).toBe(false)
    expect(await ed.verify(other.publicKey, message, signature)).toBe(false)
    const flipped = signature.slice()
    flipped[10] ^= 1
    expect(await ed.verify(signer.publicKey, message, flipped)).toBe(false)
    expect(await ed.verify(signer.publicKey, message, signature.subarray(1))).toBe(false)
    expect(await ed.verify(new Uint8Array(31), message, signature)).toBe(false)
    expect(await ed.verify(new Uint8Array(32), message, signature)).toBe(false)
    // A node signature is no handshake proof, and back.
    expect(await ed.verify(signer.publicKey, handshakeMessage(new Uint8Array(32).fill(7), new Uint8Array(0)), signature)).toBe(false)
  })

  it('refuses a secret key of the wrong size', async () => {
    const ed = await make()
    await expect(ed.signer(new Uint8Array(31))).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT })
  })
})

describe('writer ids', () => {
  it('are bound to a public key and a chain', async () => {
    const signer = await defaultEd25519.signer(generateSecretKey())
    const chain = new Uint8Array(16).fill(1)
    const writer = writerIdOf(sha256, { publicKey: signer.publicKey, chain })
    expect(writer.length).toBe(16)
    expect(isBound(sha256, { publicKey: signer.publicKey, chain }, writer)).toBe(true)
    expect(isBound(sha256, { publicKey: signer.publicKey, chain: new Uint8Array(16) }, writer)).toBe(false)
    expect(isBound(sha256, { publicKey: (await defaultEd25519.signer(generateSecretKey())).publicKey, chain }, writer)).toBe(false)
    expect(isBound(sha256, { publicKey: signer.publicKey.subarray(1), chain }, writer)).toBe(false)
  })
})
