/**
 * Browser storage: browser-level (IndexedDB) under the app's database name,
 * and IndexedDB failures turned into coded errors.
 */
import { BrowserLevel } from 'browser-level'
import { MemoryLevel } from 'memory-level'
import type { Db } from '../core/emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'

/** Default IndexedDB database name. */
export const DEFAULT_DB_NAME = 'hyperemitter'

const VIEW = { keyEncoding: 'view', valueEncoding: 'view' } as const

/**
 * A browser-level database named exactly `name` in IndexedDB (no prefix),
 * with view encodings, not yet open: what the browser entry uses by default.
 * Each batch is one IndexedDB transaction with its requests pipelined (see
 * FastBrowserLevel).
 */
export function openIndexedDb(name: string): Db {
  return new FastBrowserLevel(name, { prefix: '', ...VIEW })
}

/** An in-memory database, where there is no IndexedDB. */
export function memoryDb(): Db {
  return new MemoryLevel({ storeEncoding: 'view', ...VIEW })
}

/**
 * browser-level, with batches that queue every request of the transaction at
 * once: IndexedDB runs the requests of one transaction in order anyway, and
 * waiting for each request's success before making the next (as
 * browser-level does) costs a round trip to the storage process per key.
 * Values are stored with buffers of their own (see exact()). Also closes
 * itself when another page wants to delete or upgrade the database, instead
 * of blocking it.
 */
export class FastBrowserLevel extends BrowserLevel<Uint8Array, Uint8Array> {
  /** Called when another page asked for a version change (delete/upgrade) and this db closed for it. */
  onVersionChange: (() => void) | undefined

  async _open(options: any): Promise<void> {
    await (BrowserLevel.prototype as any)._open.call(this, options)
    const idb = (this as any).db as IDBDatabase | null
    if (idb) {
      idb.onversionchange = () => {
        this.onVersionChange?.()
        void this.close().catch(() => {})
      }
    }
  }

  async _put(key: Uint8Array, value: Uint8Array, options: any): Promise<void> {
    return (BrowserLevel.prototype as any)._put.call(this, key, exact(value), options)
  }

  async _batch(operations: any[], _options: any): Promise<void> {
    const idb = (this as any).db as IDBDatabase
    const storeName = this.location
    const transaction = idb.transaction([storeName], 'readwrite')
    const store = transaction.objectStore(storeName)
    const done = new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve()
      transaction.onabort = () => reject(transaction.error ?? new Error('the IndexedDB transaction was aborted'))
    })
    try {
      for (const op of operations) {
        if (op.type === 'del') store.delete(op.key)
        else store.put(exact(op.value), op.key)
      }
      // Commit now rather than when the event loop gets round to it.
      transaction.commit?.()
    } catch (err) {
      // A request that could not even be made (DataError...): nothing of the batch is kept.
      try {
        transaction.abort()
      } catch {
        // Already finished.
      }
      await done.catch(() => {})
      throw err
    }
    return done
  }
}

/**
 * `value` with a buffer of its own. IndexedDB stores a typed array by
 * structured clone, which copies the view's whole underlying ArrayBuffer: a
 * 100-byte view into a 64 KiB slab would cost 64 KiB of copying and disk.
 * (Keys are not affected: a binary key takes only the viewed bytes.)
 */
function exact(value: unknown): unknown {
  if (value instanceof Uint8Array && (value.byteOffset !== 0 || value.byteLength !== value.buffer.byteLength)) return value.slice()
  return value
}

/**
 * Call `listener` if `db` (IndexedDB) closes itself because another page
 * deletes or upgrades the database.
 */
export function onVersionChange(db: Db, listener: () => void): void {
  if (db instanceof FastBrowserLevel) db.onVersionChange = listener
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
