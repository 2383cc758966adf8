// The Log's conformance cases as plain async functions with their own
// assertions (no test-runner API), so the same cases run in Node under vitest
// (memory-level, classic-level: test/browser-conformance.test.ts) and in
// Chromium over browser-level (IndexedDB), driven by Playwright
// (e2e/conformance.spec.ts). A backend passes only if every case passes on it.
import type { AbstractLevel } from 'abstract-level'
import { toHex } from '../src/core/bytes/bytes.js'
import { ErrorCodes, isHyperEmitterError, type ErrorCode } from '../src/core/errors.js'
import { sha256 } from '../src/core/bytes/hash.js'
import { encodeNode, Log } from '../src/core/log/log.js'
import type { LogEntry } from '../src/core/types.js'
import { fillWriterPool, poolWriter, signatureOver, signingAdds, testWriter } from './helpers/signing.js'
import { readMissing } from './helpers/missing.js'

type Db = AbstractLevel<any, any, any>

/** A database backend under test. */
export interface Backend {
  name: string
  /** A fresh, empty, unopened database. */
  create(): Db
  /** A new handle on the same storage as `db` (already closed), or undefined if the backend keeps nothing. */
  reopen(db: Db): Db | undefined
}

export interface CaseResult {
  name: string
  ok: boolean
  skipped?: boolean
  error?: string
  ms: number
}

/** Thrown for a failed assertion. */
class AssertionFailed extends Error {}

function ok(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message)
}

function equal<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual, replacer)
  const e = JSON.stringify(expected, replacer)
  if (a !== e) throw new AssertionFailed(`${what}: expected ${e}, got ${a}`)
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value].sort(([x], [y]) => (x < y ? -1 : 1)))
  if (value instanceof Uint8Array) return toHex(value)
  return value
}

async function rejects(promise: Promise<unknown>, code: ErrorCode, what: string): Promise<void> {
  let error: unknown
  try {
    await promise
  } catch (err) {
    error = err
  }
  ok(error !== undefined, `${what}: expected a rejection with ${code}, it resolved`)
  ok(isHyperEmitterError(error, code), `${what}: expected ${code}, got ${isHyperEmitterError(error) ? error.code : String(error)}`)
}

const enc = (s: string) => new TextEncoder().encode(s)

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of iterable) out.push(x)
  return out
}

function foreign(writer: Uint8Array, seq: number, links: Uint8Array[], value = enc(`v${seq}`)) {
  const bytes = encodeNode({ writer, seq, links, value })
  return { bytes, key: sha256(bytes) }
}

/** A writer id whose signatures the logs' add()/addMany() can make (see signingAdds). */
const randomWriter = poolWriter

/** What a case gets: logs opened on fresh databases of the backend, all closed after the case. */
interface Context {
  backend: Backend
  open(db?: Db): Promise<Log>
  /** Close `log` and its db, and open a new log on a new handle to the same storage (undefined for memory). */
  reopen(log: Log): Promise<Log | undefined>
  dbOf(log: Log): Db
}

type Case = { name: string; run(ctx: Context): Promise<void> }

