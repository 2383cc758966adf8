/**
 * The NDJSON mapping of events, one `{"name": …, "payload": {…}}` per line.
 *
 * Out (what `hypem --no-repl` writes), on top of plain JSON:
 * - bytes            -> base64 string (standard alphabet, padded)
 * - 64-bit integers  -> decimal string (they are bigint in memory)
 * - NaN, ±Infinity   -> "NaN", "Infinity", "-Infinity" (float/double fields)
 * - enums            -> their number; maps -> objects; unset sub-messages are absent
 * - a payload with no codec (an event name the schema lacks) -> base64 string
 * In (what it reads on stdin): the same, so its output can be piped back in;
 * also 64-bit integers as JSON numbers, enums by name, bytes in URL-safe or
 * unpadded base64, and fields by their .proto or camelCase names.
 */
import { ScalarType, type DescField, type DescMessage } from '@bufbuild/protobuf'
import { ErrorCodes, HyperEmitterError } from '../../core/errors.js'

export interface JsonEvent {
  name: string
  payload: unknown
}

/** One NDJSON line (no newline) for an event. */
export function eventToJson(name: string, payload: unknown): string {
  return JSON.stringify({ name, payload }, replacer)
}

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // `this[key]` is the value before toJSON (a Buffer would already be { type, data }).
  const raw = this[key]
  if (raw instanceof Uint8Array) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64')
  if (typeof value === 'bigint') return value.toString()
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  return value
}

/**
 * Parse one NDJSON line into an event for emit(), mapping JSON values to
 * the schema's types with `descOf(name)`. Throws INVALID_ARGUMENT (not JSON,
 * not `{ name, payload }`) or INVALID_FIELD (bad base64, bad float string).
 */
export function eventFromJson(line: string, descOf: (name: string) => DescMessage | undefined): JsonEvent {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (err) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `not JSON: ${(err as Error).message}`)
  }
  if (!isObject(value) || typeof value.name !== 'string' || value.name === '') {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'expected {"name": "<event>", "payload": {...}}')
  }
  const name = value.name
  const payload = value.payload === undefined ? {} : value.payload
  const desc = descOf(name)
  if (desc === undefined) {
    // No codec: the payload must be bytes, given as base64.
    return { name, payload: typeof payload === 'string' ? decodeBase64(payload, 'payload') : payload }
  }
  return { name, payload: isObject(payload) ? messageFromJson(desc, payload, 0) : payload }
}

/** Nesting past this is left to the encoder, which refuses it. */
const MAX_DEPTH = 100

function messageFromJson(desc: DescMessage, obj: Record<string, unknown>, depth: number): Record<string, unknown> {
  if (depth > MAX_DEPTH) return obj
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(obj)) {
    const field = desc.fields.find((f) => f.name === key || f.localName === key)
    const v = obj[key]
    // Unknown keys go through unchanged: the encoder names them (UNKNOWN_FIELD).
    const mapped = field === undefined || v === null ? v : fieldFromJson(field, v, depth)
    Object.defineProperty(out, key, { value: mapped, enumerable: true, writable: true, configurable: true })
  }
  return out
}

function fieldFromJson(field: DescField, v: unknown, depth: number): unknown {
  switch (field.fieldKind) {
    case 'scalar':
      return scalarFromJson(field.scalar, v, field.name)
    case 'message':
      return isObject(v) ? messageFromJson(field.message, v, depth + 1) : v
    case 'list':
      if (!Array.isArray(v)) return v
      if (field.listKind === 'scalar') return v.map((item, i) => scalarFromJson(field.scalar, item, `${field.name}[${i}]`))
      if (field.listKind === 'message') return v.map((item) => (isObject(item) ? messageFromJson(field.message, item, depth + 1) : item))
      return v
    case 'map': {
      if (!isObject(v)) return v
      const out: Record<string, unknown> = {}
      for (const [k, item] of Object.entries(v)) {
        const mapped =
          field.mapKind === 'scalar'
            ? scalarFromJson(field.scalar, item, `${field.name}[${k}]`)
            : field.mapKind === 'message' && isObject(item)
              ? messageFromJson(field.message, item, depth + 1)
              : item
        Object.defineProperty(out, k, { value: mapped, enumerable: true, writable: true, configurable: true })
      }
      return out
    }
    default:
      return v
  }
}

function scalarFromJson(type: ScalarType, v: unknown, field: string): unknown {
  if (typeof v !== 'string') return v
  if (type === ScalarType.BYTES) return decodeBase64(v, field)
  if (type === ScalarType.DOUBLE || type === ScalarType.FLOAT) {
    if (v === 'NaN') return NaN
    if (v === 'Infinity') return Infinity
    if (v === '-Infinity') return -Infinity
  }
  return v
}

const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/

function decodeBase64(s: string, field: string): Uint8Array {
  if (!BASE64.test(s) || s.replace(/=+$/, '').length % 4 === 1) {
    throw new HyperEmitterError(ErrorCodes.INVALID_FIELD, `field ${field} must be base64 (bytes), got ${JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s)}`, {
      details: { field },
    })
  }
  const b = Buffer.from(s, s.includes('-') || s.includes('_') ? 'base64url' : 'base64')
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
