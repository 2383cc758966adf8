/**
 * IndexedDB as a ByteStore: one database and one object store named `name`,
 * binary keys and Uint8Array values, the layout browser-level writes with
 * `prefix: ''`, so either can open the other's data.
 */
import { LiteDb, type ByteOp, type ByteRange, type ByteStore } from '../core/db/lite.js'
import { own } from '../core/db/memory.js'

class IdbStore implements ByteStore {
  private idb: IDBDatabase | undefined
  /** Called when another page asked for a version change (delete/upgrade) and this store closed for it. */
  onVersionChange: (() => void) | undefined

  constructor(readonly name: string) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(this.name, 1)
      request.onupgradeneeded = () => {
        if (!request.result.objectStoreNames.contains(this.name)) request.result.createObjectStore(this.name)
      }
      request.onerror = () => reject(request.error ?? new Error('IndexedDB open failed'))
      request.onsuccess = () => {
        this.idb = request.result
        // Close for another page's delete or upgrade instead of blocking it.
        this.idb.onversionchange = () => {
          this.idb?.close()
          this.idb = undefined
          this.onVersionChange?.()
        }
        resolve()
      }
    })
  }

  async close(): Promise<void> {
    this.idb?.close()
    this.idb = undefined
  }

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const store = this.store('readonly')
    const request = store.get(idbKey(key))
    return done(store.transaction, () => bytes(request.result))
  }

  /**
   * One transaction with every request queued at once: IndexedDB runs them in
   * order anyway, and waiting for each one's success costs a round trip to
   * the storage process per key.
   */
  write(ops: readonly ByteOp[]): Promise<void> {
    const store = this.store('readwrite')
    const transaction = store.transaction
    const result = done(transaction, () => undefined)
    try {
      for (const op of ops) {
        if (op.type === 'del') store.delete(idbKey(op.key))
        else store.put(own(op.value), idbKey(op.key))
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
      return result.catch(() => {}).then(() => Promise.reject(err))
    }
    return result
  }

  read(range: ByteRange, reverse: boolean, count: number): Promise<Array<[Uint8Array, Uint8Array]>> {
    const store = this.store('readonly')
    const keyRange = toKeyRange(range)
    const rows: Array<[Uint8Array, Uint8Array]> = []
    if (keyRange === null) return Promise.resolve(rows)
    if (!reverse) {
      // Two requests of `count` records, not a cursor step per record.
      const keys = store.getAllKeys(keyRange, count)
      const values = store.getAll(keyRange, count)
      return done(store.transaction, () => {
        for (let i = 0; i < keys.result.length; i++) rows.push([bytes(keys.result[i])!, bytes(values.result[i])!])
        return rows
      })
    }
    const cursor = store.openCursor(keyRange, 'prev')
    cursor.onsuccess = () => {
      const at = cursor.result
      if (!at) return
      rows.push([bytes(at.key)!, bytes(at.value)!])
      if (rows.length < count) at.continue()
    }
    return done(store.transaction, () => rows)
  }

  private store(mode: IDBTransactionMode): IDBObjectStore {
    if (this.idb === undefined) throw Object.assign(new Error('Database is not open'), { code: 'LEVEL_DATABASE_NOT_OPEN' })
    return this.idb.transaction([this.name], mode).objectStore(this.name)
  }
}

/** Resolves `result()` once `transaction` completes; rejects with its error if it aborts. */
function done<T>(transaction: IDBTransaction, result: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve(result())
    transaction.onabort = () => reject(transaction.error ?? new Error('the IndexedDB transaction was aborted'))
  })
}

/** A binary key (TypeScript's IDBValidKey wants an ArrayBuffer-backed view; ours always are). */
function idbKey(key: Uint8Array): IDBValidKey {
  return key as Uint8Array<ArrayBuffer>
}

/** A key or value as stored (binary keys come back as ArrayBuffers). */
function bytes(value: unknown): Uint8Array | undefined {
  if (value === undefined || value instanceof Uint8Array) return value
  if (value instanceof ArrayBuffer) return new Uint8Array(value)
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  return new TextEncoder().encode(String(value))
}

/** The IDBKeyRange of `range`; null when it is empty (IndexedDB throws for lower > upper). */
function toKeyRange(range: ByteRange): IDBKeyRange | null | undefined {
  const lower = range.lower && idbKey(range.lower)
  const upper = range.upper && idbKey(range.upper)
  try {
    if (lower !== undefined && upper !== undefined) return IDBKeyRange.bound(lower, upper, range.lowerOpen === true, range.upperOpen === true)
    if (lower !== undefined) return IDBKeyRange.lowerBound(lower, range.lowerOpen === true)
    if (upper !== undefined) return IDBKeyRange.upperBound(upper, range.upperOpen === true)
    return undefined
  } catch {
    return null
  }
}

/** A db on the IndexedDB database `location`. */
export class IndexedDb extends LiteDb {
  /** Called when another page deletes or upgrades the database and this db closed for it. */
  onVersionChange: (() => void) | undefined

  constructor(readonly location: string) {
    const store = new IdbStore(location)
    super(store)
    store.onVersionChange = () => {
      // Closed underneath: later operations reject as on a closed db.
      this.status = 'closed'
      this.onVersionChange?.()
    }
  }
}
