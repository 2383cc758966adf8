// IndexedDB failures in real Chromium: a quota error must surface as
// STORAGE_FAILED on the failing call and on status 'error', and leave the log
// exactly as it was before the failed write; a page deleting the database is
// not blocked by an open emitter.
import { expect, test } from './fixtures.js'

const SCHEMA = 'syntax = "proto3"; message Blob { bytes data = 1; string note = 2; }'

test('a quota error rejects the failing emit with STORAGE_FAILED, reports it on status, and stores nothing of it', async ({ page, site }) => {
  await page.goto(site.harness)
  await expect(page.locator('#state')).toHaveText('ready')
  // DevTools' Storage.overrideQuotaForOrigin has no effect in this Chromium, so the quota error is
  // injected where IndexedDB raises it: the 2nd put of a transaction throws QuotaExceededError, after
  // the 1st was accepted. The transaction (and so the batch) must be rolled back as a whole. A batch
  // is one record per chunk of nodes, so the failing batch is two emits of over 1 MiB fired
  // together: two chunks, two puts.
  const result = await page.evaluate(async (schema) => {
    const { hyperemitter } = globalThis as any
    const realPut = IDBObjectStore.prototype.put
    let armed = false
    const puts = new WeakMap<IDBTransaction, number>()
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: any[]) {
      const n = (puts.get(this.transaction) ?? 0) + 1
      puts.set(this.transaction, n)
      if (armed && n === 2) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError')
      return (realPut as any).apply(this, args)
    } as any

    const name = `quota-${Date.now()}`
    const emitter = hyperemitter.HyperEmitter({ name, schema, tabs: false })
    const statusErrors: Array<{ code: string; message: string }> = []
    emitter.status.on('error', (err: any) => statusErrors.push({ code: err.code, message: err.message }))
    await emitter.ready()
    for (let i = 0; i < 5; i++) await emitter.emit('Blob', { note: `kept ${i}` })
    armed = true
    const big = new Uint8Array(1100 * 1024)
    const outcomes = await Promise.allSettled([
      emitter.emit('Blob', { data: big, note: 'refused 1' }),
      emitter.emit('Blob', { data: big, note: 'refused 2' }),
    ])
    const failures = outcomes.map((o) => {
      if (o.status === 'fulfilled') return undefined
      const err = o.reason
      let root = err
      while (root?.cause) root = root.cause
      return { code: err.code, message: err.message, domException: err.details?.domException, causeName: root?.name }
    })
    const failure = failures[0]
    armed = false
    const atFailure = { length: emitter.log.length, clock: emitter.log.clock().get(emitter.log.writerId) ?? 0 }
    // The emitter keeps working once storage does.
    await emitter.emit('Blob', { note: 'after' })
    await emitter.close()
    IDBObjectStore.prototype.put = realPut

    // What really is in IndexedDB: a fresh emitter on the same database.
    const again = hyperemitter.HyperEmitter({ name, schema, tabs: false })
    const notes: string[] = []
    again.on('Blob', (m: any) => void notes.push(m.note), { from: 'beginning' })
    await again.ready()
    const reopened = { length: again.log.length, clock: again.log.clock().get(again.log.writerId) ?? 0 }
    for (let i = 0; i < 100 && notes.length < reopened.length; i++) await new Promise((r) => setTimeout(r, 20))
    await again.close()
    return { failure, failures, statusErrors, atFailure, reopened, notes }
  }, SCHEMA)

  expect(result.failure).toMatchObject({ code: 'HYPEREMITTER_STORAGE_FAILED', domException: 'QuotaExceededError', causeName: 'QuotaExceededError' })
  expect(result.failure!.message).toMatch(/quota exceeded/)
  expect(result.failures[1]).toMatchObject({ code: 'HYPEREMITTER_STORAGE_FAILED', domException: 'QuotaExceededError' })
  expect(result.statusErrors.some((e) => e.code === 'HYPEREMITTER_STORAGE_FAILED' && /quota exceeded/.test(e.message))).toBe(true)
  // Nothing of the failed write, neither in memory nor in IndexedDB; the next write takes its place.
  expect(result.atFailure).toEqual({ length: 5, clock: 5 })
  expect(result.reopened).toEqual({ length: 6, clock: 6 })
  expect(result.notes).toEqual(['kept 0', 'kept 1', 'kept 2', 'kept 3', 'kept 4', 'after'])
})

