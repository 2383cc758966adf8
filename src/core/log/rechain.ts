/**
 * Healing a fork of this log's own writer: its nodes from a seq on, which
 * the network holds other nodes at (a db copied and run twice), move to a
 * fresh chain, in place. See docs/signatures.md, "Forks".
 *
 * The same key gets a new 16-byte chain, hence a new writer id. Each moved
 * node is rewritten under it (seq renumbered, links to moved nodes renamed,
 * value unchanged) at the change number it had, so listeners, readers and
 * durable consumers, which count changes, see nothing happen to the events
 * they already had. The old writer becomes a foreign one whose chain ends
 * before the fork; the network's branch of it can then come in.
 */
import type { AbstractLevel } from 'abstract-level'
import { compareBytes, readUint64BE, toHex, uint64BE } from '../bytes/bytes.js'
import { encodeNode, KEY_BYTES } from '../codec/node.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { newChain, nodeMessage, type WriterKey, writerIdOf } from '../identity/writer-key.js'
import type { HashFn } from '../types.js'
import { ChunkSequence } from './chunk.js'
import {
  CHUNKS_END,
  clockKey,
  clockRecord,
  encodeHeadsRecord,
  HEADS_KEY,
  KEYS_END,
  KEYS_START,
  META_KEY,
  newMetaRecord,
  numberedKey,
  P_CHUNK,
  type PutOp,
  storageFailed,
  type Sub,
  writerIndexKey,
} from './format.js'
import { changeOfSeq } from './missing.js'
import { P_SIGNATURE, signatureOp, WriterKeys } from './signatures.js'
import type { LogState } from './state.js'
import type { ChunkStore } from './store.js'
import { IDENTITY_KEY } from '../identity/stored-key.js'
import type { Signer } from '../identity/ed25519.js'

type Op = PutOp | { type: 'del'; sublevel: Sub; key: Uint8Array }

/**
 * Old-chain nodes of ours get a stored signature every this many seqs (and
 * at the last): relays end each frame's run of a writer at a signed node.
 */
const SIGN_EVERY = 256

/** What moved: the writer ids before and after, and how many nodes. */
export interface Rechained {
  from: Uint8Array
  to: Uint8Array
  /** The first seq of the old writer that moved (its chain now ends before it). */
  fromSeq: number
  moved: number
}

/**
 * Rewrites `state`'s own nodes from `fromSeq` on under a fresh chain, in one
 * db batch; the caller reloads the state from the db afterwards. Resolves
 * undefined when there is nothing to move, or when another writer's node
 * links one of them (it was published after all: the rewrite would orphan
 * that node), leaving the db as it was. Rejects STORAGE_FAILED.
 */
