/**
 * What waits in the commit queue: local appends (values to become this
 * writer's nodes) and foreign adds (received nodes, decoded and hashed).
 */
import { PackedBytes } from '../bytes/packed.js'
import type { WriterKey } from '../identity/writer-key.js'
import type { LogEntry, Refusal } from '../types.js'
import type { HyperEmitterError } from '../errors.js'

/** What checking a request's signatures found: the verifications still running, and writer keys the log learns. */
export interface SignatureCheck {
  verified: Promise<void>
  newKeys: Map<string, { writer: Uint8Array; key: WriterKey }>
  /** Refusing writer by writer (see AddOptions.onRefused): the writers whose signature failed, once `verified` resolved. */
  failed?: Map<string, HyperEmitterError>
}

/**
 * Told the outcome of one appendAll() once, after its batch: lets the
 * emitter settle a whole group of emits without a promise per append.
 */
export interface AppendSink {
  /** All the values are stored; `last` is the entry of the last one. */
  appended(last: LogEntry): void
  failed(err: unknown): void
}

/** A foreign node, decoded, re-encoded canonically and hashed. */
export interface Incoming {
  key: Uint8Array
  bytes: Uint8Array
  writer: Uint8Array
  writerHex: string
  seq: number
  links: Uint8Array[]
  value: Uint8Array
  /** Its writer's signature, when this node is the one its writer signed in the request. */
  signature?: Uint8Array
}

export const APPEND = 0
export const ADD = 1
export const RUN = 2

/** The values of an append request: an array, or values packed one after another (the emitter's). */
export type Values = Uint8Array[] | PackedBytes

/** The array value `index` lies in, valueSize() bytes from valueStart(). */
export function valueSource(values: Values, index: number): Uint8Array {
  return values instanceof PackedBytes ? values.buffer : values[index]
}

export function valueStart(values: Values, index: number): number {
  return values instanceof PackedBytes ? values.startAt(index) : 0
}

export function valueSize(values: Values, index: number): number {
  return values instanceof PackedBytes ? values.sizeAt(index) : values[index].length
}

export interface AppendRequest {
  kind: typeof APPEND
  size: number
  values: Values
  sink: AppendSink
  result: LogEntry | undefined
}

export interface AddRequest {
  kind: typeof ADD
  size: number
  nodes: Incoming[]
  origin: unknown
  /** The request's signatures being verified, and the writer keys it brings. */
  signed: SignatureCheck
  single: boolean
  /** Refusing writer by writer (AddOptions.onRefused); undefined: all or nothing. */
  onRefused: ((refusal: Refusal) => void) | undefined
  resolve: (result: any) => void
  reject: (err: unknown) => void
  result: LogEntry[] | undefined
  failed: boolean
}

/** Work on the db that no batch may interleave with (healing a fork): runs alone, between batches. */
export interface RunRequest {
  kind: typeof RUN
  size: number
  run: () => Promise<unknown>
  resolve: (result: any) => void
  reject: (err: unknown) => void
}

export type Request = AppendRequest | AddRequest | RunRequest

export function rejectRequest(r: Request, err: unknown): void {
  if (r.kind === APPEND) r.sink.failed(err)
  else r.reject(err)
}
