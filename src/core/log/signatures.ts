/**
 * Signatures of received nodes: which signature covers which node, and
 * where writers' keys and signatures are kept so they can be passed on.
 *
 * A writer signs the key of a node; a node's key covers its links, so the
 * signature vouches for every node of that writer in the signed node's past.
 * A request (one received frame) carries one signature per writer, over
 * that writer's last node in it; every other node of the writer there must
 * be in that node's past. One verification per writer per frame.
 *
 * Records, in the log's sublevel:
 *   p + writer(16)   -> chain(16) || public key(32)   each writer the log holds nodes of
 *   s + change(8 BE) -> signature(64)                  a received node its writer signed
 */
import { equalBytes, readUint64BE, toHex } from '../bytes/bytes.js'
import { ErrorCodes, HyperEmitterError, isHyperEmitterError } from '../errors.js'
import { type Ed25519, PUBLIC_KEY_BYTES, SIGNATURE_BYTES } from '../identity/ed25519.js'
import { CHAIN_BYTES, isBound, nodeMessage, type WriterKey } from '../identity/writer-key.js'
import type { Author, HashFn, LogEntry, NodeSignature } from '../types.js'
import { numberedKey } from './chunk.js'
import { type PutOp, storageFailed, type Sub } from './format.js'
import { KeySet } from './keyset.js'
import type { Incoming, SignatureCheck } from './requests.js'
import { eachRecord } from './store.js'

const P_KEY = 0x70 // 'p'
export const P_SIGNATURE = 0x73 // 's'
const KEYS_START = Uint8Array.of(P_KEY)
const KEYS_END = Uint8Array.of(P_KEY + 1)



/** The keys of the writers a log holds nodes of, by writer hex (one per writer, like the clock). */
export class WriterKeys {
  private readonly keys = new Map<string, WriterKey>()
  private readonly authors = new Map<string, Author>()

  /** The verified author of `hex`'s nodes, one object per writer. */
  author(hex: string): Author | undefined {
    let author = this.authors.get(hex)
    if (author === undefined) {
      const key = this.keys.get(hex)
      if (key === undefined) return undefined
      author = { writer: hex, publicKey: toHex(key.publicKey) }
      this.authors.set(hex, author)
    }
    return author
  }

  get(hex: string): WriterKey | undefined {
    return this.keys.get(hex)
  }

  set(hex: string, key: WriterKey): void {
    this.keys.set(hex, key)
  }

  /** Loads the stored keys (and the log's own). Rejects STORAGE_FAILED for a damaged record. */
  async load(sub: Sub, ownHex: string, own: WriterKey): Promise<void> {
    this.keys.clear()
    await eachRecord(sub, KEYS_START, KEYS_END, (k, v) => {
      if (v.length !== CHAIN_BYTES + PUBLIC_KEY_BYTES) throw storageFailed('A writer key record is damaged', undefined)
      this.keys.set(toHex(k.subarray(1)), { chain: v.slice(0, CHAIN_BYTES), publicKey: v.slice(CHAIN_BYTES) })
    })
    this.keys.set(ownHex, own)
  }

  /** Loads the stored keys of `writers` it lacks (another Log on the db stored them). Rejects STORAGE_FAILED. */
  async loadMissing(sub: Sub, writers: Iterable<Uint8Array>): Promise<void> {
    for (const writer of writers) {
      const hex = toHex(writer)
      if (this.keys.has(hex)) continue
      const v = await sub.get(keyRecordKey(writer))
      if (v !== undefined && v.length === CHAIN_BYTES + PUBLIC_KEY_BYTES) this.keys.set(hex, { chain: v.slice(0, CHAIN_BYTES), publicKey: v.slice(CHAIN_BYTES) })
    }
  }

  /** The record that keeps `key` for `writer`. */
  static op(sub: Sub, writer: Uint8Array, key: WriterKey): PutOp {
    const k = keyRecordKey(writer)
    const v = new Uint8Array(CHAIN_BYTES + PUBLIC_KEY_BYTES)
    v.set(key.chain)
    v.set(key.publicKey, CHAIN_BYTES)
    return { type: 'put', sublevel: sub, key: k, value: v }
  }
}

