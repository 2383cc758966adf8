/**
 * The canonical encoding of `hyperemitter.v1.Node` (proto/hyperemitter/v1/log.proto).
 *
 * Hand-rolled rather than protobuf-es `toBinary`/`fromBinary` because it is
 * on every node's append and catch-up path, where bench/codec.ts shows it
 * several times faster. Its output is byte-identical to
 * `toBinary(NodeSchema, create(NodeSchema, fields))` — proto3 omits an empty
 * writer/value and a zero seq, writes fields in number order, every link
 * (even an empty one) — and test/log.property.test.ts checks that with
 * fast-check.
 */
import { copyBytes } from '../bytes/bytes.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import { MALFORMED, TOO_BIG, VarintReader, varintLength, writeVarint } from '../bytes/varint.js'

/** A node's fields but its value. */
export interface NodeHead {
  writer: Uint8Array
  seq: number
  links: Uint8Array[]
}

/** The four fields of a Node. */
export interface NodeFields extends NodeHead {
  value: Uint8Array
}

export const WRITER_BYTES = 16
export const KEY_BYTES = 32
/**
 * Most heads a new local node links: the others stay heads and are linked by
 * the nodes after it, so a node stays small however many writers' nodes a
 * log merged, and peers can refuse any node with many more links cheaply.
 */
export const MAX_LINKS_PER_APPEND = 32

const EMPTY = new Uint8Array(0)

const TAG_WRITER = 0x0a // field 1, length-delimited
const TAG_SEQ = 0x10 // field 2, varint
const TAG_LINK = 0x1a // field 3, length-delimited
const TAG_VALUE = 0x22 // field 4, length-delimited

/** Writes a length-delimited field holding `n` bytes of `data` from `start`. */
function writeBytesField(out: Uint8Array, pos: number, tag: number, data: Uint8Array, start: number, n: number): number {
  out[pos++] = tag
  pos = writeVarint(out, pos, n)
  copyBytes(out, pos, data, start, n)
  return pos + n
}

/**
 * Canonical bytes of a node. Throws INVALID_ARGUMENT when a field has the
 * wrong type or seq is not a safe non-negative integer; field sizes are not
 * checked here (decodeNode is the gate for that).
 */
export function encodeNode(node: NodeFields): Uint8Array {
  const out = new Uint8Array(encodedNodeSize(node))
  writeNode(out, 0, node)
  return out
}

/**
 * Size of the canonical encoding of `node`. Throws INVALID_ARGUMENT when a
 * field has the wrong type or seq is not a safe non-negative integer.
 */
export function encodedNodeSize(node: NodeFields): number {
  const { writer, seq, links, value } = node
  if (!(writer instanceof Uint8Array) || !(value instanceof Uint8Array) || !Array.isArray(links)) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'encodeNode: writer and value must be Uint8Array, links an array')
  }
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `encodeNode: seq must be a safe non-negative integer, got ${String(seq)}`, { details: { seq } })
  }
  let size = 0
  if (writer.length > 0) size += 1 + varintLength(writer.length) + writer.length
  if (seq !== 0) size += 1 + varintLength(seq)
  for (let i = 0; i < links.length; i++) {
    const link = links[i]
    if (!(link instanceof Uint8Array)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'encodeNode: every link must be a Uint8Array')
    }
    size += 1 + varintLength(link.length) + link.length
  }
  if (value.length > 0) size += 1 + varintLength(value.length) + value.length
  return size
}

/**
 * encodedNodeSize() of a node of this log's shape (16-byte writer, seq >= 1,
 * `linkCount` 32-byte links, a `valueLength`-byte value), by arithmetic:
 * how the log sizes a batch's chunk before writing it.
 */
export function nodeSize(seq: number, linkCount: number, valueLength: number): number {
  return (
    2 + WRITER_BYTES + 1 + varintLength(seq) + linkCount * (2 + KEY_BYTES) + (valueLength > 0 ? 1 + varintLength(valueLength) + valueLength : 0)
  )
}

