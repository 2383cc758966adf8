// The core's own db (src/core/db/), checked against memory-level: the same
// operations give the same records under the same keys (so browser-level and
// IndexedDb read each other's data), and the same range reads, page by page.
import fc from 'fast-check'
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { memoryDb } from '../src/core/db/memory.js'

const VIEW = { keyEncoding: 'view', valueEncoding: 'view' } as const
const bytes = (...b: number[]) => Uint8Array.from(b)

/** Writes and reads both dbs understand, on the root ('view' keys), a 'utf8' sublevel and a 'view' sub-sublevel. */
type Op =
  | { t: 'put' | 'del'; where: 0 | 1 | 2; key: number[]; value: number[] }
  | { t: 'batch'; ops: Array<{ del: boolean; where: 0 | 1 | 2; key: number[]; value: number[] }> }

// Few distinct bytes, so ops often hit the same key; and root keys that share a
// sublevel's prefix up to its last byte or just past it, which the sublevel must not see.
const smallKey = fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 2 })
const nearPrefix = fc
  .tuple(fc.constantFrom('!text', '!outer!!inner', '!outer'), fc.constantFrom(0x20, 0x21, 0x22), smallKey)
  .map(([p, b, k]) => [...new TextEncoder().encode(p), b, ...k])
const keyArb = fc.oneof(smallKey, smallKey, nearPrefix)
const whereArb = fc.constantFrom<0 | 1 | 2>(0, 1, 2)
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constantFrom<'put' | 'del'>('put', 'put', 'del'), where: whereArb, key: keyArb, value: keyArb }),
  fc.record({
    t: fc.constant<'batch'>('batch'),
    ops: fc.array(fc.record({ del: fc.boolean(), where: whereArb, key: keyArb, value: keyArb }), { maxLength: 6 }),
  }),
)
const rangeArb = fc.record(
  { gt: keyArb, gte: keyArb, lt: keyArb, lte: keyArb, reverse: fc.boolean(), limit: fc.integer({ min: -1, max: 6 }) },
  { requiredKeys: ['reverse'] },
)

/** The three key spaces of `db`; utf8 keys are the byte values as letters. */
function spaces(db: any) {
  const text = db.sublevel('text', { keyEncoding: 'utf8', valueEncoding: 'view' })
  const nested = db.sublevel('outer', VIEW).sublevel('inner', VIEW)
  const key = (where: number, k: number[]) => (where === 1 ? String.fromCharCode(...k.map((b) => 97 + (b % 26))) : Uint8Array.from(k))
  const space = (where: number) => [db, text, nested][where]
  return { text, nested, key, space }
}

async function apply(db: any, ops: Op[]): Promise<void> {
  const { key, space } = spaces(db)
  for (const op of ops) {
    if (op.t !== 'batch') {
      if (op.t === 'put') await space(op.where).put(key(op.where, op.key), Uint8Array.from(op.value))
      else await space(op.where).del(key(op.where, op.key))
    } else {
      await db.batch(
        op.ops.map((o) =>
          o.del
            ? { type: 'del', sublevel: o.where === 0 ? undefined : space(o.where), key: key(o.where, o.key) }
            : { type: 'put', sublevel: o.where === 0 ? undefined : space(o.where), key: key(o.where, o.key), value: Uint8Array.from(o.value) },
        ),
      )
    }
  }
}

const plain = (rows: Array<[unknown, Uint8Array]>) => rows.map(([k, v]) => [k instanceof Uint8Array ? [...k] : k, [...v]])

describe('the core memory db', () => {
  it('stores every record under the key memory-level gives it, and reads ranges as memory-level does (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 25 }), fc.array(rangeArb, { maxLength: 4 }), fc.integer({ min: 1, max: 4 }), async (ops, ranges, page) => {
        const ref = new MemoryLevel<Uint8Array, Uint8Array>({ storeEncoding: 'view', ...VIEW })
        const lite = memoryDb() as any
        await ref.open()
        await lite.open()
        await apply(ref, ops)
        await apply(lite, ops)
        // Every record of the whole db, prefixes included.
        expect(plain(await lite.iterator().all())).toEqual(plain(await ref.iterator().all()))
        for (const where of [1, 2]) {
          for (const r of ranges) {
            const options: any = { reverse: r.reverse, limit: r.limit }
            const conv = (k: number[]) => spaces(ref).key(where, k)
            for (const bound of ['gt', 'gte', 'lt', 'lte'] as const) if (r[bound] !== undefined) options[bound] = conv(r[bound]!)
            const expected = plain(await spaces(ref).space(where).iterator(options).all())
            // Read in pages of `page`, as the log does with nextv().
            const it = spaces(lite).space(where).iterator(options)
            const got: Array<[unknown, Uint8Array]> = []
            for (let i = 0; i < 100; i++) {
              const rows = await it.nextv(page)
              if (rows.length === 0) break
              got.push(...rows)
            }
            expect(plain(got)).toEqual(expected)
          }
          const probe = spaces(ref).key(where, [1])
          expect(await spaces(lite).space(where).get(probe)).toEqual(await spaces(ref).space(where).get(probe))
        }
        await ref.close()
        await lite.close()
      }),
      { numRuns: 150 },
    )
  })

  it('keeps its data across close() and open(), and refuses operations while closed', async () => {
    const db = memoryDb() as any
    const sub = db.sublevel('s', VIEW)
    await sub.put(bytes(1), bytes(9))
    expect(db.status).toBe('open')
    await db.close()
    expect(db.status).toBe('closed')
    await expect(sub.get(bytes(1))).rejects.toMatchObject({ code: 'LEVEL_DATABASE_NOT_OPEN' })
    await expect(db.batch([{ type: 'put', key: bytes(2), value: bytes(2) }])).rejects.toMatchObject({ code: 'LEVEL_DATABASE_NOT_OPEN' })
    await sub.open()
    expect(await sub.get(bytes(1))).toEqual(bytes(9))
  })

  it('refuses encodings it does not implement, and keys that are not bytes where bytes are due', async () => {
    const db = memoryDb() as any
    expect(() => db.sublevel('x', { keyEncoding: 'json', valueEncoding: 'view' })).toThrow(TypeError)
    expect(() => db.sublevel('x', { keyEncoding: 'utf8', valueEncoding: 'utf8' })).toThrow(TypeError)
    await expect(db.sublevel('v', VIEW).put('text', bytes(1))).rejects.toThrow(TypeError)
    await expect(db.sublevel('v', VIEW).put(bytes(1), 'text')).rejects.toThrow(TypeError)
  })

  it('keeps a value that is a view into a larger buffer as a copy of its bytes only', async () => {
    const db = memoryDb() as any
    const slab = new Uint8Array(4096).fill(7)
    await db.put(bytes(1), slab.subarray(10, 14))
    const value = await db.get(bytes(1))
    expect([...value]).toEqual([7, 7, 7, 7])
    expect(value.buffer.byteLength).toBe(4)
  })
})