export const logCases: Case[] = [
  {
    name: 'appends chained nodes: seq 1..n, each linking the previous; heads and clock follow',
    async run({ open }) {
      const log = await open()
      const entries: LogEntry[] = []
      for (let i = 0; i < 5; i++) entries.push(await log.append(enc(`e${i}`)))
      equal(entries.map((e) => e.seq), [1, 2, 3, 4, 5], 'seqs')
      equal(entries.map((e) => e.change), [1, 2, 3, 4, 5], 'change numbers')
      equal(entries[0].links.length, 0, 'first node links')
      for (let i = 1; i < 5; i++) equal(toHex(entries[i].links[0]), toHex(entries[i - 1].key), `links of node ${i + 1}`)
      for (const e of entries) equal(toHex(sha256(e.bytes)), toHex(e.key), 'key is the hash of the bytes')
      equal(log.heads().map(toHex), [toHex(entries[4].key)], 'heads')
      equal(log.clock(), new Map([[log.writerId, 5]]), 'clock')
      equal(log.length, 5, 'length')
    },
  },
  {
    name: 'group-commits 2000 appends fired together: all resolve, in order, chained',
    async run({ open }) {
      const log = await open()
      const entries = await Promise.all(Array.from({ length: 2000 }, (_, i) => log.append(enc(`n${i}`))))
      equal(entries.map((e) => e.seq).join(), Array.from({ length: 2000 }, (_, i) => i + 1).join(), 'seqs in call order')
      for (let i = 1; i < entries.length; i++) ok(toHex(entries[i].links[0]) === toHex(entries[i - 1].key), `node ${i + 1} links its predecessor`)
      equal((await all(log.read())).length, 2000, 'entries read back')
    },
  },
  {
    name: 'stores a verified foreign node once; duplicates are no-ops',
    async run({ open }) {
      const a = await open()
      const b = await open()
      const e = await a.append(enc('one'))
      const stored = await b.add(e.bytes, 'peer')
      equal(stored?.seq, 1, 'stored seq')
      equal(await b.add(e.bytes), null, 'second add')
      equal(await b.addMany([e.bytes, e.bytes]), [], 'addMany of duplicates')
      equal(b.length, 1, 'length')
      equal(b.clock().get(a.writerId), 1, 'clock of the foreign writer')
      equal(toHex((await b.get(e.key))!.bytes), toHex(e.bytes), 'get by key')
    },
  },
  {
    name: 'refuses garbled, tampered, forked and unlinked nodes, storing nothing of them',
    async run({ open }) {
      const a = await open()
      const b = await open()
      const e1 = await a.append(enc('one'))
      const e2 = await a.append(enc('two'))
      await b.add(e1.bytes)
      await rejects(b.add(e2.bytes.subarray(0, e2.bytes.length - 1)), ErrorCodes.INVALID_NODE, 'truncated node')
      await rejects(b.add(Uint8Array.of(0xff, 0xff, 0xff)), ErrorCodes.INVALID_NODE, 'garbage')
      const flipped = e2.bytes.slice()
      flipped[flipped.length - e2.value.length - 5] ^= 1
      await rejects(b.add(flipped), ErrorCodes.MISSING_LINK, 'flipped link bit')
      await b.add(e2.bytes)
      const fork = e2.bytes.slice()
      fork[fork.length - 1] ^= 1
      await rejects(b.add(fork), ErrorCodes.SEQ_MISMATCH, 'changed value under a held seq')
      const w = randomWriter()
      await rejects(b.add(foreign(w, 2, []).bytes), ErrorCodes.SEQ_MISMATCH, 'seq gap')
      await rejects(b.add(foreign(w, 1, [sha256(enc('nobody'))]).bytes), ErrorCodes.MISSING_LINK, 'unknown link')
      const forged = foreign(b.writer, 1, []).bytes
      await rejects(b.addMany([forged], undefined, { signatures: [] }), ErrorCodes.BAD_SIGNATURE, 'forged own writer, unsigned')
      const claimed = { ...(await signatureOver(await testWriter(), forged)), writer: b.writer }
      await rejects(b.addMany([forged], undefined, { signatures: [claimed] }), ErrorCodes.BAD_SIGNATURE, 'forged own writer, another key')
      equal(b.length, 2, 'length after refusals')
      equal(await b.has(sha256(flipped)), false, 'flipped node stored')
      equal(await b.has(sha256(fork)), false, 'fork stored')
      equal((await b.append(enc('still fine'))).seq, 1, 'own append after refusals')
    },
  },
  {
    name: 'addMany is all or nothing: one bad node in the middle stores none; appends queued with it still commit',
    async run({ open }) {
      const log = await open()
      const w = randomWriter()
      const n1 = foreign(w, 1, [])
      const n2 = foreign(w, 2, [n1.key])
      const bad = foreign(w, 3, [n2.key, sha256(enc('missing'))])
      const n4 = foreign(w, 4, [bad.key])
      const appended = log.append(enc('mine'))
      await rejects(log.addMany([n1.bytes, n2.bytes, bad.bytes, n4.bytes]), ErrorCodes.MISSING_LINK, 'batch with a bad node')
      equal((await appended).seq, 1, 'own append queued alongside')
      equal(log.length, 1, 'length')
      equal(await log.has(n1.key), false, 'first good node of the refused batch')
      equal(log.clock().get(toHex(w)), undefined, 'clock of the refused writer')
      equal((await log.addMany([n1.bytes, n2.bytes])).length, 2, 'the good prefix alone')
    },
  },
  {
    name: 'a failing db batch stores nothing, moves no counter, and the log keeps working',
    async run({ open, dbOf }) {
      const log = await open()
      await log.append(enc('before'))
      const db = dbOf(log)
      const original = db.batch
      ;(db as any).batch = () => Promise.reject(new Error('injected: disk full'))
      try {
        await rejects(log.append(enc('lost')), ErrorCodes.STORAGE_FAILED, 'append during failure')
        await rejects(log.addMany([foreign(randomWriter(), 1, []).bytes]), ErrorCodes.STORAGE_FAILED, 'addMany during failure')
      } finally {
        ;(db as any).batch = original
      }
      equal(log.length, 1, 'length after the failure')
      equal(log.clock(), new Map([[log.writerId, 1]]), 'clock after the failure')
      const after = await log.append(enc('after'))
      equal(after.seq, 2, 'next seq')
      equal((await all(log.read())).map((e) => new TextDecoder().decode(e.value)), ['before', 'after'], 'values read back')
    },
  },
  {
    name: 'reads in change order, pages with since/limit, and every node comes after the nodes it links',
    async run({ open }) {
      const a = await open()
      const b = await open()
      for (let i = 0; i < 30; i++) {
        await a.append(enc(`a${i}`))
        if (i % 3 === 0) await b.addMany((await all(readMissing(a, b.clock()))).map((e) => e.bytes))
        await b.append(enc(`b${i}`))
        if (i % 4 === 0) await a.addMany((await all(readMissing(b, a.clock()))).map((e) => e.bytes))
      }
      const entries = await all(a.read())
      equal(entries.map((e) => e.change), Array.from({ length: a.length }, (_, i) => i + 1), 'change numbers')
      const seen = new Set<string>()
      for (const e of entries) {
        for (const l of e.links) ok(seen.has(toHex(l)), `change ${e.change} links a node stored after it`)
        seen.add(toHex(e.key))
      }
      const page = await all(a.read({ since: 5, limit: 7 }))
      equal(page.map((e) => e.change), [6, 7, 8, 9, 10, 11, 12], 'since 5, limit 7')
    },
  },
  {
    name: 'readMissing yields exactly what the other side lacks, for several writers',
    async run({ open }) {
      const a = await open()
      const b = await open()
      const c = await open()
      for (let i = 0; i < 10; i++) await a.append(enc(`a${i}`))
      await b.addMany((await all(readMissing(a, b.clock()))).map((e) => e.bytes))
      for (let i = 0; i < 4; i++) await b.append(enc(`b${i}`))
      await c.addMany((await all(readMissing(a, new Map([[a.writerId, 0]])))).slice(0, 6).map((e) => e.bytes))
      const missing = await all(readMissing(b, c.clock()))
      equal(missing.map((e) => `${toHex(e.writer) === a.writerId ? 'a' : 'b'}${e.seq}`), ['a7', 'a8', 'a9', 'a10', 'b1', 'b2', 'b3', 'b4'], 'missing nodes')
      await c.addMany(missing.map((e) => e.bytes))
      equal(c.clock(), b.clock(), 'clocks agree after one catch-up')
      equal((await all(readMissing(b, c.clock()))).length, 0, 'nothing missing any more')
    },
  },
  {
    name: 'a live reader sees every later append exactly once, in order',
    async run({ open }) {
      const log = await open()
      await log.append(enc('old'))
      const reader = log.read({ since: log.length, live: true })
      const got: number[] = []
      const reading = (async () => {
        for await (const e of reader) {
          got.push(e.seq)
          if (got.length === 300) break
        }
      })()
      for (let i = 0; i < 300; i++) void log.append(enc(`live${i}`))
      await withTimeout(reading, 10_000, 'live reader')
      equal(got.join(), Array.from({ length: 300 }, (_, i) => i + 2).join(), 'live seqs')
    },
  },
  {
    name: 'reopening restores writer id, clock, heads and length, and continues the sequence',
    async run({ open, reopen }) {
      const log = await open()
      const other = await open()
      await other.append(enc('x'))
      await log.addMany((await all(readMissing(other, log.clock()))).map((e) => e.bytes))
      for (let i = 0; i < 3; i++) await log.append(enc(`n${i}`))
      const before = { writer: log.writerId, clock: log.clock(), heads: log.heads().map(toHex), length: log.length }
      const again = await reopen(log)
      if (!again) return
      equal(
        { writer: again.writerId, clock: again.clock(), heads: again.heads().map(toHex), length: again.length },
        before,
        'state after reopen',
      )
      const next = await again.append(enc('after reopen'))
      equal(next.seq, 4, 'next seq')
      equal(toHex(next.links[0]), before.heads[0], 'links the old head')
      equal((await all(again.read())).length, 5, 'entries read back')
    },
  },
]

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new AssertionFailed(`${what} timed out after ${ms} ms`)), ms)
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