function keyRecordKey(writer: Uint8Array): Uint8Array {
  const k = new Uint8Array(1 + writer.length)
  k[0] = P_KEY
  k.set(writer, 1)
  return k
}

/** The signature stored for the node at `change`, if any. Rejects STORAGE_FAILED. */
export async function storedSignature(sub: Sub, change: number): Promise<Uint8Array | undefined> {
  try {
    return await sub.get(numberedKey(P_SIGNATURE, change))
  } catch (err) {
    throw storageFailed('Could not read a signature', err)
  }
}

/** The record that keeps the signature of the node stored at `change`. */
export function signatureOp(sub: Sub, change: number, signature: Uint8Array): PutOp {
  return { type: 'put', sublevel: sub, key: numberedKey(P_SIGNATURE, change), value: signature }
}

/** Sets `signature` on each of `entries` (in change order) whose node's signature is stored. Rejects STORAGE_FAILED. */
export async function attachSignatures(sub: Sub, entries: LogEntry[]): Promise<void> {
  if (entries.length === 0) return
  const byChange = new Map<number, LogEntry>()
  for (const e of entries) if (e.signature === undefined) byChange.set(e.change, e)
  if (byChange.size === 0) return
  try {
    const rows = await sub
      .iterator({ gte: numberedKey(P_SIGNATURE, entries[0].change), lte: numberedKey(P_SIGNATURE, entries[entries.length - 1].change) })
      .all()
    for (const [k, v] of rows) {
      const entry = byChange.get(readUint64BE(k, 1))
      if (entry !== undefined) entry.signature = v
    }
  } catch (err) {
    throw storageFailed('Could not read signatures', err)
  }
}

function badSignature(message: string, details: Record<string, unknown>): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.BAD_SIGNATURE, message, { details })
}

/**
 * Checks that one signature per writer covers `nodes` (a request, in
 * order): its key bound to the writer (given, or known in `keys`), every
 * node of the writer in the past of its last one. Marks each signed node's
 * `signature`. Throws BAD_SIGNATURE for what it can tell at once; the
 * returned promise rejects BAD_SIGNATURE for a signature that does not verify.
 * With `perWriter`, never throws or rejects: each failing writer lands in
 * the check's `failed` (its key is not learnt) and the rest go on.
 */
export function checkSignatures(
  nodes: Incoming[],
  signatures: readonly NodeSignature[],
  keys: WriterKeys,
  hash: HashFn,
  ed25519: Ed25519,
  perWriter = false,
): SignatureCheck {
  const last = new Map<string, number>()
  for (let i = 0; i < nodes.length; i++) last.set(nodes[i].writerHex, i)
  const byWriter = new Map<string, NodeSignature>()
  for (const s of signatures) byWriter.set(toHex(s.writer), s)
  const newKeys = new Map<string, { writer: Uint8Array; key: WriterKey }>()
  const checks: Promise<void>[] = []
  if (perWriter) {
    const failed = new Map<string, HyperEmitterError>()
    for (const [hex, tip] of last) {
      const one = new Map([[hex, tip]])
      const started: Promise<void>[] = []
      try {
        checkEach(nodes, one, byWriter, keys, hash, ed25519, newKeys, started)
      } catch (err) {
        failed.set(hex, err as HyperEmitterError)
        newKeys.delete(hex)
        continue
      }
      for (const c of started) {
        checks.push(
          c.catch((err) => {
            failed.set(hex, isHyperEmitterError(err) ? err : badSignature(`the signature of writer ${hex} could not be checked`, { writer: hex }))
            newKeys.delete(hex)
          }),
        )
      }
    }
    return { verified: Promise.all(checks).then(() => {}), newKeys, failed }
  }
  try {
    checkEach(nodes, last, byWriter, keys, hash, ed25519, newKeys, checks)
  } catch (err) {
    // A later writer failed at once: the verifications already started must not reject unhandled.
    for (const c of checks) c.catch(() => {})
    throw err
  }
  const verified = checks.length === 1 ? checks[0] : Promise.all(checks).then(() => {})
  // Awaited by the commit queue; never left to reject unhandled meanwhile.
  verified.catch(() => {})
  return { verified, newKeys }
}

