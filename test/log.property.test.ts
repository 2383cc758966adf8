import { registerSigner, signaturesFor } from './helpers/signing.js'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import fc from 'fast-check'
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { compareBytes, toHex } from '../src/core/bytes/bytes.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { sha256 } from '../src/core/bytes/hash.js'
import { decodeNode, encodeNode, Log } from '../src/core/log/log.js'
import { decodeCanonicalNode, isCanonical, nodeSize } from '../src/core/codec/node.js'
import type { Clock, LogEntry } from '../src/core/types.js'
import { NodeSchema } from '../src/gen/hyperemitter/v1/log_pb.js'
import { readMissing } from './helpers/missing.js'

const hex = (b: Uint8Array) => toHex(b)

function protobufEs(fields: { writer: Uint8Array; seq: number; links: Uint8Array[]; value: Uint8Array }): Uint8Array {
  return toBinary(NodeSchema, create(NodeSchema, { writer: fields.writer, seq: BigInt(fields.seq), links: fields.links, value: fields.value }))
}

function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 128) {
    out.push((n % 128) | 128)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

const lengthDelimited = (field: number, data: Uint8Array) => Uint8Array.of(...varint(field * 8 + 2), ...varint(data.length), ...data)
const varintField = (field: number, n: number) => Uint8Array.of(...varint(field * 8), ...varint(n))

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const anyFields = fc.record({
  writer: fc.uint8Array({ maxLength: 20 }),
  seq: fc.oneof(fc.nat(300), fc.maxSafeNat()),
  links: fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }),
  value: fc.uint8Array({ maxLength: 300 }),
})

const validFields = fc.record({
  writer: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  seq: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
  links: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 4 }),
  value: fc.uint8Array({ maxLength: 200 }),
})

const unknownField = fc.oneof(
  fc.record({ field: fc.integer({ min: 5, max: 2000 }), data: fc.uint8Array({ maxLength: 10 }) }).map(({ field, data }) => lengthDelimited(field, data)),
  fc.record({ field: fc.integer({ min: 5, max: 2000 }), n: fc.maxSafeNat() }).map(({ field, n }) => varintField(field, n)),
  fc.integer({ min: 5, max: 2000 }).map((field) => Uint8Array.of(...varint(field * 8 + 5), 1, 2, 3, 4)),
  fc.integer({ min: 5, max: 2000 }).map((field) => Uint8Array.of(...varint(field * 8 + 1), 1, 2, 3, 4, 5, 6, 7, 8)),
)

