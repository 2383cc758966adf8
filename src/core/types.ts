/**
 * Shared shapes between the core modules. The sync layer sees the log only
 * through `SyncableLog` (clock, what-the-peer-lacks, add verified nodes,
 * change notifications).
 */
import type { AbstractLevel } from 'abstract-level'
import type { LiteDb } from './db/lite.js'

/** Any abstract-level database (memory-level, classic-level, browser-level, ...). */
export type Db = AbstractLevel<any, any, any>

/**
 * What an emitter takes as its db: any abstract-level database, or one of the
 * core's own (core/db/: the browser entry's `indexedDb()` and memory dbs),
 * which have the part of abstract-level's API the emitter uses.
 */
export type DbInput = Db | LiteDb

import type { WriterKey } from './identity/writer-key.js'
import type { HyperEmitterError } from './errors.js'

/** A synchronous hash: SHA-256 of `data`, as a new 32-byte array (the log keeps it as the node's key). */
export type HashFn = (data: Uint8Array) => Uint8Array

/** One node of the log, as stored, with its position in local change order. */
export interface LogEntry {
  /** 32-byte SHA-256 of `bytes`. */
  key: Uint8Array
  /** 16-byte writer id. */
  writer: Uint8Array
  /** 1-based per writer. */
  seq: number
  /** Keys of the nodes this one links to (the writer's heads at append time). */
  links: Uint8Array[]
  /** The encoded Event envelope. */
  value: Uint8Array
  /** The canonical Node encoding (what is hashed, stored and sent). */
  bytes: Uint8Array
  /** Local change number: 1-based, increasing in the order nodes were stored here. */
  change: number
  /**
   * Set on a received node its writer signed (the last of its writer in the
   * frame it came in), once known: a sender passes it on with the node.
   */
  signature?: Uint8Array
}

/** Who wrote an event, as verified: its writer id and the Ed25519 public key its signatures were checked with (hex). */
export interface Author {
  writer: string
  publicKey: string
}

/** One writer's signature over the key of its last node in a request (see log/signatures.ts). */
export interface NodeSignature {
  /** The writer id (16 bytes). */
  writer: Uint8Array
  /** 64 bytes, Ed25519, over nodeMessage(key of the writer's last node). */
  signature: Uint8Array
  /** The writer's key and chain, unless the log knows them already. */
  key?: WriterKey
}

/** writer id (lowercase hex) -> highest seq held. */
export type Clock = Map<string, number>

/**
 * Called after each committed batch with its entries in change order.
 * `origin` is whatever the caller of `add`/`addMany` passed (the sync layer
 * passes its session so it can avoid echoing nodes back); undefined for local
 * appends.
 */
export type ChangeListener = (entries: LogEntry[], origin: unknown) => void

export interface ReadOptions {
  /** Return entries with change number > since (default 0: from the start). */
  since?: number
  /** Keep waiting for new entries after reaching the end (default false). */
  live?: boolean
  /** At most this many entries. */
  limit?: number
}

export interface AddOptions {
  /**
   * The caller hands the node arrays over and never writes to them again
   * (a transport's private copy of a frame, say): the log keeps them as they
   * are instead of copying each first. Default false.
   */
  owned?: boolean
  /**
   * One signature per writer with nodes in the request, over its last node
   * there (see NodeSignature); a node none covers is refused, BAD_SIGNATURE.
   */
  signatures?: readonly NodeSignature[]
  /**
   * Refuse writer by writer instead of all or nothing: a writer whose
   * signature fails, or whose node forks, leaves a gap or links a node not
   * held, has its nodes of the request from that one on refused (none
   * stored; nodes of others linking them are refused too) and is told here,
   * once per writer, before the promise resolves with what was stored.
   * Undecodable nodes still reject the whole request (INVALID_NODE).
   */
  onRefused?: (refusal: Refusal) => void
}

/**
 * A writer's nodes a log refused, from `seq` on: none of the request's nodes
 * of the writer at or above it were stored (held duplicates below it were
 * skipped); `error.details.seq` names the node that failed.
 */
export interface Refusal {
  writer: Uint8Array
  writerHex: string
  seq: number
  /** BAD_SIGNATURE, SEQ_MISMATCH (details.fork: true for a fork) or MISSING_LINK. */
  error: HyperEmitterError
}

/** The narrow view of the log the sync layer uses. */
export interface SyncableLog {
  /** This log's own writer id (16 bytes). */
  readonly writer: Uint8Array
  /** The public key and chain the writer id is bound to. */
  readonly writerKey: WriterKey
  /** Signs `message` with this log's writer key. */
  sign(message: Uint8Array): Promise<Uint8Array>
  /** Whether `signature` is `publicKey`'s over `message`. */
  verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>
  /** Highest change number stored (0 when empty). */
  readonly length: number
  /** A snapshot copy of the clock. */
  clock(): Clock
  /**
   * The entries a peer holding `remote` lacks, in local change order, a page
   * (a non-empty array of entries) at a time. Cost grows with the number of
   * missing entries, not with the log's size.
   */
  readMissingPages(remote: Clock): AsyncIterable<LogEntry[]>
  /**
   * Verify and store nodes received from elsewhere (canonical Node bytes), in
   * one atomic batch with whatever else is queued. Resolves to the entries
   * actually stored (duplicates already held are skipped, not errors).
   * Rejects with INVALID_NODE, BAD_SIGNATURE, MISSING_LINK or
   * SEQ_MISMATCH, and then stores none of `nodes`.
   */
  addMany(nodes: Uint8Array[], origin?: unknown, options?: AddOptions): Promise<LogEntry[]>
  /**
   * Signatures for a run of entries about to be sent: per writer, over its
   * last entry there (this log's own signed now, others' as stored), with
   * the writer's key where `withKey(writerHex)`.
   */
  signaturesFor(entries: readonly LogEntry[], withKey?: (writerHex: string) => boolean): Promise<NodeSignature[]>
  /** Subscribe to committed batches; returns an unsubscribe function. */
  onChange(listener: ChangeListener): () => void
  /** The key of a writer's node at its clock seq, where known (what a Clock's tips say). */
  tipOf?(writerHex: string): Uint8Array | undefined
  /** The key of `writer`'s node at `seq`, if held. */
  keyAt?(writer: Uint8Array, seq: number): Promise<Uint8Array | undefined>
  /** Moves this log's own nodes from `fromSeq` to a fresh chain (a fork of its writer healed; see Log.rechain). */
  rechain?(fromSeq: number): Promise<{ from: Uint8Array; to: Uint8Array; fromSeq: number; moved: number } | undefined>
}
