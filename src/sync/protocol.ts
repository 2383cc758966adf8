/**
 * Frame encoding for the replication protocol (proto/hyperemitter/v1/sync.proto).
 * Control frames go through protobuf-es; Nodes frames, the only hot path, are
 * written by hand so a batch can be sized exactly before it is built and the
 * node bytes are copied once.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { ErrorCodes, HyperEmitterError, type ErrorCode } from '../core/errors.js'
import type { Clock } from '../core/types.js'
import { TIP_BYTES, type Tips } from './tips.js'
import { fromHex, toHex, view } from '../core/bytes/bytes.js'
import { VarintReader, varintLength, writeVarint } from '../core/bytes/varint.js'
import {
  ClockEntrySchema,
  ClockSchema,
  ErrorSchema,
  FrameSchema,
  HandshakeSchema,
  IdentitySchema,
  NodesSignatureSchema,
  RefusedSchema,
  SyncedSchema,
  type Frame,
  type NodesSignature,
} from '../gen/hyperemitter/v1/sync_pb.js'
import { WriterKeySchema } from '../gen/hyperemitter/v1/log_pb.js'
import type { WriterKey } from '../core/identity/writer-key.js'
import { readClockFrame, TAG_CLOCK } from './clock-frame.js'

/** The protocol version this build speaks; a peer announcing another one is refused. 2: key-proven peers, signed nodes. */
export const PROTOCOL_VERSION = 2

/** One writer's signature in a Nodes frame, over its last node there (see sync.proto). */
export interface WireSignature {
  writer: Uint8Array
  signature: Uint8Array
  /** Sent the first time the writer appears on a connection. */
  key?: WriterKey
}

/** A decoded frame's body: `{ case, value }` of the generated oneof. */
export type FrameBody = Frame['body']
/** The body of a decoded frame whose case is known. */
export type FrameOf<C extends NonNullable<FrameBody['case']>> = Extract<FrameBody, { case: C }>['value']

const TAG_NODES = (3 << 3) | 2
const TAG_NODES_ITEM = (1 << 3) | 2
const TAG_NODES_SIGNATURE = (2 << 3) | 2
/** Frames that carry one varint (field 1): by the thousand on a busy or hostile link, so read and written by hand. */
const TAG_ACK = (5 << 3) | 2
const TAG_PING = (7 << 3) | 2
const TAG_PONG = (8 << 3) | 2
const TAG_FIELD1_VARINT = (1 << 3) | 0

/** Default most writers a peer's Clock may name (about 1.6 MB on the wire). */
export const DEFAULT_MAX_CLOCK_WRITERS = 65_536
/** Byte length of an error message we put on the wire or accept from it. */
const MAX_ERROR_MESSAGE = 1024

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)
const ERROR_CODE_SET: ReadonlySet<string> = new Set(Object.values(ErrorCodes))

/** Encodes a control frame; throws INVALID_ARGUMENT if the body cannot be encoded. */
export function encodeFrame(body: FrameBody): Uint8Array {
  try {
    return toBinary(FrameSchema, create(FrameSchema, { body }))
  } catch (cause) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `cannot encode ${body.case ?? 'empty'} frame`, { cause })
  }
}

/**
 * Decodes one frame; throws PROTOCOL_ERROR for bytes that are not a Frame or
 * carry no body, LIMIT_EXCEEDED for a Clock naming more than
 * `maxClockWriters` writers. Node bytes in a Nodes frame are views into `bytes`.
 */
export function decodeFrame(
  bytes: Uint8Array,
  maxClockWriters = DEFAULT_MAX_CLOCK_WRITERS,
): FrameBody & { case: NonNullable<FrameBody['case']> } {
  const nodes = decodeNodesFrame(bytes)
  if (nodes !== undefined) return { case: 'nodes', value: { $typeName: 'hyperemitter.v1.Nodes', nodes: nodes.nodes, signatures: nodes.signatures } }
  const small = decodeCounterFrame(bytes)
  if (small !== undefined) return small
  // protobuf-es's reflection spends seconds on a Clock of 4 MiB: read Clocks by hand.
  if (bytes.length > 0 && bytes[0] === TAG_CLOCK) {
    return { case: 'clock', value: { $typeName: 'hyperemitter.v1.Clock', entries: readClockFrame(bytes, maxClockWriters).entries() } }
  }
  let frame: Frame
  try {
    // Unknown fields are dropped: a newer minor revision may add some.
    frame = fromBinary(FrameSchema, bytes, { readUnknownFields: false })
  } catch (cause) {
    throw new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `undecodable frame of ${bytes.byteLength} bytes`, {
      cause,
      details: { size: bytes.byteLength },
    })
  }
  const body = frame.body
  if (body.case === undefined) {
    throw new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `frame of ${bytes.byteLength} bytes has no body`, {
      details: { size: bytes.byteLength },
    })
  }
  return body
}

