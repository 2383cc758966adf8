import type { AbstractLevel } from 'abstract-level'
import { MemoryLevel } from 'memory-level'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { compareBytes, equalBytes, toHex } from '../src/core/bytes/bytes.js'
import { PackedBytes } from '../src/core/bytes/packed.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { sha256 } from '../src/core/bytes/hash.js'
import { decodeNode, encodeNode, Log, type LogOptions } from '../src/core/log/log.js'
import { MAX_LINKS_PER_APPEND } from '../src/core/codec/node.js'
import type { Clock, LogEntry } from '../src/core/types.js'
import { captureChunkRecords, dbFactories, ownsBuffer, spyBatch } from './helpers/dbs.js'
import { collectGarbage } from './helpers/gc.js'
import { fillWriterPool, poolWriter, registerSigner, signatureOver, signaturesFor, signingAdds, testWriter } from './helpers/signing.js'
import { readMissing } from './helpers/missing.js'

type Db = AbstractLevel<any, any, any>

const factories = dbFactories.map((f) => f())

// A live reader that loses an entry waits forever: fail fast instead.
const LIVE_TIMEOUT = 10_000

const enc = (s: string) => new TextEncoder().encode(s)

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

async function expectCode(p: Promise<unknown>, code: string): Promise<unknown> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, `expected a rejection with ${code}`).toBeDefined()
  expect(isHyperEmitterError(err) ? err.code : err).toBe(code)
  return err
}

/** Nodes `from` has that `to` lacks, optionally only the first `limit`. */
async function missingBytes(from: Log, to: Log, limit = Infinity): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  if (limit <= 0) return out
  for await (const e of readMissing(from, to.clock())) {
    out.push(e.bytes)
    if (out.length >= limit) break
  }
  return out
}

async function sync(from: Log, to: Log, origin: unknown = 'sync'): Promise<LogEntry[]> {
  return to.addMany(await missingBytes(from, to), origin)
}

/** A hand-made foreign node (its own writer), with its key. */
function foreign(writer: Uint8Array, seq: number, links: Uint8Array[], value = enc(`v${seq}`)) {
  const bytes = encodeNode({ writer, seq, links, value })
  return { bytes, key: sha256(bytes) }
}

/** The log's own records, as raw bytes (to plant what another version or a broken disk would leave). */
function logRecords(db: Db) {
  return db.sublevel<Uint8Array, Uint8Array>('hyperemitter', { keyEncoding: 'view', valueEncoding: 'view' })
}

/** A writer id whose signatures the logs' add()/addMany() can make (see signingAdds). */
const randomWriter = poolWriter

// Each backend's tests take a dozen or so random writers.
beforeAll(() => fillWriterPool(20 * backends.length))

afterEach(() => {
  for (const factory of factories) factory.cleanup()
})

// Each db, with chunk buffers of their own (the default, what IndexedDB
// needs) and from a shared slab (what the Node entry asks for).
const backends = factories.flatMap((f) => [
  { ...f, label: f.name, options: {} as LogOptions },
  { ...f, label: `${f.name}, shared record buffers`, options: { sharedRecordBuffers: true } as LogOptions },
])

