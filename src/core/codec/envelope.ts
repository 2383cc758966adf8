/**
 * The envelope every log value is: an event's name and its payload bytes,
 * encoded by hand on every emit and decoded on every delivery.
 */
import { copyBytes, view } from '../bytes/bytes.js'
import type { PackedBytes } from '../bytes/packed.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { VarintReader, varintLength, writeVarint } from '../bytes/varint.js'

/**
 * The Event envelope (proto `hyperemitter.v1.Event { string name = 1; bytes
 * payload = 2; }`) is encoded on every emit and decoded on every delivery, so
 * it is written by hand here: byte-identical to protobuf-es's toBinary (a
 * test checks that) without its reflection cost on the hot path.
 */
export interface EventEnvelope {
  name: string
  payload: Uint8Array
}

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

// Event names repeat endlessly: cache their UTF-8 bytes (bounded).
const nameCache = new Map<string, Uint8Array>()
const NAME_CACHE_LIMIT = 1024

function nameBytes(name: string): Uint8Array {
  let bytes = nameCache.get(name)
  if (bytes === undefined) {
    bytes = utf8Encoder.encode(name)
    if (nameCache.size >= NAME_CACHE_LIMIT) nameCache.clear()
    nameCache.set(name, bytes)
  }
  return bytes
}

/** Bytes the envelope of a `nameLength`-byte name and a `payloadLength`-byte payload takes. */
/** Bytes of the envelope of a `name` event with a payload of `payloadLength` bytes. */
export function envelopeSizeOf(name: string, payloadLength: number): number {
  return envelopeSize(nameBytes(name).length, payloadLength)
}

function envelopeSize(nameLength: number, payloadLength: number): number {
  let size = 0
  if (nameLength > 0) size += 1 + varintLength(nameLength) + nameLength
  if (payloadLength > 0) size += 1 + varintLength(payloadLength) + payloadLength
  return size
}

/** Writes the envelope of the first `length` bytes of `payload` at `pos` of `out` (sized by envelopeSize). */
function writeEnvelope(out: Uint8Array, pos: number, nb: Uint8Array, payload: Uint8Array, length: number): void {
  if (nb.length > 0) {
    out[pos++] = 0x0a
    pos = writeVarint(out, pos, nb.length)
    copyBytes(out, pos, nb, 0, nb.length)
    pos += nb.length
  }
  if (length > 0) {
    out[pos++] = 0x12
    pos = writeVarint(out, pos, length)
    copyBytes(out, pos, payload, 0, length)
  }
}

/** Encode an Event envelope (proto3: empty fields are omitted, as protobuf-es does). */
export function encodeEnvelope(name: string, payload: Uint8Array): Uint8Array {
  const nb = nameBytes(name)
  const out = new Uint8Array(envelopeSize(nb.length, payload.length))
  writeEnvelope(out, 0, nb, payload, payload.length)
  return out
}

/**
 * Encodes the envelope of `name` and the first `length` bytes of `payload`
 * as the next value of `list` (copied: the payload's buffer may be reused at once).
 */
export function addEnvelope(list: PackedBytes, name: string, payload: Uint8Array, length = payload.length): void {
  const nb = nameBytes(name)
  const at = list.reserve(envelopeSize(nb.length, length))
  writeEnvelope(list.buffer, at, nb, payload, length)
}

function invalid(reason: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_NODE, `invalid event envelope: ${reason}`)
}

// Every delivery decodes a name, and names repeat: the last few decoded are
// kept with their bytes, so a repeat costs a byte comparison, not a string.
const recentNames: Array<{ bytes: Uint8Array; name: string }> = []
const RECENT_NAMES = 8