/**
 * The nodes of a Nodes frame laid out as nodesFrame() writes it (the only
 * frame that comes by the thousand), as views into `bytes`, without
 * protobuf-es's reflection (but for the few signatures); undefined for any
 * other layout, which decodeFrame() then reads the general way.
 */
function decodeNodesFrame(bytes: Uint8Array): { nodes: Uint8Array[]; signatures: NodesSignature[] } | undefined {
  if (bytes.length < 2 || bytes[0] !== TAG_NODES) return undefined
  const reader = new VarintReader(bytes, 1)
  const body = reader.next()
  if (body < 0 || reader.pos + body !== bytes.length) return undefined
  const nodes: Uint8Array[] = []
  const signatures: NodesSignature[] = []
  while (reader.pos < bytes.length) {
    const tag = bytes[reader.pos++]
    if (tag !== TAG_NODES_ITEM && (tag !== TAG_NODES_SIGNATURE || nodes.length === 0)) return undefined
    const length = reader.next()
    if (length < 0 || reader.pos + length > bytes.length) return undefined
    if (tag === TAG_NODES_ITEM) {
      if (signatures.length > 0) return undefined
      nodes.push(view(bytes, reader.pos, length))
    } else {
      try {
        signatures.push(fromBinary(NodesSignatureSchema, view(bytes, reader.pos, length), { readUnknownFields: false }))
      } catch {
        return undefined
      }
    }
    reader.pos += length
  }
  return { nodes, signatures }
}

/** An Ack, Ping or Pong frame as counterFrame() writes it, read without protobuf-es; undefined for any other bytes. */
function decodeCounterFrame(bytes: Uint8Array): (FrameBody & { case: 'ack' | 'ping' | 'pong' }) | undefined {
  const tag = bytes[0]
  if (bytes.length < 2 || (tag !== TAG_ACK && tag !== TAG_PING && tag !== TAG_PONG) || bytes[1] !== bytes.length - 2) return undefined
  let value = 0
  if (bytes.length > 2) {
    if (bytes[2] !== TAG_FIELD1_VARINT) return undefined
    const reader = new VarintReader(bytes, 3)
    value = reader.next()
    if (value < 0 || reader.pos !== bytes.length) return undefined
  }
  const n = BigInt(value)
  if (tag === TAG_ACK) return { case: 'ack', value: { $typeName: 'hyperemitter.v1.Ack', count: n } }
  if (tag === TAG_PING) return { case: 'ping', value: { $typeName: 'hyperemitter.v1.Ping', nonce: n } }
  return { case: 'pong', value: { $typeName: 'hyperemitter.v1.Pong', nonce: n } }
}

/** A frame holding one message whose only field is the varint `value` (proto3 leaves out a 0). */
function counterFrame(tag: number, value: number): Uint8Array {
  if (value === 0) return new Uint8Array([tag, 0])
  const length = 1 + varintLength(value)
  const out = new Uint8Array(2 + length)
  out[0] = tag
  out[1] = length
  out[2] = TAG_FIELD1_VARINT
  writeVarint(out, 3, value)
  return out
}

const EMPTY = new Uint8Array(0)

function protocolError(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, message)
}

/** Handshake frame: our fresh challenge and the largest frame we take (0: not said); nothing of the log. */
export function handshakeFrame(live: boolean, challenge: Uint8Array, version = PROTOCOL_VERSION, maxFrameSize = 0): Uint8Array {
  return encodeFrame({ case: 'handshake', value: create(HandshakeSchema, { protocolVersion: version, live, challenge, maxFrameSize }) })
}