describe.each(backends)('Log on $label', (backend) => {
  let dbs: Db[]
  let logs: Log[]

  async function openLog(db = backend.create(), options = {}): Promise<Log> {
    if (!dbs.includes(db)) dbs.push(db)
    const log = signingAdds(new Log(db, { ...backend.options, ...options }))
    logs.push(log)
    await log.open()
    return log
  }

  beforeEach(() => {
    dbs = []
    logs = []
  })
  afterEach(async () => {
    for (const l of logs) await l.close()
    for (const db of dbs) if (db.status === 'open') await db.close()
  })

  it('appends chained nodes: seq 1..n, each linking the previous, heads and clock follow', async () => {
    const log = await openLog()
    expect(log.writer.length).toBe(16)
    expect(log.writerId).toBe(toHex(log.writer))
    expect(log.length).toBe(0)
    expect(log.heads()).toEqual([])

    const a = await log.append(enc('a'))
    const b = await log.append(enc('b'))
    expect([a.seq, b.seq, a.change, b.change]).toEqual([1, 2, 1, 2])
    expect(a.links).toEqual([])
    expect(b.links.map(toHex)).toEqual([toHex(a.key)])
    expect(toHex(b.key)).toBe(toHex(sha256(b.bytes)))
    expect(new TextDecoder().decode(b.value)).toBe('b')
    expect(decodeNode(b.bytes).seq).toBe(2)
    expect(log.heads().map(toHex)).toEqual([toHex(b.key)])
    expect(log.clock()).toEqual(new Map([[log.writerId, 2]]))
    expect(log.length).toBe(2)

    const got = await log.get(a.key)
    expect(got && toHex(got.bytes)).toBe(toHex(a.bytes))
    expect(got?.change).toBe(1)
    expect(await log.has(b.key)).toBe(true)
    expect(await log.has(new Uint8Array(32))).toBe(false)
    expect(await log.get(new Uint8Array(32))).toBeUndefined()
  })

  it('refuses bad arguments with INVALID_ARGUMENT', async () => {
    const log = await openLog()
    await expectCode(log.append('x' as any), ErrorCodes.INVALID_ARGUMENT)
    await expectCode(log.get(new Uint8Array(31)), ErrorCodes.INVALID_ARGUMENT)
    await expectCode(log.has('k' as any), ErrorCodes.INVALID_ARGUMENT)
    expect(() => log.read({ since: -1 })).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    expect(log.length).toBe(0)
    for (const options of [{ maxBatch: 0 }, { recentKeys: -1 }, { liveBuffer: 0 }, { hash: 'sha256' }, { sharedRecordBuffers: 'yes' }]) {
      // On the open test db: a new classic-level would open itself while its directory is removed.
      expect(() => new Log(dbs[0], options as any), JSON.stringify(options)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    }
  })

  it.skipIf(backend.appFacing === false)('shares the db politely: app keys stay untouched, the log lives in its sublevel', async () => {
    const db = backend.create()
    await db.open()
    await db.put('app-key', 'app-value')
    const log = await openLog(db)
    await log.append(enc('x'))
    expect(await db.get('app-key')).toBe('app-value')
    const keys = await db.keys().all()
    expect(keys.filter((k: string) => !k.startsWith('!hyperemitter!'))).toEqual(['app-key'])
  })

  it.skipIf(backend.appFacing === false)('works inside a sublevel the app hands over', async () => {
    const db = backend.create()
    dbs.push(db)
    await db.open()
    const appSub = db.sublevel('app')
    const log = await openLog(appSub)
    const a = await log.append(enc('x'))
    await log.append(enc('y'))
    const keys = await db.keys().all()
    expect(keys.length).toBeGreaterThan(0)
    expect(keys.every((k: string) => k.startsWith('!app!!hyperemitter!'))).toBe(true)
    await log.close()
    const again = await openLog(appSub)
    expect(again.writerId).toBe(log.writerId)
    expect((await again.get(a.key))?.change).toBe(1)
    expect((await all(again.read())).map((e) => e.seq)).toEqual([1, 2])
  })

  it('stores a foreign node once: a duplicate add resolves to null', async () => {
    const a = await openLog()
    const b = await openLog()
    const e = await a.append(enc('one'))
    const first = await b.add(e.bytes, 'peer')
    expect(first?.seq).toBe(1)
    expect(toHex(first!.key)).toBe(toHex(e.key))
    expect(await b.add(e.bytes)).toBeNull()
    expect(await b.addMany([e.bytes, e.bytes])).toEqual([])
    expect(b.length).toBe(1)
    expect((await all(b.read())).length).toBe(1)
    expect(b.clock().get(a.writerId)).toBe(1)
    expect(b.heads().map(toHex)).toEqual([toHex(e.key)])
  })

  it('re-encodes foreign bytes canonically: another encoding of the same node is no second node', async () => {
    const b = await openLog()
    const writer = randomWriter()
    const n1 = foreign(writer, 1, [])
    const fields = decodeNode(n1.bytes)
    // Same content, non-canonical: fields reversed, an unknown field, a padded seq varint.
    const parts = [
      Uint8Array.of(0x22, fields.value.length, ...fields.value),
      Uint8Array.of(0x10, 0x81, 0x00),
      Uint8Array.of(0x0a, 16, ...fields.writer),
      Uint8Array.of(0x78, 0x05), // field 15, varint: unknown
    ]
    const odd = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let at = 0
    for (const p of parts) {
      odd.set(p, at)
      at += p.length
    }
    expect(toHex(odd)).not.toBe(toHex(n1.bytes))

    const stored = await b.add(odd)
    expect(toHex(stored!.bytes)).toBe(toHex(n1.bytes))
    expect(toHex(stored!.key)).toBe(toHex(n1.key))
    expect(await b.add(n1.bytes)).toBeNull()
    expect(await b.add(odd)).toBeNull()
    expect(b.length).toBe(1)
    const got = await b.get(n1.key)
    expect(toHex(got!.bytes)).toBe(toHex(n1.bytes))
  })

  it('works on its own copy of added nodes: a caller reusing its buffer at once changes nothing stored', async () => {
    const log = await openLog()
    const w = randomWriter()
    const first = foreign(w, 1, [])
    const second = foreign(w, 2, [first.key])
    const buffers = [first.bytes.slice(), second.bytes.slice()]
    const adding = log.addMany(buffers, undefined, { signatures: await signaturesFor(buffers) })
    for (const b of buffers) b.fill(0)
    const stored = await adding
    expect(stored.map((e) => toHex(e.key))).toEqual([toHex(first.key), toHex(second.key)])
    expect(equalBytes(stored[1].bytes, second.bytes)).toBe(true)
    expect(stored[1].links.map(toHex)).toEqual([toHex(first.key)])
    expect(equalBytes((await log.get(second.key))!.bytes, second.bytes)).toBe(true)
  })

  it('keeps nodes handed over with { owned: true } as they are, without a copy, and stores the same', async () => {
    const log = await openLog()
    const w = randomWriter()
    const first = foreign(w, 1, [])
    const second = foreign(w, 2, [first.key])
    const frame = new Uint8Array(first.bytes.length + second.bytes.length)
    frame.set(first.bytes)
    frame.set(second.bytes, first.bytes.length)
    const nodes = [frame.subarray(0, first.bytes.length), frame.subarray(first.bytes.length)]
    const stored = await log.addMany(nodes, undefined, { owned: true })
    expect(stored.map((e) => e.bytes.buffer === frame.buffer)).toEqual([true, true])
    expect(stored[1].links.map(toHex)).toEqual([toHex(first.key)])
    expect(equalBytes((await log.get(second.key))!.bytes, second.bytes)).toBe(true)
  })

  it('refuses tampered nodes and stores nothing of them', async () => {
    const a = await openLog()
    const b = await openLog()
    const e1 = await a.append(enc('one'))
    const e2 = await a.append(enc('two'))
    await b.add(e1.bytes)

    // Truncated or garbled encodings.
    await expectCode(b.add(e2.bytes.subarray(0, e2.bytes.length - 1)), ErrorCodes.INVALID_NODE)
    await expectCode(b.add(Uint8Array.of(0xff, 0xff, 0xff)), ErrorCodes.INVALID_NODE)
    const shortWriter = encodeNode({ writer: new Uint8Array(15), seq: 2, links: [e1.key], value: enc('x') })
    await expectCode(b.add(shortWriter), ErrorCodes.INVALID_NODE)
    const shortLink = encodeNode({ writer: a.writer, seq: 2, links: [e1.key.subarray(0, 31)], value: enc('x') })
    await expectCode(b.add(shortLink), ErrorCodes.INVALID_NODE)
    await expectCode(b.add(encodeNode({ writer: a.writer, seq: 0, links: [], value: enc('x') })), ErrorCodes.INVALID_NODE)

    // A flipped bit inside a link points at a node nobody has.
    const flippedLink = e2.bytes.slice()
    flippedLink[flippedLink.length - e2.value.length - 5] ^= 1
    await expectCode(b.add(flippedLink), ErrorCodes.MISSING_LINK)

    // A changed value is a different node under the same (writer, seq) once seq 2 is held: a fork.
    await b.add(e2.bytes)
    const otherValue = e2.bytes.slice()
    otherValue[otherValue.length - 1] ^= 1
    await expectCode(b.add(otherValue), ErrorCodes.SEQ_MISMATCH)

    expect(b.length).toBe(2)
    expect((await all(b.read())).map((e) => toHex(e.key))).toEqual([toHex(e1.key), toHex(e2.key)])
    expect(await b.has(sha256(flippedLink))).toBe(false)
    expect(await b.has(sha256(otherValue))).toBe(false)
  })

  it("covers a writer's earlier nodes through other writers' nodes between them", async () => {
    const log = await openLog()
    const [w1, w2] = [randomWriter(), randomWriter()]
    const a1 = foreign(w1, 1, [])
    const b1 = foreign(w2, 1, [a1.key])
    const a2 = foreign(w1, 2, [b1.key])
    // a1 is in a2's past only through b1, another writer's node.
    expect((await log.addMany([a1.bytes, b1.bytes, a2.bytes])).map((e) => e.seq)).toEqual([1, 1, 2])
    expect(log.clock()).toEqual(new Map([[toHex(w1), 2], [toHex(w2), 1]]))
  })

  it('refuses missing links, seq gaps, forks and own-writer forgeries, storing nothing', async () => {
    const log = await openLog()
    const w = randomWriter()
    const n1 = foreign(w, 1, [])
    const n2 = foreign(w, 2, [n1.key])
    const n3 = foreign(w, 3, [n2.key])
    const unknown = sha256(enc('nobody has this'))

    await expectCode(log.addMany([n1.bytes, foreign(w, 2, [n1.key, unknown]).bytes]), ErrorCodes.MISSING_LINK)
    await expectCode(log.add(n2.bytes), ErrorCodes.SEQ_MISMATCH) // seq gap (seq is checked before links)
    await expectCode(log.add(foreign(w, 1, [unknown]).bytes), ErrorCodes.MISSING_LINK)
    await expectCode(log.addMany([n1.bytes, foreign(w, 3, [n1.key]).bytes]), ErrorCodes.SEQ_MISMATCH) // gap
    // Out of order: the signature over the last node cannot cover the one before.
    await expectCode(log.addMany([n2.bytes, n1.bytes]), ErrorCodes.BAD_SIGNATURE)
    // Two of the writer's nodes at seq 2: the signature over the last covers only the chain it ends.
    await expectCode(log.addMany([n1.bytes, foreign(w, 2, [n1.key], enc('sibling')).bytes, foreign(w, 2, [n1.key]).bytes]), ErrorCodes.BAD_SIGNATURE)
    expect(log.length).toBe(0)
    expect(await log.has(n1.key)).toBe(false)
    expect(log.clock().size).toBe(0)

    expect((await log.addMany([n1.bytes, n2.bytes])).length).toBe(2)
    const fork = foreign(w, 2, [n1.key], enc('other'))
    await expectCode(log.add(fork.bytes), ErrorCodes.SEQ_MISMATCH)

    // Nobody else may write as us: neither the next seq nor an old one, unsigned
    // or signed by another key claiming ours.
    const mine = await log.append(enc('mine'))
    const impostor = await testWriter()
    for (const forged of [foreign(log.writer, 2, [mine.key]).bytes, foreign(log.writer, 1, []).bytes]) {
      await expectCode(log.addMany([forged], undefined, { signatures: [] }), ErrorCodes.BAD_SIGNATURE)
      const claimed = { ...(await signatureOver(impostor, forged)), writer: log.writer }
      await expectCode(log.addMany([forged], undefined, { signatures: [claimed] }), ErrorCodes.BAD_SIGNATURE)
      await expectCode(log.addMany([forged], undefined, { signatures: [{ ...claimed, key: undefined }] }), ErrorCodes.BAD_SIGNATURE)
    }
    // ...but an echo of our own node is a harmless duplicate.
    expect(await log.add(mine.bytes)).toBeNull()
    // A different node at our seq 1, signed with our key (a copy of this db wrote it): a fork.
    await expectCode(log.add(foreign(log.writer, 1, [], enc('the copy')).bytes), ErrorCodes.SEQ_MISMATCH)

    expect(log.length).toBe(3)
    expect(log.clock()).toEqual(new Map([[toHex(w), 2], [log.writerId, 1]]))
    expect(await log.has(fork.key)).toBe(false)
    // The log stays healthy.
    expect((await log.append(enc('after'))).seq).toBe(2)
    // Our next node, signed with our key by a copy of this db, is ours: our chain goes on after it.
    const fromCopy = foreign(log.writer, 3, log.heads())
    expect((await log.add(fromCopy.bytes))?.seq).toBe(3)
    expect(log.clock().get(log.writerId)).toBe(3)
    const next = await log.append(enc('after the copy'))
    expect(next.seq).toBe(4)
    expect(next.links.map(toHex)).toEqual([toHex(fromCopy.key)])
  })

  it('accepts links to nodes stored long ago (beyond the recent-key cache) via the db', async () => {
    const a = await openLog(undefined, { recentKeys: 2 })
    const b = await openLog(undefined, { recentKeys: 2 })
    const old = await a.append(enc('old'))
    await sync(a, b)
    for (let i = 0; i < 5; i++) await b.append(enc(`b${i}`))
    // A node of a's linking only `old`, which b has long evicted from its cache.
    const w = randomWriter()
    const n = foreign(w, 1, [old.key])
    expect((await b.add(n.bytes))?.links.map(toHex)).toEqual([toHex(old.key)])
    expect(await b.has(old.key)).toBe(true)
    // Duplicates are recognised through the db too, not taken for forks.
    expect(await b.add(old.bytes)).toBeNull()
    expect(await b.addMany([old.bytes, n.bytes])).toEqual([])
    expect(b.length).toBe(7)
  })

  it('keeps heads as the sorted set of nodes nobody links to', async () => {
    const a = await openLog()
    const b = await openLog()
    const c = await openLog()
    await a.append(enc('a1'))
    await b.append(enc('b1'))
    await c.append(enc('c1'))
    await sync(a, c)
    await sync(b, c)
    const heads = c.heads()
    expect(heads.length).toBe(3)
    expect([...heads].sort(compareBytes).map(toHex)).toEqual(heads.map(toHex))
    const merged = await c.append(enc('c2'))
    expect(merged.links.map(toHex)).toEqual(heads.map(toHex))
    expect(c.heads().map(toHex)).toEqual([toHex(merged.key)])
  })

  it('links at most MAX_LINKS_PER_APPEND heads: the rest stay heads, the next appends link them, and reopen keeps them', async () => {
    let db = backend.create()
    let log = await openLog(db)
    // A new Log over the same stored data, and the db it is on.
    const reopen = async () => {
      await log.close()
      const again = backend.reopen(db)
      if (again !== undefined) await db.close()
      db = again ?? db
      log = await openLog(db)
    }
    const extra = 8
    // Writers of its own (the shared pool is sized for the other tests).
    const writers = await Promise.all(Array.from({ length: MAX_LINKS_PER_APPEND + extra }, () => testWriter()))
    for (const w of writers) registerSigner(w)
    await log.addMany(writers.map((w) => foreign(w.writer, 1, []).bytes))
    const heads = log.heads().map(toHex)
    expect(heads.length).toBe(MAX_LINKS_PER_APPEND + extra)
    const first = await log.append(enc('first'))
    expect(first.links.map(toHex)).toEqual(heads.slice(0, MAX_LINKS_PER_APPEND))
    const left = [...heads.slice(MAX_LINKS_PER_APPEND), toHex(first.key)].sort()
    expect(log.heads().map(toHex)).toEqual(left)
    // Several heads after a batch of appends alone: the heads record must say so.
    await reopen()
    expect(log.heads().map(toHex)).toEqual(left)
    const second = await log.append(enc('second'))
    expect(second.links.map(toHex)).toEqual(left)
    expect(log.heads().map(toHex)).toEqual([toHex(second.key)])
    await reopen()
    expect(log.heads().map(toHex)).toEqual([toHex(second.key)])
    // What a peer receives of it verifies: every link is held, in topological order.
    const peer = await openLog()
    expect((await sync(log, peer)).length).toBe(MAX_LINKS_PER_APPEND + extra + 2)
    expect(peer.heads().map(toHex)).toEqual([toHex(second.key)])
  })

  it('reads in topological order: every node after all it links to', async () => {
    const peers = [await openLog(), await openLog(), await openLog()]
    for (let round = 0; round < 6; round++) {
      for (const [i, p] of peers.entries()) for (let k = 0; k <= (round + i) % 3; k++) await p.append(enc(`${i}:${round}:${k}`))
      await sync(peers[round % 3], peers[(round + 1) % 3])
      await sync(peers[(round + 2) % 3], peers[round % 3])
    }
    for (const p of peers) {
      const seen = new Map<string, number>()
      const entries = await all(p.read())
      expect(entries.map((e) => e.change)).toEqual(entries.map((_, i) => i + 1))
      for (const e of entries) {
        for (const l of e.links) expect(seen.get(toHex(l)), 'link stored earlier').toBeLessThan(e.change)
        seen.set(toHex(e.key), e.change)
      }
    }
  })

  it('a failing batch stores nothing, moves no counter, and the log keeps working', async () => {
    const db = backend.create()
    const spy = spyBatch(db)
    const log = await openLog(db)
    await log.append(enc('before'))
    const length = log.length
    const heads = log.heads().map(toHex)

    spy.failNext = 1
    const results = await Promise.allSettled([log.append(enc('x')), log.append(enc('y'))])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    const errors = results.map((r) => (r as PromiseRejectedResult).reason)
    expect(errors.map((e) => e.code)).toEqual([ErrorCodes.STORAGE_FAILED, ErrorCodes.STORAGE_FAILED])
    expect(errors[0]).not.toBe(errors[1])
    expect(errors[0].cause.message).toBe('injected batch failure')

    expect(log.length).toBe(length)
    expect(log.heads().map(toHex)).toEqual(heads)
    expect(log.clock().get(log.writerId)).toBe(1)
    expect((await all(log.read())).length).toBe(1)

    const next = await log.append(enc('after'))
    expect(next.seq).toBe(2)
    expect(next.change).toBe(2)
    expect(next.links.map(toHex)).toEqual(heads)
  })

  it('an addMany with one bad node in the middle stores none of it; grouped appends still commit', async () => {
    const db = backend.create()
    const spy = spyBatch(db)
    const log = await openLog(db)
    const w = randomWriter()
    const n1 = foreign(w, 1, [])
    const bad = foreign(w, 2, [n1.key, sha256(enc('missing'))])
    const n3 = foreign(w, 3, [bad.key])
    const calls = spy.calls
    // Signed ahead: everything must be queued in one turn.
    const manyNodes = [n1.bytes, bad.bytes, n3.bytes]
    const goodNodes = [foreign(randomWriter(), 1, []).bytes]
    const [signedMany, signedGood] = [{ signatures: await signaturesFor(manyNodes) }, { signatures: await signaturesFor(goodNodes) }]

    const appends = [log.append(enc('a')), log.append(enc('b'))]
    const many = log.addMany(manyNodes, 'peer', signedMany)
    const more = log.append(enc('c'))
    const good = log.addMany(goodNodes, 'peer2', signedGood)
    await expectCode(many, ErrorCodes.MISSING_LINK)
    const ok = await Promise.all([...appends, more])
    expect(ok.map((e) => e.seq)).toEqual([1, 2, 3])
    expect((await good).length).toBe(1)
    expect(spy.calls - calls).toBe(1) // all of it went in one batch

    expect(await log.has(n1.key)).toBe(false)
    expect(log.clock().has(toHex(w))).toBe(false)
    expect(log.length).toBe(4)
  })

  it('group-commits 10k un-awaited appends: all resolve, seq 1..10k, chained, few batches', async () => {
    const db = backend.create()
    const spy = spyBatch(db)
    const log = await openLog(db)
    const calls = spy.calls
    const N = 10_000
    const pending: Promise<LogEntry>[] = []
    for (let i = 0; i < N; i++) pending.push(log.append(enc(`e${i}`)))
    const entries = await Promise.all(pending)
    const batches = spy.calls - calls
    expect(batches).toBeLessThanOrEqual(Math.ceil(N / 1000) + 1)
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1))
    // Plain checks in the loop, one assertion after: expect() per entry costs seconds here.
    const unchained = entries.filter((e, i) => i > 0 && (e.links.length !== 1 || !equalBytes(e.links[0], entries[i - 1].key)))
    expect(unchained.map((e) => e.seq)).toEqual([])
    expect(entries[0].links).toEqual([])
    expect(log.length).toBe(N)
    expect(log.heads().map(toHex)).toEqual([toHex(entries[N - 1].key)])
  })

  it('lets the event loop turn during a long backlog: a timer set before it fires before its last append resolves', async () => {
    // memory-level settles in microtasks: without turns, sockets and timers
    // would wait for the whole backlog (~50 batches here, far over a slice).
    const log = await openLog()
    const N = 50_000
    let resolved = 0
    let resolvedWhenTimerFired = -1
    setTimeout(() => (resolvedWhenTimerFired = resolved), 0)
    const pending: Promise<unknown>[] = []
    for (let i = 0; i < N; i++) pending.push(log.append(enc(`e${i}`)).then(() => resolved++))
    await Promise.all(pending)
    expect(resolvedWhenTimerFired).toBeGreaterThanOrEqual(0)
    expect(resolvedWhenTimerFired).toBeLessThan(N)
  })

  it('appendAll stores its values as consecutive nodes in one batch, tells the sink once, and refuses bad arguments', async () => {
    const db = backend.create()
    const spy = spyBatch(db)
    const log = await openLog(db)
    await log.append(enc('first'))
    const calls = spy.calls
    const told: Array<['appended', LogEntry] | ['failed', unknown]> = []
    const sink = { appended: (last: LogEntry) => told.push(['appended', last]), failed: (err: unknown) => told.push(['failed', err]) }
    log.appendAll([enc('a'), enc('b'), enc('c')], sink)
    await log.append(enc('after'))
    expect(told).toHaveLength(1)
    expect(told[0][0]).toBe('appended')
    expect((told[0][1] as LogEntry).seq).toBe(4)
    const values = (await all(log.read())).map((e) => new TextDecoder().decode(e.value))
    expect(values).toEqual(['first', 'a', 'b', 'c', 'after'])
    // The group and the append queued behind it went in one batch.
    expect(spy.calls - calls).toBe(1)

    // Values packed into one buffer are appended the same way.
    const packed = new PackedBytes()
    for (const v of ['p1', 'p2']) {
      // reserve() may replace the buffer: read it after.
      const at = packed.reserve(enc(v).length)
      packed.buffer.set(enc(v), at)
    }
    await new Promise<LogEntry>((resolve, reject) => log.appendAll(packed, { appended: resolve, failed: reject }))
    expect((await all(log.read({ since: 5 }))).map((e) => new TextDecoder().decode(e.value))).toEqual(['p1', 'p2'])

    for (const bad of [[], ['x'], [enc('ok'), 7], 'x', new PackedBytes()]) {
      const refused: unknown[] = []
      log.appendAll(bad as any, { appended: () => refused.push('appended'), failed: (err) => refused.push(err) })
      expect(refused).toEqual([expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT })])
    }
    expect(log.length).toBe(7)
  })

  it('a failing batch fails every appendAll in it, each with its own error, and stores none of their values', async () => {
    const db = backend.create()
    const spy = spyBatch(db)
    const log = await openLog(db)
    spy.failNext = 1
    const errors: unknown[] = []
    const sink = { appended: () => errors.push('appended'), failed: (err: unknown) => errors.push(err) }
    log.appendAll([enc('a'), enc('b')], sink)
    log.appendAll([enc('c')], sink)
    await expectCode(log.append(enc('d')), ErrorCodes.STORAGE_FAILED)
    expect(errors).toEqual([expect.objectContaining({ code: ErrorCodes.STORAGE_FAILED }), expect.objectContaining({ code: ErrorCodes.STORAGE_FAILED })])
    expect(errors[0]).not.toBe(errors[1])
    expect(log.length).toBe(0)
    expect((await log.append(enc('e'))).seq).toBe(1)
  })

  it('builds the appends queued next while a batch is written, and builds them again on what the log holds when that batch fails', async () => {
    const db = backend.create()
    const spy = spyBatch(db)
    let hashes = 0
    const log = await openLog(db, { maxBatch: 2, hash: (b: Uint8Array) => (hashes++, sha256(b)) })
    const a = await log.append(enc('a'))
    const told: string[] = []
    const sink = (name: string) => ({ appended: (e: LogEntry) => told.push(`${name} ${e.seq}`), failed: () => told.push(`${name} failed`) })
    // Three batches of two (maxBatch): the first written is refused.
    spy.failNext = 1
    hashes = 0
    log.appendAll([enc('x1'), enc('x2')], sink('x'))
    log.appendAll([enc('y1'), enc('y2')], sink('y'))
    const last = await log.append(enc('z'))
    expect(told).toEqual(['x failed', 'y 3'])
    // y was built ahead on x (two hashes), then again on `a` (two more).
    expect(hashes).toBe(2 + 2 + 2 + 1)
    const stored = await all(log.read())
    expect(stored.map((e) => new TextDecoder().decode(e.value))).toEqual(['a', 'y1', 'y2', 'z'])
    expect(stored[1].links.map(toHex)).toEqual([toHex(a.key)])
    expect(last.links.map(toHex)).toEqual([toHex(stored[2].key)])
    expect(stored.map((e) => e.seq)).toEqual([1, 2, 3, 4])
  })

  it('lets go of a settled append while appends queued with it still wait', async () => {
    // A burst queues many requests, and the queue may still hold settled
    // ones: the entry of one must not stay reachable through it (the entry's
    // view holds its whole chunk buffer; a burst of 100k kept ~18 MB).
    const db = backend.create()
    const log = await openLog(db, { maxBatch: 1 })
    const original = db.batch.bind(db)
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let batches = 0
    ;(db as any).batch = async (...args: unknown[]) => {
      // The first batch goes through; the rest wait, so the queue stays long.
      if (batches++ > 0) await released
      return (original as any)(...args)
    }
    let first: WeakRef<LogEntry> | undefined
    const firstSettled = new Promise<void>((resolve, reject) =>
      log.appendAll([enc('first')], { appended: (e) => ((first = new WeakRef(e)), resolve()), failed: reject }),
    )
    const later: Promise<unknown>[] = []
    for (let i = 0; i < 8; i++) later.push(new Promise((resolve, reject) => log.appendAll([enc(`later ${i}`)], { appended: resolve, failed: reject })))
    try {
      await firstSettled
      await collectGarbage()
      expect(first!.deref()).toBeUndefined()
    } finally {
      release()
    }
    await Promise.all(later)
    expect(log.length).toBe(9)
  })

  it('fires onChange after commit, before the promises resolve, once per origin run', async () => {
    const a = await openLog()
    const b = await openLog()
    const c = await openLog()
    await a.append(enc('a1'))
    await c.append(enc('c1'))
    const fromA = await missingBytes(a, b)
    const fromC = await missingBytes(c, b)
    // Signed ahead: all four requests must be queued in one turn.
    const [signedA, signedC] = [{ signatures: await signaturesFor(fromA) }, { signatures: await signaturesFor(fromC) }]

    const calls: { origin: unknown; changes: number[]; length: number }[] = []
    const off = b.onChange((entries, origin) => calls.push({ origin, changes: entries.map((e) => e.change), length: b.length }))
    let resolvedBeforeListener = false
    const p1 = b.append(enc('x')).then(() => {
      resolvedBeforeListener = calls.length === 0
    })
    const p2 = b.addMany(fromA, 'A', signedA)
    const p3 = b.addMany(fromC, 'C', signedC)
    const p4 = b.append(enc('y'))
    await Promise.all([p1, p2, p3, p4])
    expect(resolvedBeforeListener).toBe(false)
    expect(calls).toEqual([
      { origin: undefined, changes: [1], length: 4 },
      { origin: 'A', changes: [2], length: 4 },
      { origin: 'C', changes: [3], length: 4 },
      { origin: undefined, changes: [4], length: 4 },
    ])
    off()
    await b.append(enc('z'))
    expect(calls.length).toBe(4)
  })

  it('read({since, limit}) pages the change index', async () => {
    const log = await openLog()
    for (let i = 0; i < 1200; i++) void log.append(enc(`e${i}`))
    await log.append(enc('last'))
    expect((await all(log.read())).map((e) => e.change)).toEqual(Array.from({ length: 1201 }, (_, i) => i + 1))
    expect((await all(log.read({ since: 1000, limit: 3 }))).map((e) => e.change)).toEqual([1001, 1002, 1003])
    expect((await all(log.read({ since: 1199 }))).map((e) => e.seq)).toEqual([1200, 1201])
    expect(await all(log.read({ since: 5000 }))).toEqual([])
    expect(await all(log.read({ limit: 0 }))).toEqual([])
  })

  it('read({live}) sees every later append exactly once, in order, and ends when the log closes', async () => {
    const log = await openLog()
    for (let i = 0; i < 700; i++) void log.append(enc(`h${i}`))
    const reader = log.read({ live: true, since: 0 })
    const total = 700 + 20 * 50 + 1
    const seen: number[] = []
    let caughtUp!: () => void
    const reachedEnd = new Promise<void>((resolve) => (caughtUp = resolve))
    // Consume concurrently with appends that straddle the historical/live boundary.
    const consumer = (async () => {
      for await (const e of reader) {
        seen.push(e.change)
        if (e.change >= total) caughtUp()
      }
    })()
    for (let round = 0; round < 20; round++) {
      const batch: Promise<LogEntry>[] = []
      for (let i = 0; i < 50; i++) batch.push(log.append(enc(`l${round}:${i}`)))
      if (round % 2 === 0) await Promise.all(batch)
    }
    await log.append(enc('final'))
    expect(log.length).toBe(total)
    await reachedEnd
    // The reader now waits for more; closing the log ends it.
    await log.close()
    await consumer
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1))
  }, LIVE_TIMEOUT)

  it('a live reader ends when the consumer breaks or calls return()', async () => {
    const log = await openLog()
    await log.append(enc('one'))
    const seen: number[] = []
    for await (const e of log.read({ live: true })) {
      seen.push(e.change)
      if (seen.length === 2) break
      void log.append(enc('two'))
    }
    expect(seen).toEqual([1, 2])
    // A start beyond the end waits (without spinning) for that change number.
    const ahead = log.read({ live: true, since: 4 })
    const fifth = ahead.next()
    for (let i = 0; i < 3; i++) await log.append(enc(`more${i}`))
    expect((await fifth).value?.change).toBe(5)
    await ahead.return!()
    const it2 = log.read({ live: true, since: 5 })
    const pending = it2.next()
    await it2.return!()
    expect(await pending).toEqual({ value: undefined, done: true })
    expect(await it2.next()).toEqual({ value: undefined, done: true })
  }, LIVE_TIMEOUT)

  it('a live reader that falls far behind catches up from the db without loss', async () => {
    const log = await openLog(undefined, { liveBuffer: 100 })
    const reader = log.read({ live: true })
    await log.append(enc('first'))
    expect((await reader.next()).value?.change).toBe(1)
    // 1200 entries arrive while the consumer sleeps: far more than its buffer holds.
    const pending: Promise<LogEntry>[] = []
    for (let i = 0; i < 1200; i++) pending.push(log.append(enc(`x${i}`)))
    await Promise.all(pending)
    const changes: number[] = []
    while (changes.length < 1200) {
      const r = await reader.next()
      if (r.done) break
      changes.push(r.value.change)
    }
    expect(changes).toEqual(Array.from({ length: 1200 }, (_, i) => i + 2))
    // Caught up, it is live again.
    const next = reader.next()
    await log.append(enc('later'))
    expect((await next).value?.change).toBe(1202)
    await reader.return!()
  }, LIVE_TIMEOUT)

  it('readMissing returns exactly what the remote lacks, in change order, for several writers', async () => {
    const a = await openLog()
    const b = await openLog()
    const c = await openLog()
    const hub = await openLog()
    for (let round = 0; round < 5; round++) {
      for (const [i, p] of [a, b, c].entries()) {
        for (let k = 0; k < 3 + i; k++) await p.append(enc(`${i}:${round}:${k}`))
        await sync(p, hub)
        await sync(hub, p)
      }
    }
    const everything = await all(hub.read())
    const check = async (remote: Clock) => {
      const expected = everything.filter((e) => e.seq > (remote.get(toHex(e.writer)) ?? 0)).map((e) => e.change)
      const got = await all(readMissing(hub, remote))
      expect(got.map((e) => e.change)).toEqual(expected)
      for (const e of got) expect(toHex(e.key)).toBe(toHex(sha256(e.bytes)))
      // The same entries a page at a time, no page empty.
      const pages = await all(hub.readMissingPages(remote))
      expect(pages.every((page) => page.length > 0)).toBe(true)
      expect(pages.flat().map((e) => e.change)).toEqual(expected)
    }
    const full = hub.clock()
    const nearly = new Map([...full].map(([w, s]) => [w, Math.max(0, s - 2)]))
    await check(new Map()) // scan path
    await check(full) // nothing
    await check(nearly) // writer-index path
    await check(new Map([[a.writerId, 7]])) // one writer partly known, the others not
    await check(new Map([[b.writerId, 1000], ['00'.repeat(16), 3], [hub.writerId, 0]]))
    expect(await all(readMissing(hub, full))).toEqual([])
  })

  it('readMissing pages large per-writer ranges through the writer index', async () => {
    const a = await openLog()
    const b = await openLog()
    const pa: Promise<LogEntry>[] = []
    for (let i = 0; i < 1200; i++) pa.push(a.append(enc(`a${i}`)))
    await Promise.all(pa)
    await b.addMany(await missingBytes(a, b))
    const pb: Promise<LogEntry>[] = []
    for (let i = 0; i < 1100; i++) pb.push(b.append(enc(`b${i}`)))
    await Promise.all(pb)
    // The remote lacks 1100 of a's (more than one page) and 10 of b's: under
    // half the log, so the writer-index path.
    const remote = new Map([[a.writerId, 100], [b.writerId, 1090]])
    const got = await all(readMissing(b, remote))
    expect(got.length).toBe(1110)
    const pages = await all(b.readMissingPages(remote))
    expect(pages.length).toBeGreaterThan(1)
    expect(pages.flat().map((e) => e.change)).toEqual(got.map((e) => e.change))
    expect(got.map((e) => e.change)).toEqual([...Array.from({ length: 1100 }, (_, i) => 101 + i), ...Array.from({ length: 10 }, (_, i) => 2291 + i)])
  })

  it('restores writer id, clock, heads and length on reopen, and continues the sequence', async () => {
    const db = backend.create()
    const log = await openLog(db)
    const other = await openLog()
    await other.append(enc('o1'))
    await log.append(enc('1'))
    await sync(other, log)
    await log.append(enc('2'))
    await other.append(enc('o2'))
    await sync(other, log)
    const before = { writer: log.writerId, clock: log.clock(), heads: log.heads().map(toHex), length: log.length }
    await log.close()
    await expectCode(log.append(enc('late')), ErrorCodes.CLOSED)
    await expectCode(log.addMany([]), ErrorCodes.CLOSED)

    let db2 = backend.reopen(db)
    if (db2 === undefined) {
      db2 = db // memory-level: a new Log over the same open db
    } else {
      await db.close()
    }
    const again = await openLog(db2)
    expect({ writer: again.writerId, clock: again.clock(), heads: again.heads().map(toHex), length: again.length }).toEqual(before)
    const next = await again.append(enc('3'))
    expect(next.seq).toBe(3)
    expect(next.change).toBe(before.length + 1)
    expect(next.links.map(toHex)).toEqual(before.heads)
    expect((await all(again.read())).length).toBe(before.length + 1)
  })

  /** A new Log over the same stored data (a new db handle where the backend can make one). */
  async function reopenLog(log: Log, db: Db): Promise<Log> {
    await log.close()
    const again = backend.reopen(db)
    if (again === undefined) return openLog(db)
    await db.close()
    return openLog(again)
  }

  it('packs batches into chunks: a big addMany spans chunks, and every node reads back, by change and by key, after reopen', async () => {
    const db = backend.create()
    const log = await openLog(db)
    const w = randomWriter()
    const nodes: ReturnType<typeof foreign>[] = []
    for (let seq = 1; seq <= 2500; seq++) nodes.push(foreign(w, seq, seq === 1 ? [] : [nodes[seq - 2].key]))
    // One request bigger than a chunk (1024 nodes) goes whole, as three chunks.
    expect((await log.addMany(nodes.map((n) => n.bytes))).length).toBe(2500)
    for (let i = 0; i < 5; i++) await log.append(enc(`own${i}`))
    const before = { clock: log.clock(), heads: log.heads().map(toHex), length: log.length }

    const again = await reopenLog(log, db)
    expect({ clock: again.clock(), heads: again.heads().map(toHex), length: again.length }).toEqual(before)
    const read = await all(again.read())
    expect(read.map((e) => e.change)).toEqual(Array.from({ length: 2505 }, (_, i) => i + 1))
    expect(read.slice(0, 2500).map((e) => toHex(e.key))).toEqual(nodes.map((n) => toHex(n.key)))
    expect(read.slice(0, 2500).every((e, i) => equalBytes(e.bytes, nodes[i].bytes))).toBe(true)
    // Pages that start and end inside chunks and cross their boundaries.
    const page = await all(again.read({ since: 1020, limit: 10 }))
    expect(page.map((e) => e.change)).toEqual([1021, 1022, 1023, 1024, 1025, 1026, 1027, 1028, 1029, 1030])
    // By key, with the recent-key memory empty after reopen: through the key index.
    for (const i of [0, 1023, 1024, 2047, 2048, 2499]) {
      const e = await again.get(nodes[i].key)
      expect(e?.change).toBe(i + 1)
      expect(equalBytes(e!.bytes, nodes[i].bytes)).toBe(true)
      expect(await again.has(nodes[i].key)).toBe(true)
    }
    expect(await again.get(sha256(enc('never stored')))).toBeUndefined()
    expect(await again.has(sha256(enc('never stored')))).toBe(false)
    // Duplicates are still recognised and old links still accepted.
    expect(await again.add(nodes[7].bytes)).toBeNull()
    const other = foreign(randomWriter(), 1, [nodes[3].key])
    expect((await again.add(other.bytes))?.change).toBe(2506)
  })

  it('a batch of local appends is one record whatever its size; keys are checkpointed every ~1024; all is rebuilt at reopen', async () => {
    const db = backend.create()
    const log = await openLog(db)
    const sizes: number[] = []
    const original = db.batch.bind(db)
    ;(db as any).batch = (ops: unknown[], ...rest: unknown[]) => {
      sizes.push(ops.length)
      return (original as any)(ops, ...rest)
    }
    await log.append(enc('first'))
    await Promise.all(Array.from({ length: 500 }, (_, i) => log.append(enc(`burst${i}`))))
    for (let i = 0; i < 3; i++) await log.append(enc(`one${i}`))
    // The first batch after open starts a writer-index run (chunk + run
    // start); every later one continues it: the chunk alone.
    expect(sizes).toEqual([2, 1, 1, 1, 1])
    // The batch that brings the keys not yet checkpointed to 1024 also writes them.
    await Promise.all(Array.from({ length: 600 }, (_, i) => log.append(enc(`more${i}`))))
    expect(sizes.slice(5)).toEqual([2])
    const before = { clock: log.clock(), heads: log.heads().map(toHex), length: log.length }
    expect(before.length).toBe(1104)

    // The sparse index finds any seq, before and after reopen; heads, clock
    // and the key index are rebuilt although no heads record was ever written.
    const remote = new Map([[log.writerId, 250]])
    const expected = Array.from({ length: 854 }, (_, i) => 251 + i)
    expect((await all(readMissing(log, remote))).map((e) => e.seq)).toEqual(expected)
    const again = await reopenLog(log, db)
    expect({ clock: again.clock(), heads: again.heads().map(toHex), length: again.length }).toEqual(before)
    expect((await all(readMissing(again, remote))).map((e) => e.seq)).toEqual(expected)
    const all1104 = await all(again.read())
    for (const i of [0, 1023, 1024, 1103]) expect((await again.get(all1104[i].key))?.change).toBe(i + 1)
    const next = await again.append(enc('after reopen'))
    expect(next.links.map(toHex)).toEqual(before.heads)
    expect((await all(readMissing(again, new Map([[again.writerId, 1103]])))).map((e) => e.seq)).toEqual([1104, 1105])
  })

  it('refuses a db written in another storage format with STORAGE_FAILED, touching nothing', async () => {
    const db = backend.create()
    const sub = logRecords(db)
    const meta = new Uint8Array(17)
    meta[0] = 1
    await sub.put(Uint8Array.of(0x6d), meta)
    dbs.push(db)
    const log = new Log(db)
    const err = (await expectCode(log.open(), ErrorCodes.STORAGE_FAILED)) as Error
    expect(err.message).toMatch(/storage format 1/)
    expect([...(await sub.get(Uint8Array.of(0x6d)))!]).toEqual([...meta])
  })

  it('hands the db chunk records that own their buffers, unless shared record buffers are allowed', async () => {
    const db = backend.create()
    const records = captureChunkRecords(db)
    const log = await openLog(db)
    for (const v of ['a', 'b', 'c']) await log.append(enc(v))
    expect(records).toHaveLength(3)
    const shared = backend.options.sharedRecordBuffers === true
    for (const r of records) expect(ownsBuffer(r)).toBe(!shared)
    const read = await all(log.read({ since: 0 }))
    expect(read.map((e) => new TextDecoder().decode(e.value))).toEqual(['a', 'b', 'c'])
  })

  it('a corrupt chunk surfaces as STORAGE_FAILED from read(), and the process goes on', async () => {
    const db = backend.create()
    const log = await openLog(db)
    await Promise.all([log.append(enc('a')), log.append(enc('b'))])
    const sub = logRecords(db)
    const nodesKey = new Uint8Array(9)
    nodesKey[0] = 0x63
    nodesKey[8] = 1
    await sub.put(nodesKey, Uint8Array.of(0xff, 0xff, 0xff))
    await expectCode(all(log.read()), ErrorCodes.STORAGE_FAILED)
    await expectCode(log.get(log.heads()[0]), ErrorCodes.STORAGE_FAILED)
    expect((await log.append(enc('c'))).change).toBe(3)
  })

  it('readMissing scans chunk by chunk: a lost or corrupt chunk is STORAGE_FAILED, and stopping early leaves nothing open', async () => {
    const db = backend.create()
    const log = await openLog(db)
    // Three batches: chunks at changes 1, 4 and 7 (three nodes each).
    for (let b = 0; b < 3; b++) await Promise.all([0, 1, 2].map((i) => log.append(enc(`b${b}-${i}`))))
    const chunkKey = (first: number) => Uint8Array.of(0x63, 0, 0, 0, 0, 0, 0, 0, first)
    const sub = logRecords(db)
    expect((await all(readMissing(log, new Map()))).map((e) => e.change)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9])

    // A consumer that stops after the first entry: the scan's read-ahead and iterator end with it.
    for await (const e of readMissing(log, new Map())) {
      expect(e.change).toBe(1)
      break
    }

    const middle = await sub.get(chunkKey(4))
    await sub.del(chunkKey(4))
    const err = await expectCode(all(readMissing(log, new Map())), ErrorCodes.STORAGE_FAILED)
    expect((err as Error).message).toContain('change 4 is missing')
    await sub.put(chunkKey(4), Uint8Array.of(0xff, 0xff, 0xff))
    await expectCode(all(readMissing(log, new Map())), ErrorCodes.STORAGE_FAILED)
    await sub.put(chunkKey(4), middle!)
    expect(await all(readMissing(log, new Map()))).toHaveLength(9)
  })

  it('a node damaged at rest, read by key, is refused with CHECKSUM_MISMATCH', async () => {
    const db = backend.create()
    const log = await openLog(db)
    const [a, b] = await Promise.all([log.append(enc('a')), log.append(enc('b'))])
    const sub = logRecords(db)
    const chunkKey = new Uint8Array(9)
    chunkKey[0] = 0x63
    chunkKey[8] = 1
    const record = (await sub.get(chunkKey))!.slice()
    // The last byte is the last node's value ('b'): still a well-formed node, another content.
    record[record.length - 1] ^= 1
    await sub.put(chunkKey, record)
    const err = (await expectCode(log.get(b.key), ErrorCodes.CHECKSUM_MISMATCH)) as Error
    expect(err.message).toMatch(/no longer hashes/)
    expect((await log.get(a.key))?.change).toBe(1)
  })

  it('close() waits for queued writes and is idempotent; open() is idempotent', async () => {
    const log = await openLog()
    await log.open()
    const pending = [log.append(enc('1')), log.append(enc('2'))]
    const closing = log.close()
    await expectCode(log.append(enc('3')), ErrorCodes.CLOSED)
    await Promise.all([closing, log.close()])
    expect((await Promise.all(pending)).map((e) => e.seq)).toEqual([1, 2])
    expect(log.length).toBe(2)
    await log.close()
  })
})