export async function rechain(db: AbstractLevel<any, any, any>, store: ChunkStore, state: LogState, hash: HashFn, signer: Signer, fromSeq: number): Promise<Rechained | undefined> {
  const own = state.writer
  const ownHex = state.writerHex
  const ownSeq = state.clock.get(ownHex) ?? 0
  if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `fromSeq must be a positive integer, got ${fromSeq}`)
  if (fromSeq > ownSeq || state.identity === undefined) return undefined
  const sub = store.sub
  const forkChange = await changeOfSeq(sub, own, fromSeq)
  if (forkChange === undefined) throw storageFailed(`no run of the writer index holds our seq ${fromSeq}`, undefined)
  const head = await store.chunkAt(forkChange, 'Could not read the chunk a fork starts in')
  const tail = await store.readPage(head.first - 1, state.changes)

  const oldKey = state.identity.key
  const newKey: WriterKey = { publicKey: oldKey.publicKey, chain: newChain() }
  const writer = writerIdOf(hash, newKey)
  const renamed = new Map<string, Uint8Array>()
  const rename = (links: Uint8Array[]): Uint8Array[] => links.map((l) => renamed.get(toHex(l)) ?? l)
  const ops: Op[] = []
  let bytes = 0
  for (const e of tail) bytes += e.bytes.length + 40
  const chunks = new ChunkSequence(bytes, tail.length)
  let seq = 0
  let lastMovedChange = -1
  for (const e of tail) {
    let nodeBytes = e.bytes
    let key = e.key
    if (e.change >= forkChange && e.writer.length === own.length && toHex(e.writer) === ownHex) {
      seq++
      nodeBytes = encodeNode({ writer, seq, links: rename(e.links), value: e.value })
      key = hash(nodeBytes)
      renamed.set(toHex(e.key), key)
      // A signature kept with it (it came back from a copy of this db) was over the old node.
      ops.push({ type: 'del', sublevel: sub, key: numberedKey(P_SIGNATURE, e.change) })
      if (lastMovedChange !== e.change - 1) ops.push({ type: 'put', sublevel: sub, key: writerIndexKey(writer, seq), value: uint64BE(e.change) })
      lastMovedChange = e.change
    } else if (e.change >= forkChange && e.links.some((l) => renamed.has(toHex(l)))) {
      return undefined
    }
    const at = chunks.reserve(nodeBytes.length, e.change)
    chunks.current!.buffer.set(nodeBytes, at)
    chunks.current!.pushKey(key)
  }

  await dropRecordsFrom(sub, numberedKey(P_CHUNK, head.first), CHUNKS_END, ops)
  for (const chunk of chunks.finish()) ops.push({ type: 'put', sublevel: sub, key: numberedKey(P_CHUNK, chunk.first), value: chunk.value() })
  // The old writer's index runs from the fork on, and key checkpoints holding keys that changed.
  await dropRecordsFrom(sub, writerIndexKey(own, fromSeq), writerIndexKey(own, Number.MAX_SAFE_INTEGER), ops)
  await dropCheckpointsFrom(sub, forkChange, ops)

  // The old chain, up to the fork, is now a foreign writer's: its key, its clock and signatures to relay it with.
  ops.push(WriterKeys.op(sub, own, oldKey))
  if (fromSeq > 1) {
    const kept = fromSeq - 1
    let tip: Uint8Array | undefined
    const signed: number[] = []
    for (let s = SIGN_EVERY; s < kept; s += SIGN_EVERY) signed.push(s)
    signed.push(kept)
    for (const s of signed) {
      const change = await changeOfSeq(sub, own, s)
      if (change === undefined) throw storageFailed(`no run of the writer index holds our seq ${s}`, undefined)
      const key = (await store.chunkAt(change, 'Could not read our old chain')).key(change).slice()
      ops.push(signatureOp(sub, change, await signer.sign(nodeMessage(key))))
      tip = key
    }
    ops.push({ type: 'put', sublevel: sub, key: clockKey(own), value: clockRecord(kept, tip!) })
  } else {
    ops.push({ type: 'del', sublevel: sub, key: clockKey(own) })
  }
  const heads = rename(state.heads).sort(compareBytes)
  ops.push({ type: 'put', sublevel: sub, key: HEADS_KEY, value: encodeHeadsRecord(state.changes, seq, heads) })
  const identity = await sub.get(IDENTITY_KEY)
  if (identity === undefined) throw storageFailed("The log's key record is missing", undefined)
  const updated = identity.slice()
  updated.set(newKey.chain, 0)
  ops.push({ type: 'put', sublevel: sub, key: IDENTITY_KEY, value: updated })
  ops.push({ type: 'put', sublevel: sub, key: META_KEY, value: newMetaRecord(writer) })
  try {
    await db.batch(ops as any)
  } catch (err) {
    throw storageFailed('Could not write the moved chain', err)
  }
  return { from: own, to: writer, fromSeq, moved: seq }
}

/** Deletes every record in [gte, lt). */
async function dropRecordsFrom(sub: Sub, gte: Uint8Array, lt: Uint8Array, ops: Op[]): Promise<void> {
  try {
    for (const key of await sub.keys({ gte, lt }).all()) ops.push({ type: 'del', sublevel: sub, key })
  } catch (err) {
    throw storageFailed('Could not list records to rewrite', err)
  }
}

/** Deletes the key checkpoints holding a key of change `from` or later (open reads those chunks' keys instead). */
async function dropCheckpointsFrom(sub: Sub, from: number, ops: Op[]): Promise<void> {
  // From the last one back: they are contiguous, so the first that ends before `from` ends the walk.
  const it = sub.iterator({ gte: KEYS_START, lt: KEYS_END, reverse: true })
  try {
    for (;;) {
      const row = await it.next()
      if (row === undefined) break
      const [key, value] = row
      if (readUint64BE(key, 1) + value.length / KEY_BYTES - 1 < from) break
      ops.push({ type: 'del', sublevel: sub, key })
    }
  } catch (err) {
    throw storageFailed('Could not read the key index', err)
  } finally {
    await it.close().catch(() => {})
  }
}