/** Identity frame: our writer key, its signature over the peer's challenge, and credentials for its authenticate hook. */
export function identityFrame(key: WriterKey, signature: Uint8Array, token: string): Uint8Array {
  return encodeFrame({
    case: 'identity',
    value: create(IdentitySchema, { key: create(WriterKeySchema, { publicKey: key.publicKey, chain: key.chain }), signature, token }),
  })
}

/** Refused frame: the peer's nodes of `writer` from `seq` on are dropped, with the coded reason. */
export function refusedFrame(writer: Uint8Array, seq: number, code: string, message: string): Uint8Array {
  return encodeFrame({
    case: 'refused',
    value: create(RefusedSchema, { writer, seq: BigInt(seq), code, message: truncate(message, MAX_ERROR_MESSAGE) }),
  })
}

/**
 * Clock frame: writer -> highest seq held, with the first TIP_BYTES of the
 * key at that seq where `tipOf` knows it; throws INVALID_ARGUMENT for a key
 * that is not hex.
 */
export function clockFrame(clock: Clock, tipOf: (writerHex: string) => Uint8Array | undefined = () => undefined): Uint8Array {
  const entries = []
  for (const [writer, seq] of clock) {
    const bytes = fromHex(writer)
    // The log's own clock keys are hex by construction; a bad one is a bug upstream.
    if (!bytes) throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `clock key is not hex: ${truncate(writer, 40)}`)
    const tip = tipOf(writer)
    entries.push(create(ClockEntrySchema, { writer: bytes, seq: BigInt(seq), tip: tip === undefined ? EMPTY : tip.subarray(0, TIP_BYTES) }))
  }
  return encodeFrame({ case: 'clock', value: create(ClockSchema, { entries }) })
}

/** Synced frame: `count` nodes were sent in catch-up. */
export function syncedFrame(count: number): Uint8Array {
  return encodeFrame({ case: 'synced', value: create(SyncedSchema, { count: BigInt(count) }) })
}

/** Ack frame: `count` more nodes were stored. */
export function ackFrame(count: number): Uint8Array {
  return counterFrame(TAG_ACK, count)
}

/** Error frame; the message is truncated to a bounded length. */
export function errorFrame(code: string, message: string): Uint8Array {
  return encodeFrame({
    case: 'error',
    value: create(ErrorSchema, { code, message: truncate(message, MAX_ERROR_MESSAGE) }),
  })
}

/** Ping frame. */
export function pingFrame(nonce: number): Uint8Array {
  return counterFrame(TAG_PING, nonce)
}

/** Pong frame answering a Ping's nonce. */
export function pongFrame(nonce: number): Uint8Array {
  return counterFrame(TAG_PONG, nonce)
}

/** Bytes one node adds to a Nodes frame body (tag, length, bytes). */
export function nodeWireSize(nodeLength: number): number {
  return 1 + varintLength(nodeLength) + nodeLength
}

/** Total size of a Nodes frame whose node entries add up to `bodySize` (see nodeWireSize). */
export function nodesFrameSize(bodySize: number): number {
  return 1 + varintLength(bodySize) + bodySize
}

/** The encoding of one signature entry of a Nodes frame. */
export function encodeSignature(signature: WireSignature): Uint8Array {
  const key = signature.key === undefined ? undefined : create(WriterKeySchema, { publicKey: signature.key.publicKey, chain: signature.key.chain })
  return toBinary(NodesSignatureSchema, create(NodesSignatureSchema, { writer: signature.writer, signature: signature.signature, key }))
}

/**
 * Encodes a Nodes frame (`signatures`: each from encodeSignature());
 * byte-identical to protobuf-es's encoding of `Frame { nodes: { nodes,
 * signatures } }` (checked by the tests).
 */
export function nodesFrame(nodes: readonly Uint8Array[], signatures: readonly Uint8Array[] = []): Uint8Array {
  let body = 0
  for (const node of nodes) body += nodeWireSize(node.byteLength)
  for (const signature of signatures) body += nodeWireSize(signature.byteLength)
  const out = new Uint8Array(nodesFrameSize(body))
  out[0] = TAG_NODES
  let pos = writeVarint(out, 1, body)
  for (const node of nodes) pos = writeItem(out, pos, TAG_NODES_ITEM, node)
  for (const signature of signatures) pos = writeItem(out, pos, TAG_NODES_SIGNATURE, signature)
  return out
}

