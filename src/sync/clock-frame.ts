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
import { TIP_BYTES, type Tips } from './tips.js'

/** Frame field 2 (Clock), length-delimited. */
export const TAG_CLOCK = (2 << 3) | 2

/** Largest Clock frame of `maxWriters` writers as this protocol writes them (an entry: tags, lengths, writer, a seq up to 2^53, tip). */
export function clockFrameLimit(maxWriters: number): number {
  return 6 + maxWriters * (2 + 2 + WRITER_BYTES + 1 + 8 + 2 + TIP_BYTES)
}

/** A received frame as a session queues it: a Clock as read by readClockFrame(), others decoded. */
export type SessionFrame = Exclude<Frame['body'], { case: 'clock' } | { case: undefined }> | { case: 'clock'; value: WireClock }

const EMPTY = new Uint8Array(0)

/** A received Clock: each entry's writer and tip offsets into the frame (tip -1: none), and its seq. */
export class WireClock {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly writers: number[],
    private readonly seqs: number[],
    private readonly tipsAt: number[],
  ) {}

  // As the generated Clock message holds them (as views).
  entries(): Array<{ $typeName: 'hyperemitter.v1.ClockEntry'; writer: Uint8Array; seq: bigint; tip: Uint8Array }> {
    return this.seqs.map((seq, i) => ({ $typeName: 'hyperemitter.v1.ClockEntry' as const, writer: view(this.bytes, this.writers[i], WRITER_BYTES), seq: BigInt(seq), tip: this.tip(i) }))
  }

  // The tips of the writers in `clock` (what filter() kept), copied.
  tips(clock: Clock): Tips {
    const tips: Tips = new Map()
    this.eachKnown(clock, (writer, i) => this.tipsAt[i] >= 0 && tips.set(writer, view(this.bytes, this.tipsAt[i], TIP_BYTES).slice()))
    return tips
  }

  // The peer's clock for the writers `known` holds, highest seq each.
  filter(known: Clock): Clock {
    const clock: Clock = new Map()
    this.eachKnown(known, (writer, i) => (clock.get(writer) ?? 0) < this.seqs[i] && clock.set(writer, this.seqs[i]))
    return clock
  }

  // Entries whose writer `known` holds; a hex string only where a 32-bit fingerprint matches.
  private eachKnown(known: Clock, each: (writer: string, i: number) => void): void {
    if (known.size === 0) return
    const fingerprints = new Set<number>()
    for (const hex of known.keys()) fingerprints.add(parseInt(hex.slice(0, 8), 16))
    const b = this.bytes
    this.writers.forEach((at, i) => {
      if (!fingerprints.has(((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0)) return
      const writer = toHex(view(b, at, WRITER_BYTES))
      if (known.has(writer)) each(writer, i)
    })
  }

  private tip(i: number): Uint8Array {
    return this.tipsAt[i] < 0 ? EMPTY : view(this.bytes, this.tipsAt[i], TIP_BYTES)
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
  const tips: number[] = []
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
    let tip = -1
    for (let at = entry.from; at < end; ) {
      const f = nextField(inner, at, end)
      at = f.next
      if (f.number === 1 && f.from >= 0) writer = f.to - f.from === WRITER_BYTES ? f.from : -2
      else if (f.number === 2 && f.from < 0) seq = f.value
      else if (f.number === 3 && f.from >= 0) tip = f.to === f.from ? -1 : f.to - f.from === TIP_BYTES ? f.from : -2
    }
    if (writer < 0 || tip === -2) throw protocolError(`malformed clock entry (a writer of ${WRITER_BYTES} bytes, a tip of ${TIP_BYTES} or none)`)
    writers.push(writer)
    seqs.push(seq)
    tips.push(tip)
  }
  return new WireClock(bytes, writers, seqs, tips)
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
