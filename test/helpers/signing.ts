/**
 * Signing for tests that speak the protocol by hand: a writer is anything
 * with an id, a key and a sign() (a Log is one), and signedNodes() builds a
 * Nodes frame the way a session does, one signature per writer over its
 * last node in the frame.
 */
import { toHex } from '../../src/core/bytes/bytes.js'
import { sha256 } from '../../src/core/bytes/hash.js'
import { defaultEd25519, generateSecretKey } from '../../src/core/identity/ed25519.js'
import { handshakeMessage, newChain, nodeMessage, type WriterKey, writerIdOf } from '../../src/core/identity/writer-key.js'
import { decodeNode } from '../../src/core/codec/node.js'
import { encodeSignature, identityFrame, nodesFrame, type WireSignature } from '../../src/sync/protocol.js'

export interface Signing {
  readonly writer: Uint8Array
  readonly writerKey: WriterKey
  sign(message: Uint8Array): Promise<Uint8Array>
}

/** A writer with a fresh key and chain, not backed by any log. */
export async function testWriter(secretKey = generateSecretKey(), chain = newChain()): Promise<Signing> {
  const signer = await defaultEd25519.signer(secretKey)
  const writerKey = { publicKey: signer.publicKey, chain }
  return { writer: writerIdOf(sha256, writerKey), writerKey, sign: (m) => signer.sign(m) }
}

/** The Identity frame `as` answers a Handshake carrying `challenge` with. */
export async function identityFor(as: Signing, challenge: Uint8Array, token = ''): Promise<Uint8Array> {
  return identityFrame(as.writerKey, await as.sign(handshakeMessage(challenge, as.writer)), token)
}

/** `writer`'s signature over the node `bytes`. */
export async function signatureOver(writer: Signing, bytes: Uint8Array): Promise<WireSignature> {
  return { writer: writer.writer, signature: await writer.sign(nodeMessage(sha256(bytes))), key: writer.writerKey }
}

/**
 * A Nodes frame of `nodes`, signed by each of `writers` over its last node
 * there; `override` replaces the signatures (for forgeries).
 */
export async function signedNodes(nodes: Uint8Array[], writers: Signing[], override?: WireSignature[]): Promise<Uint8Array> {
  if (override) return nodesFrame(nodes, override.map(encodeSignature))
  const last = new Map<string, Uint8Array>()
  for (const bytes of nodes) {
    try {
      last.set(toHex(decodeNode(bytes).writer), bytes)
    } catch {
      // An undecodable node (a test's garbage) has no writer to sign for.
    }
  }
  const signatures: WireSignature[] = []
  for (const [hex, bytes] of last) {
    const writer = writers.find((w) => toHex(w.writer) === hex)
    if (writer) signatures.push(await signatureOver(writer, bytes))
  }
  return nodesFrame(nodes, signatures.map(encodeSignature))
}
