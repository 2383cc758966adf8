/**
 * Verifying nodes received from peers before anything of them is stored:
 * decoded into canonical form and hashed in the caller's turn, then checked
 * against the log and the batch so far (seq order, forks, every link held).
 */
import { equalBytes, toHex } from '../bytes/bytes.js'
import type { Slab } from '../bytes/slab.js'
import { decodeCanonicalNode, decodeNode, encodedNodeSize, isCanonical, writeNode } from '../codec/node.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { HashFn, Refusal } from '../types.js'
import type { PendingBatch } from './batch.js'
import type { Chunk } from './chunk.js'
import { KeySet, LazyKeySet } from './keyset.js'
import type { AddRequest, Incoming } from './requests.js'
import { HELD, type LogState, UNKNOWN } from './state.js'
import type { ChunkStore } from './store.js'

/** The writer of the node prepared last, with its hex: runs of one writer are the norm. */
export interface LastWriter {
  bytes: Uint8Array
  hex: string
}

/**
 * Decodes and hashes raw node `index` of a request, on a copy from `slab`
 * unless the caller hands the array over (`owned`). Throws INVALID_NODE.
 */
export function prepareIncoming(raw: Uint8Array, index: number, lastWriter: LastWriter, owned: boolean, slab: Slab, hash: HashFn): Incoming {
  if (!(raw instanceof Uint8Array)) throw new HyperEmitterError(ErrorCodes.INVALID_NODE, `node ${index} is not a Uint8Array`, { details: { index } })
  // A private copy: a caller reusing its buffer cannot change a node after
  // it was hashed, nor the links it is checked by.
  let bytes = raw
  if (!owned) {
    bytes = slab.alloc(raw.length)
    bytes.set(raw)
  }
  // The canonical form is what is hashed and stored, so another encoding of
  // the same content can never become a second node. Nodes mostly arrive
  // canonical (the fast path); others are decoded in full and re-encoded
  // (and decoded again, for views into it).
  let node = decodeCanonicalNode(bytes, lastWriter.bytes)
  if (node === undefined) {
    try {
      node = decodeNode(bytes)
    } catch (err) {
      const e = err as HyperEmitterError
      throw new HyperEmitterError(ErrorCodes.INVALID_NODE, `${e.message} (node ${index})`, { cause: err, details: { ...e.details, index } })
    }
    if (!isCanonical(bytes, node)) {
      bytes = slab.alloc(encodedNodeSize(node))
      writeNode(bytes, 0, node)
      node = decodeNode(bytes)
    }
  }
  if (!equalBytes(node.writer, lastWriter.bytes)) {
    lastWriter.bytes = node.writer
    lastWriter.hex = toHex(node.writer)
  }
  return { key: hash(bytes), bytes, writer: node.writer, writerHex: lastWriter.hex, seq: node.seq, links: node.links, value: node.value }
}

/** Checks foreign requests against the committed state plus the batch they join. */
export class Verifier {
  constructor(
    private readonly state: LogState,
    private readonly store: ChunkStore,
  ) {}

  /**
   * Resolves to the nodes of `req` to store (duplicates dropped) or rejects
   * with the coded reason: SEQ_MISMATCH, MISSING_LINK or STORAGE_FAILED.
   */
  async verify(req: AddRequest, batch: PendingBatch): Promise<Incoming[]> {
    // Started when the request came (see checkSignatures): nothing unsigned goes further.
    await req.signed.verified
    const lookup = this.keysOnlyTheDbKnows(req.nodes, batch)
    const inDb = lookup === undefined ? undefined : await lookupKeys(this.state, this.store, lookup)
    if (req.onRefused === undefined) return this.acceptable(req.nodes, batch, inDb)
    return this.acceptableByWriter(req.nodes, batch, inDb, req.signed.failed, req.onRefused)
  }

  /** A writer's seq as of the batch so far. */
  private clockAt(batch: PendingBatch, hex: string): number {
    if (hex === this.state.writerHex) return batch.ownSeq
    return batch.touched?.get(hex)?.seq ?? this.state.clock.get(hex) ?? 0
  }

  /**
   * Most links name the node just before (a writer's chain) or a head; only
   * the rest need a set, and only keys neither in memory nor in this batch
   * need the db.
   */
  private nearby(nodes: Incoming[], index: number, key: Uint8Array, batch: PendingBatch): boolean {
    return (index > 0 && equalBytes(key, nodes[index - 1].key)) || includesKey(batch.heads, key) || batch.hasKey(key)
  }

