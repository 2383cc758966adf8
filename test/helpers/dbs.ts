import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import type { Db } from '../../src/core/emitter.js'
import { memoryDb } from '../../src/core/db/memory.js'

/** A db backend the db-facing suites run on; `reopen` gives a new handle on the same data. */
export interface DbFactory {
  name: string
  /** A fresh, empty database in the app's default (utf8) encodings, as an app would hand it over. */
  create(): Db
  /** A new handle on the same storage as `db` (after `db` was closed); memory dbs can't, so they return undefined. */
  reopen(db: Db): Db | undefined
  /** Remove everything the factory created. */
  cleanup(): void
  /** False for the core's own db, which has only the API the emitter uses ('view' root, no keys() or string values). */
  appFacing?: false
}

export function memoryFactory(): DbFactory {
  return {
    name: 'memory-level',
    create: () => new MemoryLevel(),
    reopen: () => undefined,
    cleanup: () => {},
  }
}

/** The core's own in-memory db (the browser entry's without IndexedDB), which keeps its data across close() and open(). */
export function liteMemoryFactory(): DbFactory {
  return {
    name: 'core memory db',
    appFacing: false,
    create: () => memoryDb() as unknown as Db,
    reopen: (db) => db,
    cleanup: () => {},
  }
}

export function classicFactory(): DbFactory {
  const dirs: string[] = []
  const locations = new WeakMap<Db, string>()
  return {
    name: 'classic-level',
    create() {
      const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-test-'))
      dirs.push(dir)
      const db = new ClassicLevel(dir)
      locations.set(db, dir)
      return db
    },
    reopen(db) {
      const dir = locations.get(db)!
      const again = new ClassicLevel(dir)
      locations.set(again, dir)
      return again
    },
    cleanup() {
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Every db the db-facing suites run on. */
export const dbFactories = [memoryFactory, liteMemoryFactory, classicFactory]

/**
 * The log's chunk records (key 'c' || change, 8 bytes) as handed to
 * db.batch(), collected into the returned array.
 */
export function captureChunkRecords(db: Db): Uint8Array[] {
  const records: Uint8Array[] = []
  const original = db.batch.bind(db)
  ;(db as any).batch = (ops: Array<{ type: string; key: Uint8Array; value: Uint8Array }>, ...rest: unknown[]) => {
    for (const op of ops) if (op.type === 'put' && op.key.length === 9 && op.key[0] === 0x63) records.push(op.value)
    return (original as any)(ops, ...rest)
  }
  return records
}

/** Whether `bytes` is a buffer of its own, not a view into a larger one. */
export function ownsBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength
}

/** Counts db.batch calls and can make the next one fail. Sublevels forward to the root's batch(). */
export function spyBatch(db: Db) {
  const original = db.batch.bind(db)
  const spy = { calls: 0, failNext: 0 }
  ;(db as any).batch = (...args: unknown[]) => {
    spy.calls++
    if (spy.failNext > 0) {
      spy.failNext--
      return Promise.reject(new Error('injected batch failure'))
    }
    return (original as any)(...args)
  }
  return spy
}