describe('Node codec', () => {
  it('encodeNode is byte-identical to protobuf-es toBinary(create(NodeSchema, ...))', () => {
    fc.assert(
      fc.property(anyFields, (fields) => {
        expect(hex(encodeNode(fields))).toBe(hex(protobufEs(fields)))
      }),
      { numRuns: 500 },
    )
  })

  it("nodeSize (how the log sizes chunks) is the encoded size of any node of the log's shape", () => {
    fc.assert(
      fc.property(validFields, (fields) => {
        expect(nodeSize(fields.seq, fields.links.length, fields.value.length)).toBe(encodeNode(fields).length)
      }),
      { numRuns: 500 },
    )
  })

  it('decodeCanonicalNode reads exactly what decodeNode reads of canonical bytes, and turns down any other encoding', () => {
    const mutated = fc.tuple(validFields, fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 3 }), fc.nat(20))
    fc.assert(
      fc.property(mutated, ([fields, edits, cut]) => {
        const canonical = encodeNode(fields)
        expect(decodeCanonicalNode(canonical)).toEqual(decodeNode(canonical))
        // A writer array with the node's bytes is used as is; any other gives the node's own.
        const same = fields.writer.slice()
        expect(decodeCanonicalNode(canonical, same)?.writer).toBe(same)
        const other = fields.writer.slice()
        other[cut % 16] ^= 1
        expect(decodeCanonicalNode(canonical, other)?.writer).toEqual(fields.writer)
        expect(decodeCanonicalNode(canonical, new Uint8Array(15))?.writer).toEqual(fields.writer)
        // Damaged, truncated or re-encoded bytes: either refused, or read as decodeNode reads them, canonical.
        const bytes = canonical.slice(0, Math.max(0, canonical.length - (cut % 3 === 0 ? cut : 0)))
        for (const { at, byte } of edits) if (bytes.length > 0) bytes[at % bytes.length] = byte
        const fast = decodeCanonicalNode(bytes)
        if (fast === undefined) return
        const full = decodeNode(bytes)
        expect(fast).toEqual(full)
        expect(isCanonical(bytes, full)).toBe(true)
      }),
      { numRuns: 2000 },
    )
    // Other valid encodings of the same node are left to decodeNode.
    const fields = { writer: new Uint8Array(16).fill(1), seq: 5, links: [new Uint8Array(32).fill(2)], value: Uint8Array.of(7) }
    const canonical = encodeNode(fields)
    const longSeq = Uint8Array.of(...canonical.subarray(0, 18), 0x10, 0x85, 0x00, ...canonical.subarray(20))
    expect(decodeNode(longSeq).seq).toBe(5)
    expect(decodeCanonicalNode(longSeq)).toBeUndefined()
    const unknownField = Uint8Array.of(...canonical, 0x28, 0x01)
    expect(decodeCanonicalNode(unknownField)).toBeUndefined()
    const emptyValue = Uint8Array.of(...encodeNode({ ...fields, value: new Uint8Array(0) }), 0x22, 0x00)
    expect(decodeCanonicalNode(emptyValue)).toBeUndefined()
  })

  it('decodeNode reads any encoding protobuf-es reads the same way, and re-encodes canonically', () => {
    fc.assert(
      fc.property(
        validFields,
        fc.array(unknownField, { maxLength: 3 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 1_000_000 }),
        (fields, unknown, overwrite, shuffleSeed) => {
          // Scalar fields may appear several times (last wins) and in any order;
          // links keep their relative order.
          const parts: Uint8Array[] = []
          if (overwrite) parts.push(lengthDelimited(1, new Uint8Array(3)), varintField(2, 99), lengthDelimited(4, Uint8Array.of(7)))
          const tail = [
            lengthDelimited(1, fields.writer),
            varintField(2, fields.seq),
            ...(fields.value.length > 0 ? [lengthDelimited(4, fields.value)] : [lengthDelimited(4, new Uint8Array(0))]),
            ...unknown,
          ]
          let seed = shuffleSeed
          for (let i = tail.length - 1; i > 0; i--) {
            seed = (seed * 1103515245 + 12345) % 2147483648
            const j = seed % (i + 1)
            ;[tail[i], tail[j]] = [tail[j], tail[i]]
          }
          const links = fields.links.map((l) => lengthDelimited(3, l))
          const at = seed % (tail.length + 1)
          const bytes = concat([...parts, ...tail.slice(0, at), ...links, ...tail.slice(at)])

          const ours = decodeNode(bytes)
          const theirs = fromBinary(NodeSchema, bytes)
          expect(hex(ours.writer)).toBe(hex(theirs.writer))
          expect(ours.seq).toBe(Number(theirs.seq))
          expect(ours.links.map(hex)).toEqual(theirs.links.map(hex))
          expect(hex(ours.value)).toBe(hex(theirs.value))
          expect(hex(encodeNode(ours))).toBe(hex(protobufEs(fields)))
        },
      ),
      { numRuns: 300 },
    )
  })

  it('decodeNode on garbage either throws INVALID_NODE or yields a well-formed node', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        try {
          const n = decodeNode(bytes)
          expect(n.writer.length).toBe(16)
          expect(n.seq).toBeGreaterThanOrEqual(1)
          for (const l of n.links) expect(l.length).toBe(32)
          expect(hex(encodeNode(decodeNode(encodeNode(n))))).toBe(hex(encodeNode(n)))
        } catch (err) {
          if (!isHyperEmitterError(err, ErrorCodes.INVALID_NODE)) throw err
        }
      }),
      { numRuns: 1000 },
    )
  })
})

// ---- The log under random interleavings of appends and (partial) syncs ----

type Op =
  | { t: 'append'; who: 0 | 1; n: number; together: boolean }
  | { t: 'sync'; from: 0 | 1; limit: number | null; chunk: number; appendMeanwhile: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('append' as const), who: fc.constantFrom(0 as const, 1 as const), n: fc.integer({ min: 1, max: 4 }), together: fc.boolean() }),
  fc.record({
    t: fc.constant('sync' as const),
    from: fc.constantFrom(0 as const, 1 as const),
    limit: fc.option(fc.nat(6), { nil: null }),
    chunk: fc.integer({ min: 1, max: 4 }),
    appendMeanwhile: fc.nat(2),
  }),
)

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

let counter = 0
const payload = () => new TextEncoder().encode(`event ${counter++}`)