  /** Pass 1: the keys only the db can settle (links, and possible duplicates). */
  private keysOnlyTheDbKnows(nodes: Incoming[], batch: PendingBatch): Uint8Array[] | undefined {
    const state = this.state
    let lookup: Uint8Array[] | undefined
    let inRequest: KeySet | undefined
    let clockHex = ''
    let clock = 0
    for (let index = 0; index < nodes.length; index++) {
      const n = nodes[index]
      if (n.writerHex !== clockHex) {
        clockHex = n.writerHex
        clock = this.clockAt(batch, clockHex)
      }
      if (n.seq <= clock && !batch.hasKey(n.key) && state.locate(n.key) === UNKNOWN) (lookup ??= []).push(n.key)
      for (let l = 0; l < n.links.length; l++) {
        const link = n.links[l]
        if (this.nearby(nodes, index, link, batch) || state.locate(link) !== UNKNOWN) continue
        if (inRequest === undefined) {
          inRequest = new KeySet()
          for (const m of nodes) inRequest.add(m.key)
        }
        if (!inRequest.has(link)) (lookup ??= []).push(link)
      }
    }
    return lookup
  }

  /** Pass 2: in order, as if each node were stored right after the previous. */
  private acceptable(nodes: Incoming[], batch: PendingBatch, inDb: KeySet | undefined): Incoming[] {
    const state = this.state
    const held = new LazyKeySet()
    const isHeld = (key: Uint8Array, index: number): boolean =>
      this.nearby(nodes, index, key, batch) || held.has(key) || state.locate(key) === HELD || (inDb !== undefined && inDb.has(key))
    const seqs = new Map<string, number>()
    let lastHex = ''
    let lastSeq = 0
    const accepted: Incoming[] = []
    for (let index = 0; index < nodes.length; index++) {
      const n = nodes[index]
      if (n.writerHex !== lastHex) {
        if (lastHex !== '') seqs.set(lastHex, lastSeq)
        lastHex = n.writerHex
        lastSeq = seqs.get(lastHex) ?? this.clockAt(batch, lastHex)
      }
      if (n.seq <= lastSeq) {
        // Held already (a duplicate, skipped) or another node with this seq (a fork).
        if (isHeld(n.key, index)) {
          held.add(n.key)
          continue
        }
        throw seqMismatch(n, index, lastSeq, 'fork')
      }
      // Our own writer's next nodes, signed with our key, are taken too: a
      // copy of this db wrote them (a restored backup catching up).
      if (n.seq !== lastSeq + 1) throw seqMismatch(n, index, lastSeq, 'gap')
      for (let l = 0; l < n.links.length; l++) {
        const link = n.links[l]
        if (!isHeld(link, index)) {
          const hex = toHex(link)
          throw new HyperEmitterError(ErrorCodes.MISSING_LINK, `node ${index} links to ${hex}, which this log does not hold`, {
            details: { index, link: hex },
          })
        }
      }
      held.add(n.key)
      lastSeq = n.seq
      accepted.push(n)
    }
    return accepted
  }

  /** Whether a key is held, as of node `index` (`held`: the request's nodes taken so far, `taken`: by index). */
  private heldCheck(
    nodes: Incoming[],
    taken: Array<Incoming | undefined>,
    batch: PendingBatch,
    inDb: KeySet | undefined,
    held: LazyKeySet,
  ): (key: Uint8Array, index: number) => boolean {
    const state = this.state
    // The node just before, the usual link, counts only if it was taken (it may have been refused).
    return (key, index) =>
      (index > 0 && taken[index - 1] !== undefined && equalBytes(key, nodes[index - 1].key)) ||
      held.has(key) ||
      batch.hasKey(key) ||
      includesKey(batch.heads, key) ||
      state.locate(key) === HELD ||
      (inDb !== undefined && inDb.has(key))
  }

