/**
 * Clock frames read by hand. A peer's Clock may name tens of thousands of
 * writers, and only those this log holds matter: read on arrival into
 * offsets, then filtered against our clock by a 32-bit writer fingerprint,
 * so unknown writers cost no string or object.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { Clock } from '../core/types.js'
import { toHex, view } from '../core/bytes/bytes.js'
import { VarintReader } from '../core/bytes/varint.js'
import { WRITER_BYTES } from '../core/codec/node.js'
import type { Frame } from '../gen/hyperemitter/v1/sync_pb.js'
import { protocolError } from './session-errors.js'

/** Frame field 2 (Clock), length-delimited. */
export const TAG_CLOCK = (2 << 3) | 2

/** Largest Clock frame of `maxWriters` writers as this protocol writes them (an entry: tags, lengths, writer, a seq up to 2^53). */
export function clockFrameLimit(maxWriters: number): number {
  return 6 + maxWriters * (2 + 2 + WRITER_BYTES + 1 + 8)
}

/** A received frame as a session queues it: a Clock as read by readClockFrame(), others decoded. */
export type SessionFrame = Exclude<Frame['body'], { case: 'clock' } | { case: undefined }> | { case: 'clock'; value: WireClock }

/** A received Clock: each entry's writer offset into the frame, and its seq. */
export class WireClock {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly writers: number[],
    private readonly seqs: number[],
  ) {}

  // As the generated Clock message holds them (writers as views).
  entries(): Array<{ $typeName: 'hyperemitter.v1.ClockEntry'; writer: Uint8Array; seq: bigint }> {
    return this.seqs.map((seq, i) => ({ $typeName: 'hyperemitter.v1.ClockEntry' as const, writer: view(this.bytes, this.writers[i], WRITER_BYTES), seq: BigInt(seq) }))
  }

  // The peer's clock for the writers `known` holds, highest seq each; a hex string only where fingerprints match.
  filter(known: Clock): Clock {
    const fingerprints = new Set<number>()
    for (const hex of known.keys()) fingerprints.add(parseInt(hex.slice(0, 8), 16))
    const clock: Clock = new Map()
    const b = this.bytes
    this.writers.forEach((at, i) => {
      if (!fingerprints.has(((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0)) return
      const writer = toHex(view(b, at, WRITER_BYTES))
      if (known.has(writer) && (clock.get(writer) ?? 0) < this.seqs[i]) clock.set(writer, this.seqs[i])
    })
    return clock
  }
}

/**
 * Reads a Frame holding only a Clock (any field order, unknown fields
 * skipped, as protobuf allows). Throws PROTOCOL_ERROR for other bytes or a
 * writer that is not WRITER_BYTES long, LIMIT_EXCEEDED past `maxWriters` entries.
 */
export function readClockFrame(bytes: Uint8Array, maxWriters: number): WireClock {
  const reader = new VarintReader(bytes, 1)
  const length = reader.next()
  if (bytes[0] !== TAG_CLOCK || length < 0 || reader.pos + length !== bytes.length) throw protocolError(`malformed clock frame of ${bytes.length} bytes`)
  const writers: number[] = []
  const seqs: number[] = []
  const inner = new VarintReader(bytes)
  for (let pos = reader.pos; pos < bytes.length; ) {
    const entry = nextField(reader, pos, bytes.length)
    pos = entry.next
    if (entry.number !== 1 || entry.from < 0) continue
    if (seqs.length === maxWriters) {
      throw new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, `clock names more than maxClockWriters (${maxWriters}) writers`, { details: { maxClockWriters: maxWriters } })
    }
    // Kept: nextField() reuses its result object.
    const end = entry.to
    let writer = -1
    let seq = 0
    for (let at = entry.from; at < end; ) {
      const f = nextField(inner, at, end)
      at = f.next
      if (f.number === 1 && f.from >= 0) writer = f.to - f.from === WRITER_BYTES ? f.from : -2
      else if (f.number === 2 && f.from < 0) seq = f.value
    }
    if (writer < 0) throw protocolError(`malformed clock entry (no writer of ${WRITER_BYTES} bytes)`)
    writers.push(writer)
    seqs.push(seq)
  }
  return new WireClock(bytes, writers, seqs)
}

/** A field's number, then a length-delimited one's bytes [from, to) or a varint's value (from = -1). */
const scanned = { number: 0, from: 0, to: 0, value: 0, next: 0 }

/** The field at `pos`, in `scanned` (overwritten by the next call); PROTOCOL_ERROR when truncated, past 2^53 or of a group wire type. */
function nextField(reader: VarintReader, pos: number, end: number): typeof scanned {
  reader.pos = pos
  reader.end = end
  const tag = reader.next()
  const wire = tag % 8
  scanned.number = Math.floor(tag / 8)
  scanned.from = scanned.to = -1
  scanned.value = wire === 0 ? reader.next() : 0
  const length = wire === 2 ? reader.next() : wire === 1 ? 8 : wire === 5 ? 4 : 0
  scanned.next = reader.pos + (wire === 0 ? 0 : length)
  if (tag < 0 || scanned.number === 0 || scanned.value < 0 || length < 0 || scanned.next > end || (wire > 2 && wire !== 5)) {
    throw protocolError(`malformed field (tag ${tag}) in a clock frame`)
  }
  if (wire === 2) {
    scanned.from = reader.pos
    scanned.to = scanned.next
  }
  return scanned
}