/** Every invariant of GUIDE.md that one log can be checked for on its own. */
async function checkInvariants(log: Log, other: Clock): Promise<LogEntry[]> {
  const entries = await all(log.read())
  expect(entries.map((e) => e.change)).toEqual(entries.map((_, i) => i + 1))
  expect(log.length).toBe(entries.length)

  const position = new Map<string, number>()
  const linked = new Set<string>()
  const lastSeq = new Map<string, number>()
  // Violations are collected as strings and asserted once: expect() per
  // entry dominated the run time.
  const problems: string[] = []
  for (const e of entries) {
    const key = hex(e.key)
    // Every stored key is the hash of the stored (canonical) bytes.
    if (key !== hex(sha256(e.bytes))) problems.push(`${e.change}: key is not the hash of its bytes`)
    const node = decodeNode(e.bytes)
    if (hex(encodeNode(node)) !== hex(e.bytes)) problems.push(`${e.change}: stored bytes are not canonical`)
    if (hex(node.writer) !== hex(e.writer) || node.seq !== e.seq || hex(node.value) !== hex(e.value) || node.links.map(hex).join() !== e.links.map(hex).join()) {
      problems.push(`${e.change}: entry fields differ from its bytes`)
    }
    // Topological: every link is stored earlier.
    for (const l of e.links) {
      if (!((position.get(hex(l)) ?? Infinity) < e.change)) problems.push(`${e.change}: link ${hex(l)} not stored before it`)
      linked.add(hex(l))
    }
    if (position.has(key)) problems.push(`${e.change}: key stored twice`)
    position.set(key, e.change)
    // (writer, seq) unique and contiguous per writer, in change order.
    const w = hex(e.writer)
    if (e.seq !== (lastSeq.get(w) ?? 0) + 1) problems.push(`${e.change}: seq ${e.seq} after ${lastSeq.get(w) ?? 0} for ${w}`)
    lastSeq.set(w, e.seq)
  }
  expect(problems).toEqual([])
  expect(log.clock()).toEqual(lastSeq)
  const heads = entries.filter((e) => !linked.has(hex(e.key))).map((e) => e.key)
  heads.sort(compareBytes)
  expect(log.heads().map(hex)).toEqual(heads.map(hex))

  // readMissing gives exactly the entries beyond a clock, in change order.
  const missing = await all(readMissing(log, other))
  expect(missing.map((e) => e.change)).toEqual(entries.filter((e) => e.seq > (other.get(hex(e.writer)) ?? 0)).map((e) => e.change))
  return entries
}

async function syncOnce(from: Log, to: Log, limit: number | null, chunk: number, appendMeanwhile: number): Promise<void> {
  const nodes: Uint8Array[] = []
  if (limit !== 0) {
    for await (const e of readMissing(from, to.clock())) {
      nodes.push(e.bytes)
      if (limit !== null && nodes.length >= limit) break
    }
  }
  // Several addMany calls and local appends in flight at once share batches;
  // each addMany may depend on the one before it.
  // Each signed as a sending session would, ahead, so all are queued in one turn.
  const chunks: Uint8Array[][] = []
  for (let i = 0; i < nodes.length; i += chunk) chunks.push(nodes.slice(i, i + chunk))
  const signed = await Promise.all(chunks.map((c) => signaturesFor(c)))
  const pending: Promise<unknown>[] = []
  for (let i = 0; i < chunks.length; i++) pending.push(to.addMany(chunks[i], 'peer', { signatures: signed[i] }))
  for (let i = 0; i < appendMeanwhile; i++) pending.push(to.append(payload()))
  await Promise.all(pending)
}

describe('Log invariants under random appends and syncs', () => {
  it('hold after every run, and a full sync makes both logs identical', async () => {
    await fc.assert(
      // recentKeys 0 sends every link and duplicate check to the db.
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 14 }), fc.constantFrom(0, 4, 1000), async (ops, recentKeys) => {
        const dbs = [new MemoryLevel(), new MemoryLevel()]
        const logs = dbs.map((db) => new Log(db, { maxBatch: 3, recentKeys }))
        await Promise.all(logs.map((l) => l.open()))
        for (const l of logs) registerSigner(l)
        try {
          for (const op of ops) {
            if (op.t === 'append') {
              const log = logs[op.who]
              if (op.together) await Promise.all(Array.from({ length: op.n }, () => log.append(payload())))
              else for (let i = 0; i < op.n; i++) await log.append(payload())
            } else {
              await syncOnce(logs[op.from], logs[1 - op.from], op.limit, op.chunk, op.appendMeanwhile)
            }
          }
          const [a, b] = logs
          await checkInvariants(a, b.clock())
          await checkInvariants(b, a.clock())

          await syncOnce(a, b, null, 5, 0)
          await syncOnce(b, a, null, 5, 0)
          const ea = await checkInvariants(a, b.clock())
          const eb = await checkInvariants(b, a.clock())
          expect(new Set(ea.map((e) => hex(e.key)))).toEqual(new Set(eb.map((e) => hex(e.key))))
          expect(a.heads().map(hex)).toEqual(b.heads().map(hex))
          expect(a.clock()).toEqual(b.clock())
          expect(await all(readMissing(a, b.clock()))).toEqual([])

          // Everything above survives a reopen on the same db.
          const before = { clock: a.clock(), heads: a.heads().map(hex), length: a.length, writer: a.writerId }
          await a.close()
          const again = new Log(dbs[0])
          await again.open()
          expect({ clock: again.clock(), heads: again.heads().map(hex), length: again.length, writer: again.writerId }).toEqual(before)
          await again.close()
        } finally {
          for (const l of logs) await l.close()
          for (const db of dbs) await db.close()
        }
      }),
      { numRuns: 100 },
    )
  })
})