/** Writes the canonical encoding of `node` (already sized by encodedNodeSize) at `pos` of `out`. */
export function writeNode(out: Uint8Array, pos: number, node: NodeFields): void {
  writeNodeWithValue(out, pos, node, node.value, 0, node.value.length)
}

/**
 * writeNode() with the value given apart: `length` bytes of `source` from
 * `start`. A value packed among others (an emit group's) is copied straight
 * from there: a view of it would cost an object, and move a small buffer off V8's heap.
 */
export function writeNodeWithValue(out: Uint8Array, pos: number, node: NodeHead, source: Uint8Array, start: number, length: number): void {
  const { writer, seq, links } = node
  if (writer.length > 0) pos = writeBytesField(out, pos, TAG_WRITER, writer, 0, writer.length)
  if (seq !== 0) {
    out[pos++] = TAG_SEQ
    pos = writeVarint(out, pos, seq)
  }
  for (let i = 0; i < links.length; i++) pos = writeBytesField(out, pos, TAG_LINK, links[i], 0, links[i].length)
  if (length > 0) writeBytesField(out, pos, TAG_VALUE, source, start, length)
}

function invalid(message: string, details?: Record<string, unknown>): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_NODE, message, details ? { details } : {})
}

/** A decoded node, and whether its fields came in canonical order (1, 2, 3..., 4, each known one once). */
export interface DecodedNode extends NodeFields {
  inOrder: boolean
}

/**
 * Whether `bytes`, decoded into `node`, are already the canonical encoding:
 * in canonical order and no longer than canonical (a repeated or unknown
 * field, a longer varint or an empty field present would each add bytes).
 */
export function isCanonical(bytes: Uint8Array, node: DecodedNode): boolean {
  return node.inOrder && encodedNodeSize(node) === bytes.length
}

// One cursor for every decode, at module level: closures per call cost
// more than these plain functions. Safe because decoding never yields.
const r = new VarintReader(EMPTY)

function readLengthDelimited(): Uint8Array {
  const len = r.next()
  if (!(len >= 0 && len <= r.end - r.pos)) throw invalid('node truncated: a length runs past the end', { offset: r.pos })
  // A view built directly: subarray() is slower in V8.
  const view = new Uint8Array(r.bytes.buffer, r.bytes.byteOffset + r.pos, len)
  r.pos += len
  return view
}

function skipUnknown(wireType: number): void {
  switch (wireType) {
    case 0:
      if (r.next() === MALFORMED) throw invalid('node has a malformed varint')
      return
    case 1:
      r.pos += 8
      break
    case 2:
      readLengthDelimited()
      return
    case 5:
      r.pos += 4
      break
    default:
      throw invalid(`node has an unsupported wire type ${wireType}`, { wireType })
  }
  if (r.pos > r.end) throw invalid('node truncated inside an unknown field')
}

/**
 * decodeNode() for bytes laid out exactly as writeNode() writes them (what
 * peers send): writer, seq, links and value at fixed tags, each length and
 * varint minimal, nothing else. Returns undefined for anything else, which
 * decodeNode() then judges. A result is always canonical, so the caller
 * needs no isCanonical(). Kept small and branch-light so V8 optimises it early.
 */
export function decodeCanonicalNode(bytes: Uint8Array, writer?: Uint8Array): DecodedNode | undefined {
  // writer: 0x0a, 16, 16 bytes
  if (bytes.length < 2 + WRITER_BYTES + 2 || bytes[0] !== TAG_WRITER || bytes[1] !== WRITER_BYTES || bytes[2 + WRITER_BYTES] !== TAG_SEQ) return undefined
  r.reset(bytes, 2 + WRITER_BYTES + 1, bytes.length)
  const node = readCanonicalRest(writer)
  r.bytes = EMPTY
  return node
}

/**
 * decodeCanonicalNode() after the writer and the seq tag, on the module
 * cursor. `writer`, when its bytes are the node's, is used as its writer:
 * one typed-array view less per node in a run of one writer's nodes.
 */