  /**
   * Pass 2, writer by writer: a writer's first node that fails (or that
   * links a refused node) refuses it and all its later nodes of the request,
   * and so do the writers whose signature failed, and every writer whose
   * nodes of the request are not all taken (its signature covers its last
   * node only, which a relay must hold to pass the others on).
   */
  private acceptableByWriter(
    nodes: Incoming[],
    batch: PendingBatch,
    inDb: KeySet | undefined,
    failed: Map<string, HyperEmitterError> | undefined,
    onRefused: (refusal: Refusal) => void,
  ): Incoming[] {
    const held = new LazyKeySet()
    const taken: Array<Incoming | undefined> = []
    const isHeld = this.heldCheck(nodes, taken, batch, inDb, held)
    const refused = new Map<string, Refusal>()
    const refuse = (n: Incoming, error: HyperEmitterError): void => {
      if (!refused.has(n.writerHex)) refused.set(n.writerHex, { writer: n.writer, writerHex: n.writerHex, seq: n.seq, error })
    }
    // Each writer's seq so far; the current run's in locals (frames carry runs of one writer).
    const seqs = new Map<string, number>()
    let runHex = ''
    let seq = 0
    for (let index = 0; index < nodes.length; index++) {
      const n = nodes[index]
      taken.push(undefined)
      if (n.writerHex !== runHex) {
        if (runHex !== '') seqs.set(runHex, seq)
        runHex = n.writerHex
        seq = seqs.get(runHex) ?? this.clockAt(batch, runHex)
      }
      if (refused.size > 0 && refused.has(n.writerHex)) continue
      const signatureError = failed !== undefined && failed.size > 0 ? failed.get(n.writerHex) : undefined
      if (signatureError !== undefined) {
        refuse(n, signatureError)
        continue
      }
      if (n.seq <= seq) {
        // Held already (a duplicate, skipped) or another node with this seq (a fork).
        if (isHeld(n.key, index)) held.add(n.key)
        else refuse(n, seqMismatch(n, index, seq, 'fork'))
        continue
      }
      if (n.seq !== seq + 1) {
        refuse(n, seqMismatch(n, index, seq, 'gap'))
        continue
      }
      const missing = n.links.find((link) => !isHeld(link, index))
      if (missing !== undefined) {
        const hex = toHex(missing)
        refuse(n, new HyperEmitterError(ErrorCodes.MISSING_LINK, `node ${index} links to ${hex}, which this log does not hold`, { details: { index, link: hex, writer: n.writerHex, seq: n.seq } }))
        continue
      }
      held.add(n.key)
      seq = n.seq
      taken[index] = n
    }
    if (refused.size > 0) dropRefused(nodes, taken, refused, refuse)
    for (const r of refused.values()) onRefused(r)
    // Duplicates leave holes too, refusals or not.
    return taken.filter((n): n is Incoming => n !== undefined)
  }
}

/**
 * A refused writer's earlier nodes of the request go too (its signature
 * covers its last node only), and with them whatever links a dropped node:
 * repeated until nothing more falls.
 */
function dropRefused(nodes: Incoming[], taken: Array<Incoming | undefined>, refused: Map<string, Refusal>, refuse: (n: Incoming, error: HyperEmitterError) => void): void {
  const dropped = new KeySet()
  for (let changed = true; changed; ) {
    changed = false
    for (let index = 0; index < nodes.length; index++) {
      const n = taken[index]
      if (n === undefined) continue
      const already = refused.get(n.writerHex)
      if (already === undefined && !n.links.some((l) => dropped.has(l))) continue
      // From the lowest seq not stored: nothing of the writer at or above it came in.
      if (already !== undefined) already.seq = Math.min(already.seq, n.seq)
      else refuse(n, new HyperEmitterError(ErrorCodes.MISSING_LINK, `node ${index} links to a node refused in the same request`, { details: { index, writer: n.writerHex, seq: n.seq } }))
      dropped.add(n.key)
      taken[index] = undefined
      changed = true
    }
  }
}

/** Which of `keys` the log holds, confirmed against the stored keys. Rejects STORAGE_FAILED. */
export async function lookupKeys(state: LogState, store: ChunkStore, keys: Uint8Array[]): Promise<KeySet> {
  const found = new KeySet()
  // Candidates in change order, so neighbouring ones share a chunk read.
  const candidates: Array<[change: number, key: Uint8Array]> = []
  for (const key of keys) for (const change of state.index.candidates(key)) candidates.push([change, key])
  candidates.sort((a, b) => a[0] - b[0])
  let chunk: Chunk | undefined
  for (const [change, key] of candidates) {
    if (chunk === undefined || !chunk.has(change)) chunk = await store.chunkAt(change, 'Could not look up links in the db')
    if (equalBytes(chunk.key(change), key)) found.add(key)
  }
  return found
}

function includesKey(keys: Uint8Array[], key: Uint8Array): boolean {
  for (let i = 0; i < keys.length; i++) if (equalBytes(keys[i], key)) return true
  return false
}

function seqMismatch(n: Incoming, index: number, current: number, why: 'fork' | 'gap'): HyperEmitterError {
  const fork = why === 'fork'
  // Signatures are checked first, so a fork here is two nodes its writer signed at one seq.
  const message = fork
    ? `node ${index} forks writer ${n.writerHex}: another node already holds seq ${n.seq}`
    : `node ${index} has seq ${n.seq}, expected ${current + 1} for writer ${n.writerHex}`
  return new HyperEmitterError(ErrorCodes.SEQ_MISMATCH, message, { details: { index, writer: n.writerHex, seq: n.seq, expected: current + 1, fork } })
}