/** Run one case on `backend`, closing everything it opened; never throws. */
export async function runCase(backend: Backend, c: Case): Promise<CaseResult> {
  const logs: Log[] = []
  const dbs = new Map<Log, Db>()
  const ctx: Context = {
    backend,
    async open(db = backend.create()) {
      // Adds are signed as a sending session would sign them.
      const log = signingAdds(new Log(db))
      logs.push(log)
      dbs.set(log, db)
      await log.open()
      return log
    },
    async reopen(log) {
      const db = dbs.get(log)!
      await log.close()
      await db.close()
      const again = backend.reopen(db)
      if (!again) return undefined
      return ctx.open(again)
    },
    dbOf: (log) => dbs.get(log)!,
  }
  const start = performance.now()
  let error: unknown
  try {
    await fillWriterPool(4)
    await c.run(ctx)
  } catch (err) {
    error = err
  }
  for (const log of logs) {
    await log.close().catch(() => {})
    const db = dbs.get(log)!
    if (db.status === 'open') await db.close().catch(() => {})
  }
  const ms = Math.round(performance.now() - start)
  if (error === undefined) return { name: c.name, ok: true, ms }
  const message = error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error)
  return { name: c.name, ok: false, error: message, ms }
}

/** Every case on `backend`, one after the other. */
export async function runLogSuite(backend: Backend): Promise<CaseResult[]> {
  const results: CaseResult[] = []
  for (const c of logCases) results.push(await runCase(backend, c))
  return results
}
