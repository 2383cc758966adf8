/**
 * Every error hyperemitter raises is a HyperEmitterError with one of these
 * stable codes (documented in the README). Match on `err.code`, never on the
 * message text.
 */
export const ErrorCodes = {
  /** An argument to a public method has the wrong type or value. */
  INVALID_ARGUMENT: 'HYPEREMITTER_INVALID_ARGUMENT',
  /** The emitter (or log) is closed, or closing. */
  CLOSED: 'HYPEREMITTER_CLOSED',
  /** The schema could not be parsed or loaded. */
  INVALID_SCHEMA: 'HYPEREMITTER_INVALID_SCHEMA',
  /** emit() named an event that has no schema message and no codec. */
  UNKNOWN_EVENT: 'HYPEREMITTER_UNKNOWN_EVENT',
  /** A short event name matches messages in several packages. */
  AMBIGUOUS_EVENT: 'HYPEREMITTER_AMBIGUOUS_EVENT',
  /** The message lacks a proto2 `required` field. */
  MISSING_FIELD: 'HYPEREMITTER_MISSING_FIELD',
  /** The message has a property the schema does not define. */
  UNKNOWN_FIELD: 'HYPEREMITTER_UNKNOWN_FIELD',
  /** A field of the message has a value of the wrong type. */
  INVALID_FIELD: 'HYPEREMITTER_INVALID_FIELD',
  /** A codec threw while encoding or decoding. */
  CODEC_FAILED: 'HYPEREMITTER_CODEC_FAILED',
  /** A listener threw or rejected (reported on status 'error'; delivery goes on). */
  LISTENER_FAILED: 'HYPEREMITTER_LISTENER_FAILED',
  /** A node's bytes are not a valid Node encoding. */
  INVALID_NODE: 'HYPEREMITTER_INVALID_NODE',
  /** A node's recomputed hash differs from the key it was given under. */
  CHECKSUM_MISMATCH: 'HYPEREMITTER_CHECKSUM_MISMATCH',
  /** A node links to a node this log does not hold. */
  MISSING_LINK: 'HYPEREMITTER_MISSING_LINK',
  /** A node's seq is not the next one for its writer. */
  SEQ_MISMATCH: 'HYPEREMITTER_SEQ_MISMATCH',
  /** No valid signature of its writer covers a node, or a peer did not prove its key. */
  BAD_SIGNATURE: 'HYPEREMITTER_BAD_SIGNATURE',
  /** The underlying abstract-level database failed. */
  STORAGE_FAILED: 'HYPEREMITTER_STORAGE_FAILED',
  /** A frame is larger than the maxFrameSize option allows. */
  FRAME_TOO_LARGE: 'HYPEREMITTER_FRAME_TOO_LARGE',
  /** emit() was given an event larger than the maxEventSize option allows (no peer could take it). */
  EVENT_TOO_LARGE: 'HYPEREMITTER_EVENT_TOO_LARGE',
  /** A frame could not be decoded or came out of protocol order. */
  PROTOCOL_ERROR: 'HYPEREMITTER_PROTOCOL_ERROR',
  /** The peer speaks another protocol version. */
  VERSION_MISMATCH: 'HYPEREMITTER_VERSION_MISMATCH',
  /** The authenticate hook refused the peer. */
  UNAUTHORIZED: 'HYPEREMITTER_UNAUTHORIZED',
  /** A peer could not be reached or the connection was lost. */
  CONNECTION_FAILED: 'HYPEREMITTER_CONNECTION_FAILED',
  /** A peer stopped answering keep-alives. */
  TIMEOUT: 'HYPEREMITTER_TIMEOUT',
  /** A bounded queue (pending nodes, send buffer) overflowed. */
  LIMIT_EXCEEDED: 'HYPEREMITTER_LIMIT_EXCEEDED',
  /** The operation is not available in this runtime (e.g. listen() in a browser). */
  NOT_SUPPORTED: 'HYPEREMITTER_NOT_SUPPORTED',
} as const

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

export interface HyperEmitterErrorOptions {
  cause?: unknown
  /** Extra machine-readable context (field name, event name, limit...). */
  details?: Record<string, unknown>
}

export class HyperEmitterError extends Error {
  readonly code: ErrorCode
  readonly details?: Record<string, unknown>

  constructor(code: ErrorCode, message: string, options: HyperEmitterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'HyperEmitterError'
    this.code = code
    if (options.details) this.details = options.details
  }
}

/** True when `err` is a HyperEmitterError (optionally with the given code). */
export function isHyperEmitterError(err: unknown, code?: ErrorCode): err is HyperEmitterError {
  return err instanceof HyperEmitterError && (code === undefined || err.code === code)
}