function checkEach(
  nodes: Incoming[],
  last: Map<string, number>,
  byWriter: Map<string, NodeSignature>,
  keys: WriterKeys,
  hash: HashFn,
  ed25519: Ed25519,
  newKeys: Map<string, { writer: Uint8Array; key: WriterKey }>,
  checks: Promise<void>[],
): void {
  for (const [hex, tip] of last) {
    const node = nodes[tip]
    const details = { writer: hex, seq: node.seq, index: tip }
    const s = byWriter.get(hex)
    if (s === undefined || !(s.signature instanceof Uint8Array) || s.signature.length !== SIGNATURE_BYTES) {
      throw badSignature(`no signature of writer ${hex} covers node ${tip} (seq ${node.seq})`, details)
    }
    let key = keys.get(hex)
    if (s.key !== undefined) {
      if (!isBound(hash, s.key, node.writer)) throw badSignature(`the key given for writer ${hex} is not bound to it`, details)
      if (key === undefined) newKeys.set(hex, { writer: node.writer, key: (key = { publicKey: s.key.publicKey.slice(), chain: s.key.chain.slice() }) })
    }
    if (key === undefined) throw badSignature(`no key is known for writer ${hex}`, details)
    checkCoverage(nodes, tip, details)
    node.signature = s.signature
    const publicKey = key.publicKey
    checks.push(
      ed25519.verify(publicKey, nodeMessage(node.key), s.signature).then((valid) => {
        if (!valid) throw badSignature(`the signature of writer ${hex} over node ${tip} (seq ${node.seq}) does not verify`, details)
      }),
    )
  }
}

/** Throws BAD_SIGNATURE unless every node of `nodes[tip]`'s writer before `tip` is in its past. */
function checkCoverage(nodes: Incoming[], tip: number, details: Record<string, unknown>): void {
  const writer = nodes[tip].writerHex
  let uncovered = 0
  for (let i = 0; i < tip; i++) if (nodes[i].writerHex === writer) uncovered++
  if (uncovered === 0) return
  if (chainCovers(nodes, tip, uncovered)) return
  // Walk back from the tip through links within the request.
  const past = new KeySet()
  // The tip itself too: a copy of it earlier in the request is covered.
  past.add(nodes[tip].key)
  for (const link of nodes[tip].links) past.add(link)
  for (let i = tip - 1; i >= 0 && uncovered > 0; i--) {
    const n = nodes[i]
    if (!past.has(n.key)) {
      if (n.writerHex === writer) {
        throw badSignature(`node ${i} (seq ${n.seq}) of writer ${writer} is not covered by its signature`, { ...details, index: i, seq: n.seq })
      }
      continue
    }
    if (n.writerHex === writer) uncovered--
    for (const link of n.links) past.add(link)
  }
}

/**
 * The usual frame: the writer's nodes before `tip` end in a chain where each
 * is linked by the one after it (the next node, or the tip), all of them the
 * same writer's. Then each is in the tip's past with no key set at all; any
 * other shape returns false and goes the general way.
 */
function chainCovers(nodes: Incoming[], tip: number, uncovered: number): boolean {
  let later = nodes[tip]
  for (let i = tip - 1; i >= 0 && uncovered > 0; i--) {
    const n = nodes[i]
    if (n.writerHex !== later.writerHex || !linksTo(later.links, n.key)) return false
    uncovered--
    later = n
  }
  return uncovered === 0
}

function linksTo(links: Uint8Array[], key: Uint8Array): boolean {
  for (let i = 0; i < links.length; i++) if (equalBytes(links[i], key)) return true
  return false
}