test('a database another page is deleting makes the emitter close it instead of blocking the delete', async ({ page, site }) => {
  await page.goto(site.harness)
  await expect(page.locator('#state')).toHaveText('ready')
  const outcome = await page.evaluate(async (schema) => {
    const { hyperemitter } = globalThis as any
    const name = `versionchange-${Date.now()}`
    const emitter = hyperemitter.HyperEmitter({ name, schema, tabs: false })
    const statusErrors: string[] = []
    emitter.status.on('error', (err: any) => statusErrors.push(err.code))
    await emitter.ready()
    await emitter.emit('Blob', { note: 'before' })
    const deleted = await new Promise<string>((resolve) => {
      const request = indexedDB.deleteDatabase(name)
      request.onsuccess = () => resolve('deleted')
      request.onerror = () => resolve('error')
      request.onblocked = () => setTimeout(() => resolve('blocked'), 5000)
    })
    let emitError: string | undefined
    try {
      await emitter.emit('Blob', { note: 'after' })
    } catch (err: any) {
      emitError = err.code
    }
    await emitter.close().catch(() => {})
    return { deleted, emitError, statusErrors }
  }, SCHEMA)
  expect(outcome.deleted).toBe('deleted')
  expect(outcome.emitError).toBe('HYPEREMITTER_STORAGE_FAILED')
  expect(outcome.statusErrors).toContain('HYPEREMITTER_STORAGE_FAILED')
})

test('the default IndexedDB db and browser-level (prefix "") read and extend each other\'s log', async ({ page, site }) => {
  await page.goto(site.harness)
  await expect(page.locator('#state')).toHaveText('ready')
  const outcome = await page.evaluate(async (schema) => {
    const { hyperemitter, BrowserLevel } = globalThis as any
    const name = `layout-${Date.now()}`
    const level = () => new BrowserLevel(name, { prefix: '', keyEncoding: 'view', valueEncoding: 'view' })
    // The first `n` events of the history (bounded: whatever arrived within 10 s).
    const notes = async (emitter: any, n: number) => {
      const out: string[] = []
      const read = (async () => {
        for await (const event of emitter.events({ from: 'beginning' })) if (out.push(event.payload.note) === n) break
      })()
      await Promise.race([read, new Promise((resolve) => setTimeout(resolve, 10_000))])
      return out
    }
    // Written through browser-level, as this package's IndexedDB storage was before.
    const first = hyperemitter.HyperEmitter(level(), schema)
    await first.ready()
    for (const note of ['a', 'b', 'c']) await first.emit('Blob', { note })
    const writer = await first.getId()
    await first.close()
    // The entry's own IndexedDB db opens it: same writer, same history, and appends.
    const second = hyperemitter.HyperEmitter({ name, schema, tabs: false })
    await second.ready()
    const seenBySecond = await notes(second, 3)
    const sameWriter = (await second.getId()) === writer
    await second.emit('Blob', { note: 'd' })
    await second.close()
    // And browser-level reads what it added.
    const db = level()
    const third = hyperemitter.HyperEmitter(db, schema)
    await third.ready()
    const seenByThird = await notes(third, 4)
    await third.close()
    await db.close()
    return { seenBySecond, sameWriter, seenByThird }
  }, SCHEMA)
  expect(outcome).toEqual({ seenBySecond: ['a', 'b', 'c'], sameWriter: true, seenByThird: ['a', 'b', 'c', 'd'] })
})