function writeItem(out: Uint8Array, pos: number, tag: number, bytes: Uint8Array): number {
  out[pos++] = tag
  pos = writeVarint(out, pos, bytes.byteLength)
  out.set(bytes, pos)
  return pos + bytes.byteLength
}

/**
 * The seq at the front of a canonical Node encoding (0x0a, length, writer,
 * 0x10, seq varint), read in place without decoding the rest; -1 when the
 * bytes do not start that way (the log will refuse such a node anyway).
 * Runs once per received node: no object per call.
 */
export function peekNodeSeq(node: Uint8Array): number {
  if (node.byteLength < 2 || node[0] !== 0x0a || node[1] >= 0x80) return -1
  const end = 2 + node[1]
  if (end >= node.byteLength || node[end] !== 0x10) return -1
  return new VarintReader(node, end + 1).next()
}

/** Whether a node peekNodeSeq() could read is by `writer`, compared in place. */
export function isNodeBy(node: Uint8Array, writer: Uint8Array): boolean {
  if (node[1] !== writer.length) return false
  for (let i = 0; i < writer.length; i++) if (node[2 + i] !== writer[i]) return false
  return true
}

/** The writer of a node peekNodeSeq() could read, as a view. */
export function peekNodeWriter(node: Uint8Array): Uint8Array {
  return view(node, 2, node[1])
}

/**
 * Converts a wire Clock to the log's Clock type; throws PROTOCOL_ERROR for a
 * malformed entry. With `known` (our own clock), entries of writers we do
 * not hold are left out: we have nothing of theirs to send, and a peer's
 * Clock then costs memory in proportion to our log, not to its claims.
 */
export function clockFromWire(entries: readonly { writer: Uint8Array; seq: bigint }[], writerLength: number, known?: Clock): Clock {
  const clock: Clock = new Map()
  for (const entry of entries) {
    if (entry.writer.byteLength !== writerLength || entry.seq > MAX_SAFE) {
      throw new HyperEmitterError(
        ErrorCodes.PROTOCOL_ERROR,
        `malformed clock entry (writer of ${entry.writer.byteLength} bytes, seq ${entry.seq})`,
      )
    }
    const writer = toHex(entry.writer)
    if (known !== undefined && !known.has(writer)) continue
    const seq = Number(entry.seq)
    if ((clock.get(writer) ?? 0) < seq) clock.set(writer, seq)
  }
  return clock
}

/**
 * The tips of a wire Clock (writer hex -> TIP_BYTES), for writers in
 * `clock` (what clockFromWire() kept); entries without one are left out.
 * Throws PROTOCOL_ERROR for a tip of another length.
 */
export function tipsFromWire(entries: readonly { writer: Uint8Array; tip: Uint8Array }[], clock: Clock): Tips {
  const tips: Tips = new Map()
  for (const entry of entries) {
    if (entry.tip.byteLength === 0) continue
    if (entry.tip.byteLength !== TIP_BYTES) throw new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `clock tip of ${entry.tip.byteLength} bytes, expected ${TIP_BYTES}`)
    const writer = toHex(entry.writer)
    if (clock.has(writer)) tips.set(writer, entry.tip.slice())
  }
  return tips
}

/**
 * A uint64 from the wire as a number; throws PROTOCOL_ERROR above 2^53 - 1
 * (protoc-gen-es 2.x types uint64 as bigint whatever the jstype option says).
 */
export function safeNumber(value: bigint, field: string): number {
  if (value > MAX_SAFE) {
    throw new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `${field} ${value} is beyond 2^53`, { details: { field } })
  }
  return Number(value)
}

/** The ErrorCode named by a peer's Error frame, or PROTOCOL_ERROR for a code this build does not know. */
export function errorCodeFromWire(code: string): ErrorCode {
  return ERROR_CODE_SET.has(code) ? (code as ErrorCode) : ErrorCodes.PROTOCOL_ERROR
}

/** Cuts `text` to at most `max` characters, marking the cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`
}