function readCanonicalRest(writer: Uint8Array | undefined): DecodedNode | undefined {
  const seq = r.nextMinimal(8)
  if (seq < 1 || seq > Number.MAX_SAFE_INTEGER) return undefined
  const buf = r.bytes
  const end = r.end
  const base = buf.byteOffset
  const buffer = buf.buffer
  let pos = r.pos
  let links: Uint8Array[] | undefined
  while (pos < end && buf[pos] === TAG_LINK) {
    if (buf[pos + 1] !== KEY_BYTES || pos + 2 + KEY_BYTES > end) return undefined
    const link = new Uint8Array(buffer, base + pos + 2, KEY_BYTES)
    if (links === undefined) links = [link]
    else links.push(link)
    pos += 2 + KEY_BYTES
  }
  let value: Uint8Array = EMPTY
  if (pos < end) {
    if (buf[pos++] !== TAG_VALUE) return undefined
    // A non-zero length that ends exactly at the end.
    r.pos = pos
    const length = r.nextMinimal(4)
    if (length < 1 || r.pos + length !== end) return undefined
    value = new Uint8Array(buffer, base + r.pos, length)
  }
  return { writer: isWriterAt(buf, writer) ? writer! : new Uint8Array(buffer, base + 2, WRITER_BYTES), seq, links: links ?? [], value, inOrder: true }
}

/** Whether `writer` holds the writer bytes of the node in `buf`. */
function isWriterAt(buf: Uint8Array, writer: Uint8Array | undefined): boolean {
  if (writer === undefined || writer.length !== WRITER_BYTES) return false
  for (let i = 0; i < WRITER_BYTES; i++) if (buf[2 + i] !== writer[i]) return false
  return true
}

/**
 * Parses any valid protobuf encoding of a Node (fields in any order, repeated
 * scalars last-wins, unknown fields skipped; groups refused) and checks the
 * shape a stored node must have: 16-byte writer, seq >= 1 (a safe integer),
 * 32-byte links. The returned fields are views into `bytes`. Throws
 * INVALID_NODE on anything else.
 */
export function decodeNode(bytes: Uint8Array): DecodedNode {
  if (!(bytes instanceof Uint8Array)) throw invalid('node bytes must be a Uint8Array')
  r.reset(bytes, 0, bytes.length)
  let writer: Uint8Array = EMPTY
  let seq = 0
  const links: Uint8Array[] = []
  let value: Uint8Array = EMPTY
  let lastField = 0
  let inOrder = true
  try {
    while (r.pos < r.end) {
      const tag = r.next()
      if (!(tag >= 0 && tag <= 0xffffffff)) throw invalid('node has a malformed field tag', { offset: r.pos })
      const field = Math.floor(tag / 8)
      const wireType = tag % 8
      if (field === 0) throw invalid('node has field number 0', { offset: r.pos })
      // Canonical order: 1, 2, 3 (repeated), 4, each known field once.
      if (field < lastField || (field === lastField && field !== 3) || field > 4) inOrder = false
      lastField = field
      if (field <= 4 && wireType !== (field === 2 ? 0 : 2)) {
        throw invalid(`node field ${field} has wire type ${wireType}`, { field, wireType })
      }
      switch (field) {
        case 1:
          writer = readLengthDelimited()
          break
        case 2: {
          const n = r.next()
          if (n === MALFORMED) throw invalid('node seq is a malformed varint')
          if (n === TOO_BIG) throw invalid('node seq is above 2^53', { field: 'seq' })
          seq = n
          break
        }
        case 3:
          links.push(readLengthDelimited())
          break
        case 4:
          value = readLengthDelimited()
          break
        default:
          skipUnknown(wireType)
      }
    }
  } finally {
    // Do not keep the caller's buffer alive through the module.
    r.bytes = EMPTY
  }

  if (writer.length !== WRITER_BYTES) throw invalid(`node writer must be ${WRITER_BYTES} bytes, got ${writer.length}`, { field: 'writer' })
  if (seq < 1) throw invalid('node seq must be >= 1', { field: 'seq' })
  for (let i = 0; i < links.length; i++) {
    if (links[i].length !== KEY_BYTES) throw invalid(`node links must be ${KEY_BYTES} bytes, got ${links[i].length}`, { field: 'links' })
  }
  return { writer, seq, links, value, inOrder }
}
