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
import { decodeNode, encodeNode } from '../../src/core/codec/node.js'
import { encodeSignature, identityFrame, nodesFrame, type WireSignature } from '../../src/sync/protocol.js'
import type { Log } from '../../src/core/log/log.js'
import type { NodeSignature } from '../../src/core/types.js'

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
  // Over the canonical encoding, as the log hashes it (a test may send another).
  let canonical = bytes
  try {
    canonical = encodeNode(decodeNode(bytes))
  } catch {
    // Garbage: signed as it is.
  }
  return { writer: writer.writer, signature: await writer.sign(nodeMessage(sha256(canonical))), key: writer.writerKey }
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

/** Writers whose signatures tests may ask for, by writer hex. */
const signers = new Map<string, Signing>()

/** Lets signaturesFor() sign for `writer`. */
export function registerSigner(writer: Signing): void {
  signers.set(toHex(writer.writer), writer)
}

/** Writers made ahead, so a test can take one synchronously (see poolWriter()). */
const pool: Signing[] = []

/** Fills the pool with `n` registered writers (call in beforeAll). */
export async function fillWriterPool(n: number): Promise<void> {
  while (pool.length < n) {
    const w = await testWriter()
    registerSigner(w)
    pool.push(w)
  }
}

/** A registered writer's id, from the pool. */
export function poolWriter(): Uint8Array {
  const w = pool.pop()
  if (w === undefined) throw new Error('the test writer pool is empty: fillWriterPool() more')
  return w.writer
}

/** Per writer of `nodes`, a signature over its last node, by every registered writer: what a sending session attaches. */
export async function signaturesFor(nodes: readonly Uint8Array[]): Promise<NodeSignature[]> {
  const last = new Map<string, Uint8Array>()
  for (const bytes of nodes) {
    try {
      last.set(toHex(decodeNode(bytes).writer), bytes)
    } catch {
      // Garbage has no writer: the log refuses it on its own.
    }
  }
  const out: NodeSignature[] = []
  for (const [hex, bytes] of last) {
    const writer = signers.get(hex)
    if (writer) out.push(await signatureOver(writer, bytes))
  }
  return out
}

/**
 * For tests of the log's DAG rules: `log` (registered as a signer once
 * open) signs what its add()/addMany() are given with the registered
 * writers, as a sending session would, unless the caller passes signatures.
 */
export function signingAdds<L extends Log>(log: L): L {
  const addMany = log.addMany.bind(log)
  log.addMany = async (nodes, origin, options) => {
    if (options?.signatures !== undefined || !Array.isArray(nodes)) return addMany(nodes, origin, options)
    return addMany(nodes, origin, { ...options, signatures: await signaturesFor(nodes) })
  }
  log.add = async (bytes, origin) => {
    if (!(bytes instanceof Uint8Array)) return addMany([bytes], origin).then(() => null)
    const [entry] = await log.addMany([bytes], origin)
    return entry ?? null
  }
  const open = log.open.bind(log)
  log.open = async () => {
    await open()
    registerSigner(log)
  }
  return log
}
