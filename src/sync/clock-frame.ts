/**
 * Clock frames read by hand. A peer's Clock may name tens of thousands of
 * writers, and only those this log holds matter: one pass on arrival checks
 * its shape and count into offsets, and filtering against our clock skips
 * unknown writers by a 32-bit fingerprint, so they cost no string or object.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { Clock } from '../core/types.js'
import { toHex, view } from '../core/bytes/bytes.js'
import { VarintReader } from '../core/bytes/varint.js'
import type { Frame } from '../gen/hyperemitter/v1/sync_pb.js'

/** Frame field 2 (Clock), length-delimited. */
export const TAG_CLOCK = (2 << 3) | 2

/**
 * Most bytes one clock entry takes as this protocol writes it: its tag and
 * length, a 16-byte writer field and a seq of up to 2^53 (8 varint bytes).
 */
const MAX_ENTRY_BYTES = 2 + (2 + 16) + (1 + 8)

/** Largest Clock frame naming at most `maxWriters` writers: a peer's Clock over it is refused from its length, before it is read. */
export function clockFrameLimit(maxWriters: number): number {
  // The frame's own tag and a length of up to 5 varint bytes.
  return 6 + maxWriters * MAX_ENTRY_BYTES
}

const EMPTY = new Uint8Array(0)

/** A received frame as a session queues it: a Clock as read by readClockFrame(), others decoded. */
export type SessionFrame = Exclude<Frame['body'], { case: 'clock' } | { case: undefined }> | { case: 'clock'; value: WireClock }

/** A received Clock frame: entries as offsets into its bytes, read on demand. */
export class WireClock {
  constructor(
    private readonly bytes: Uint8Array,
    /** Per entry: where its writer starts (-1: none given) and its length. */
    private readonly writerAt: Int32Array,
    private readonly writerLength: Uint16Array,
    private readonly seqs: Float64Array,
  ) {}

  get size(): number {
    return this.seqs.length
  }

  /** The entries as the generated Clock message holds them (writers as views). */
  entries(): Array<{ $typeName: 'hyperemitter.v1.ClockEntry'; writer: Uint8Array; seq: bigint }> {
    const out = []
    for (let i = 0; i < this.seqs.length; i++) {
      out.push({ $typeName: 'hyperemitter.v1.ClockEntry' as const, writer: this.writer(i), seq: BigInt(this.seqs[i]) })
    }
    return out
  }

  /**
   * The peer's clock for the writers `known` holds (highest seq per writer);
   * throws PROTOCOL_ERROR for an entry whose writer is not `writerBytes` long.
   * Costs one fingerprint lookup per entry, and a hex string only for
   * writers that match one of ours.
   */
  filter(known: Clock, writerBytes: number): Clock {
    const fingerprints = new Set<number>()
    for (const hex of known.keys()) fingerprints.add(parseInt(hex.slice(0, 8), 16))
    const clock: Clock = new Map()
    const bytes = this.bytes
    for (let i = 0; i < this.seqs.length; i++) {
      const at = this.writerAt[i]
      if (at < 0 || this.writerLength[i] !== writerBytes) {
        throw protocolError(`malformed clock entry (writer of ${at < 0 ? 0 : this.writerLength[i]} bytes, seq ${this.seqs[i]})`)
      }
      const fingerprint = ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0
      if (!fingerprints.has(fingerprint)) continue
      const writer = toHex(this.writer(i))
      if (!known.has(writer)) continue
      const seq = this.seqs[i]
      if ((clock.get(writer) ?? 0) < seq) clock.set(writer, seq)
    }
    return clock
  }

  private writer(i: number): Uint8Array {
    const at = this.writerAt[i]
    return at < 0 ? EMPTY : view(this.bytes, at, this.writerLength[i])
  }
}

/**
 * Reads a Frame holding only a Clock (any field order, unknown fields
 * skipped, as protobuf allows). Throws PROTOCOL_ERROR for bytes that are not
 * that, LIMIT_EXCEEDED past `maxWriters` entries (counted before any is read).
 */
export function readClockFrame(bytes: Uint8Array, maxWriters: number): WireClock {
  const reader = new VarintReader(bytes, 1)
  const length = reader.next()
  if (bytes[0] !== TAG_CLOCK || length < 0 || reader.pos + length !== bytes.length) throw protocolError(`malformed clock frame of ${bytes.length} bytes`)
  const start = reader.pos
  let count = 0
  for (let pos = start; pos < bytes.length; ) {
    const field = nextField(reader, pos, bytes.length)
    if (field.number === 1 && field.from >= 0 && ++count > maxWriters) {
      throw new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, `clock names more than maxClockWriters (${maxWriters}) writers`, {
        details: { maxClockWriters: maxWriters },
      })
    }
    pos = field.next
  }
  const writerAt = new Int32Array(count)
  const writerLength = new Uint16Array(count)
  const seqs = new Float64Array(count)
  const inner = new VarintReader(bytes)
  let i = 0
  for (let pos = start; pos < bytes.length; ) {
    const outer = nextField(reader, pos, bytes.length)
    pos = outer.next
    if (outer.number !== 1 || outer.from < 0) continue
    // The entry's bounds, kept: nextField() reuses its result object.
    const entryEnd = outer.to
    let writer = -1
    let length = 0
    let seq = 0
    for (let at = outer.from; at < entryEnd; ) {
      const f = nextField(inner, at, entryEnd)
      if (f.number === 1 && f.from >= 0) {
        writer = f.from
        length = Math.min(f.to - f.from, 0xffff)
      } else if (f.number === 2 && f.from < 0) {
        seq = f.value
      }
      at = f.next
    }
    writerAt[i] = writer
    writerLength[i] = length
    seqs[i++] = seq
  }
  return new WireClock(bytes, writerAt, writerLength, seqs)
}

/** One field's number and bounds: a length-delimited one's bytes [from, to), a varint's value (from = -1). */
const field = { number: 0, from: 0, to: 0, value: 0, next: 0 }

/**
 * The field at `pos` (before `end`), in a shared object overwritten by the
 * next call. Throws PROTOCOL_ERROR for a truncated field, a varint past 2^53
 * or a wire type other than varint, length, 32 and 64 bits.
 */
function nextField(reader: VarintReader, pos: number, end: number): typeof field {
  reader.pos = pos
  reader.end = end
  const tag = reader.next()
  const wire = tag % 8
  field.number = Math.floor(tag / 8)
  if (tag < 0 || field.number === 0) throw protocolError('malformed field tag in a clock frame')
  field.from = field.to = -1
  field.value = 0
  if (wire === 0) {
    field.value = reader.next()
    if (field.value < 0) throw protocolError('malformed varint in a clock frame')
    field.next = reader.pos
  } else if (wire === 2) {
    const length = reader.next()
    if (length < 0 || reader.pos + length > end) throw protocolError('truncated field in a clock frame')
    field.from = reader.pos
    field.to = field.next = reader.pos + length
  } else if (wire === 1 || wire === 5) {
    field.next = reader.pos + (wire === 1 ? 8 : 4)
    if (field.next > end) throw protocolError('truncated field in a clock frame')
  } else {
    throw protocolError(`wire type ${wire} in a clock frame`)
  }
  return field
}

function protocolError(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, message)
}