function decodeName(bytes: Uint8Array, start: number, end: number): string {
  const length = end - start
  for (let r = 0; r < recentNames.length; r++) {
    const recent = recentNames[r]
    const b = recent.bytes
    if (b.length !== length) continue
    let i = 0
    while (i < length && b[i] === bytes[start + i]) i++
    if (i === length) return recent.name
  }
  let name: string
  try {
    name = utf8Decoder.decode(bytes.subarray(start, end))
  } catch (cause) {
    throw new HyperEmitterError(ErrorCodes.INVALID_NODE, 'invalid event envelope: name is not UTF-8', { cause })
  }
  if (recentNames.length >= RECENT_NAMES) recentNames.pop()
  recentNames.unshift({ bytes: bytes.slice(start, end), name })
  return name
}

const EMPTY = new Uint8Array(0)

function wellFormed(varint: number): number {
  if (varint < 0) throw invalid('malformed varint')
  return varint
}

// Where scan() found the payload, and its cursor: module level, as node.ts
// keeps its cursor, so reading only the name allocates nothing.
const envelopeReader = new VarintReader(EMPTY)
let payloadStart = -1
let payloadEnd = -1

/** Parses and validates an envelope; returns its name and leaves the payload's place in payloadStart/End (-1: none). */
function scan(bytes: Uint8Array): string {
  let name = ''
  payloadStart = payloadEnd = -1
  const reader = envelopeReader
  reader.reset(bytes, 0, bytes.length)
  while (reader.pos < bytes.length) {
    const tag = wellFormed(reader.next())
    const field = Math.floor(tag / 8)
    const wire = tag & 7
    const afterTag = reader.pos
    if (wire === 2) {
      const len = wellFormed(reader.next())
      const start = reader.pos
      if (start + len > bytes.length) throw invalid('truncated field')
      if (field === 1) name = decodeName(bytes, start, start + len)
      else if (field === 2) {
        payloadStart = start
        payloadEnd = start + len
      }
      reader.pos = start + len
    } else if (wire === 0) {
      if (field === 1 || field === 2) throw invalid(`field ${field} has the wrong wire type`)
      wellFormed(reader.next())
    } else if (wire === 1 || wire === 5) {
      if (field === 1 || field === 2) throw invalid(`field ${field} has the wrong wire type`)
      reader.pos = afterTag + (wire === 1 ? 8 : 4)
      if (reader.pos > bytes.length) throw invalid('truncated field')
    } else {
      throw invalid(`unsupported wire type ${wire}`)
    }
  }
  reader.bytes = EMPTY
  return name
}

/**
 * Decode an Event envelope. Values come from peers, so this validates
 * everything and throws INVALID_NODE rather than misreading. Unknown fields
 * are skipped, as protobuf would. `payload` is a view into `bytes`.
 */
export function decodeEnvelope(bytes: Uint8Array): EventEnvelope {
  return decodeEnvelopeIf(bytes, undefined)!
}

/**
 * decodeEnvelope(), or undefined, with nothing made but the name, when
 * `keep` refuses the event's name: for readers that skip most events.
 */
export function decodeEnvelopeIf(bytes: Uint8Array, keep: ((name: string) => boolean) | undefined): EventEnvelope | undefined {
  const name = envelopeNameIf(bytes, keep)
  return name === undefined ? undefined : { name, payload: keptPayload(bytes) }
}

/**
 * decodeEnvelopeIf() without the envelope object, for the delivery path:
 * the name (undefined when `keep` refuses it); the payload of those same
 * `bytes` then comes from keptPayload().
 */
export function envelopeNameIf(bytes: Uint8Array, keep: ((name: string) => boolean) | undefined): string | undefined {
  const name = scan(bytes)
  // Read before keep(), which could decode another envelope.
  const start = payloadStart
  const end = payloadEnd
  if (keep !== undefined && !keep(name)) return undefined
  payloadStart = start
  payloadEnd = end
  return name
}

/** The payload of the envelope envelopeNameIf() read last (`bytes`: the same), as a view. */
export function keptPayload(bytes: Uint8Array): Uint8Array {
  return payloadStart < 0 ? EMPTY : view(bytes, payloadStart, payloadEnd - payloadStart)
}