describe('Log reads from the beginning', () => {
  it('fetch each chunk record about once, never the whole chunks after a page it does not use', async () => {
    const db = new MemoryLevel()
    // Records every iterator hands back, as browser-level's getAll() would fetch them.
    let rows = 0
    const makeIterator = (db as any)._iterator.bind(db)
    ;(db as any)._iterator = (options: unknown) => {
      const it = makeIterator(options)
      const nextv = it._nextv.bind(it)
      it._nextv = async (size: number, o: unknown) => {
        const got = await nextv(size, o)
        rows += got.length
        return got
      }
      return it
    }
    const log = new Log(db)
    await log.open()
    const chunks = 20
    for (let c = 0; c < chunks; c++) {
      await new Promise<void>((resolve, reject) =>
        log.appendAll(Array.from({ length: 1000 }, (_, i) => enc(`c${c} v${i}`)), { appended: () => resolve(), failed: reject }),
      )
    }
    rows = 0
    let count = 0
    for await (const entry of log.read()) expect(entry.change).toBe(++count)
    expect(count).toBe(chunks * 1000)
    // Pages are 512 nodes, chunks 1000: each chunk is fetched once, or twice where a page starts at its first node.
    expect(rows).toBeLessThanOrEqual(2 * chunks)

    // What a peer with nothing lacks comes in steps of about a page of nodes, not hundreds of chunks at once.
    let most = 0
    const counted = (db as any)._iterator
    ;(db as any)._iterator = (options: unknown) => {
      const it = counted(options)
      const nextv = it._nextv.bind(it)
      it._nextv = async (size: number, o: unknown) => {
        const got = await nextv(size, o)
        most = Math.max(most, got.length)
        return got
      }
      return it
    }
    let sent = 0
    for await (const page of log.readMissingPages(new Map())) sent += page.length
    expect(sent).toBe(chunks * 1000)
    expect(most).toBeLessThanOrEqual(2)
    await log.close()
  })
})
