import type * as http from 'node:http'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'

/**
 * Which web pages may open a WebSocket to the hub, by their `Origin` header:
 * '*' any; 'same-origin' only pages the hub itself serves (Origin's host is
 * the request's Host); a list of origins ("https://app.example"); or a
 * predicate. Clients that send no Origin (Node, native apps) are not web
 * pages and are always let through: authenticate them with `authenticate`.
 */
export type OriginPolicy = '*' | 'same-origin' | readonly string[] | ((origin: string, request: http.IncomingMessage) => boolean)

/** Throws INVALID_ARGUMENT for a policy of the wrong shape. */
export function checkOriginPolicy(policy: unknown): asserts policy is OriginPolicy | undefined {
  if (policy === undefined || policy === '*' || policy === 'same-origin' || typeof policy === 'function') return
  if (Array.isArray(policy) && policy.every((o) => typeof o === 'string')) return
  throw new HyperEmitterError(
    ErrorCodes.INVALID_ARGUMENT,
    "allowedOrigins must be '*', 'same-origin', an array of origins or a function",
    { details: { option: 'allowedOrigins' } },
  )
}

/** Whether `request`'s Origin passes `policy`; a predicate that throws refuses. */
export function originAllowed(policy: OriginPolicy, request: http.IncomingMessage): boolean {
  const origin = request.headers.origin
  if (origin === undefined || policy === '*') return true
  if (policy === 'same-origin') return hostOf(origin) === request.headers.host?.toLowerCase()
  if (typeof policy === 'function') {
    try {
      return policy(origin, request) === true
    } catch {
      return false
    }
  }
  const normalized = origin.toLowerCase()
  return policy.some((allowed) => allowed.toLowerCase().replace(/\/$/, '') === normalized)
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host.toLowerCase()
  } catch {
    return undefined
  }
}
