/**
 * Browser storage: IndexedDB under the app's database name (src/browser/idb.ts),
 * memory where there is none, and IndexedDB failures turned into coded errors.
 */
import type { Db } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { memoryDb as liteMemoryDb } from '../core/db/memory.js'
import { IndexedDb } from './idb.js'

/** Default IndexedDB database name. */
export const DEFAULT_DB_NAME = 'hyperemitter'

/**
 * The IndexedDB database named exactly `name` (no prefix), not yet open: what
 * the browser entry uses by default (exported as `indexedDb`). It has the
 * part of abstract-level's API the emitter uses, and the record layout of
 * browser-level with `prefix: ''` and view encodings, so
 * `new BrowserLevel(name, { prefix: '' })` opens the same data with the whole API.
 */
export function indexedDb(name: string): IndexedDb {
  return new IndexedDb(name)
}

// The emitter calls on these only what an abstract-level db also has (DbInput).
/** indexedDb(name), as the emitter holds its db. */
export function openIndexedDb(name: string): Db {
  return indexedDb(name) as unknown as Db
}

/** An in-memory database, where there is no IndexedDB. */
export function memoryDb(): Db {
  return liteMemoryDb() as unknown as Db
}

/**
 * Call `listener` if `db` (IndexedDB) closes itself because another page
 * deletes or upgrades the database.
 */
export function onVersionChange(db: Db, listener: () => void): void {
  if ((db as unknown) instanceof IndexedDb) (db as unknown as IndexedDb).onVersionChange = listener
}

/** The DOMException (or other error) at the bottom of a chain of causes. */
export function rootCause(err: unknown): unknown {
  let current = err
  for (let i = 0; i < 8 && current instanceof Error && current.cause !== undefined; i++) current = current.cause
  return current
}

/** A short explanation of an IndexedDB failure, from the DOMException's name. */
export function describeStorageFailure(err: unknown): string {
  const cause = rootCause(err) as { name?: string; message?: string } | undefined
  switch (cause?.name) {
    case 'QuotaExceededError':
      return 'the browser refused more storage (quota exceeded)'
    case 'InvalidStateError':
    case 'SecurityError':
      return 'IndexedDB is not available here (private browsing, or storage blocked by the browser)'
    case 'VersionError':
      return 'the IndexedDB database has a newer version than this page expects'
    case 'UnknownError':
      return 'IndexedDB failed (the disk may be full or the profile damaged)'
    default:
      return cause?.message ? `IndexedDB failed: ${cause.message}` : 'IndexedDB failed'
  }
}

/** Reported when IndexedDB was closed for another page's delete or upgrade. */
export function versionChangeError(): HyperEmitterError {
  return new HyperEmitterError(
    ErrorCodes.STORAGE_FAILED,
    'another page is deleting or upgrading this IndexedDB database: it was closed here, and writes fail until the page reloads',
  )
}

/** `err` as a STORAGE_FAILED error that says what IndexedDB did, keeping the original as cause. */
export function storageError(context: string, err: unknown): HyperEmitterError {
  if (err instanceof HyperEmitterError && err.code !== ErrorCodes.STORAGE_FAILED) return err
  const name = (rootCause(err) as { name?: string } | undefined)?.name
  return new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `${context}: ${describeStorageFailure(err)}`, {
    cause: err,
    details: name ? { domException: name } : undefined,
  })
}
