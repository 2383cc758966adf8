/**
 * Browser storage: browser-level (IndexedDB) under the app's database name,
 * IndexedDB failures turned into coded errors, and `TabDb`, a database whose
 * backend is chosen when it opens (IndexedDB for the tab that holds the
 * database's Web Lock, memory for the others).
 */
import { AbstractIterator, AbstractLevel } from 'abstract-level'
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

/** An in-memory database for tabs that do not own the IndexedDB log. */
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
 * Call `listener` if `db` (IndexedDB, directly or as a TabDb's choice) closes
 * itself because another page deletes or upgrades the database.
 */
export function onVersionChange(db: Db, listener: () => void): void {
  if (db instanceof FastBrowserLevel || db instanceof TabDb) db.onVersionChange = listener
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

/**
 * A database that picks its backend when it opens: `choose()` runs once,
 * inside open(), and every operation is forwarded to the database it
 * returned. The emitter's constructor is synchronous, but which tab owns the
 * IndexedDB log is only known after asking for a Web Lock.
 */
export class TabDb extends AbstractLevel<Uint8Array, Uint8Array> {
  private inner: Db | undefined
  /** Runs after the chosen database closed (the tab coordinator releases its Web Lock here). */
  afterClose: (() => void) | undefined
  /** Called if the chosen database is IndexedDB and closed itself for another page's delete or upgrade. */
  onVersionChange: (() => void) | undefined

  constructor(private readonly choose: () => Promise<Db>) {
    super({ encodings: { view: true }, snapshots: false, seek: true, has: true, getSync: false, permanence: true } as any, VIEW)
  }

  /** The database every operation goes to (after open). */
  get backend(): Db | undefined {
    return this.inner
  }

  async _open(_options: any): Promise<void> {
    this.inner ??= await this.choose()
    if (this.inner instanceof FastBrowserLevel) this.inner.onVersionChange = () => this.onVersionChange?.()
    try {
      await this.inner.open()
    } catch (err) {
      // Never opened: whatever was held for it (the tab's Web Lock) goes now.
      this.afterClose?.()
      throw storageError('could not open the database', err)
    }
  }

  async _close(): Promise<void> {
    try {
      await this.inner?.close()
    } finally {
      this.afterClose?.()
    }
  }

  async _get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.inner!.get(key, VIEW)
  }

  async _getMany(keys: Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.inner!.getMany(keys, VIEW)
  }

  async _has(key: Uint8Array): Promise<boolean> {
    return this.inner!.has(key, VIEW)
  }

  async _hasMany(keys: Uint8Array[]): Promise<boolean[]> {
    return this.inner!.hasMany(keys, VIEW)
  }

  async _put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.inner!.put(key, value, VIEW)
  }

  async _del(key: Uint8Array): Promise<void> {
    return this.inner!.del(key, VIEW)
  }

  async _batch(operations: any[]): Promise<void> {
    const ops = new Array(operations.length)
    for (let i = 0; i < operations.length; i++) {
      const op = operations[i]
      ops[i] = op.type === 'del' ? { type: 'del', key: op.key } : { type: 'put', key: op.key, value: op.value }
    }
    return this.inner!.batch(ops, VIEW)
  }

  async _clear(options: any): Promise<void> {
    return this.inner!.clear({ ...rangeOf(options), ...VIEW })
  }

  _iterator(options: any): any {
    const inner = this.inner!.iterator({ ...rangeOf(options), keys: options.keys, values: options.values, ...VIEW })
    return new ForwardingIterator(this, options, inner)
  }
}

function rangeOf(options: any): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of ['gt', 'gte', 'lt', 'lte', 'limit', 'reverse']) if (options[k] !== undefined) out[k] = options[k]
  return out
}

class ForwardingIterator extends AbstractIterator<any, Uint8Array, Uint8Array> {
  constructor(
    db: TabDb,
    options: any,
    private readonly inner: any,
  ) {
    super(db as any, options)
  }

  async _next(): Promise<[Uint8Array, Uint8Array] | undefined> {
    return this.inner.next()
  }

  async _nextv(size: number, options: any): Promise<[Uint8Array, Uint8Array][]> {
    return this.inner.nextv(size, options)
  }

  async _all(options: any): Promise<[Uint8Array, Uint8Array][]> {
    return this.inner.all(options)
  }

  _seek(target: Uint8Array, options: any): void {
    this.inner.seek(target, options)
  }

  async _close(): Promise<void> {
    return this.inner.close()
  }
}
