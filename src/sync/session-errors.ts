/**
 * The errors a sync session closes with: protocol violations, a refused or
 * failed store, and anything else thrown inside it, each with a stable code.
 */
import { ErrorCodes, HyperEmitterError, isHyperEmitterError, type ErrorCode } from '../core/errors.js'

/** Codes the log raises for a bad node: the peer is told, and the session ends with them. */
const NODE_ERROR_CODES: ReadonlySet<ErrorCode> = new Set([
  ErrorCodes.INVALID_NODE,
  ErrorCodes.CHECKSUM_MISMATCH,
  ErrorCodes.MISSING_LINK,
  ErrorCodes.SEQ_MISMATCH,
])

export function protocolError(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, message)
}

/** A rejection from addMany as the session's own error (never the log's object itself). */
export function storeError(err: unknown): HyperEmitterError {
  if (isHyperEmitterError(err)) {
    const what = NODE_ERROR_CODES.has(err.code) ? 'refused a node from the peer' : 'failed to store nodes'
    return new HyperEmitterError(err.code, `${what}: ${err.message}`, { cause: err, details: err.details })
  }
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `failed to store nodes: ${String(err)}`, { cause: err })
}

export function asSessionError(err: unknown): HyperEmitterError {
  if (isHyperEmitterError(err)) return err
  return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `session failed: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  })
}
