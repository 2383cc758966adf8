/**
 * The part of abstract-level's API the emitter uses (sublevels with 'view'
 * or 'utf8' keys, get/put/del, batches across sublevels, range iterators),
 * over a byte-keyed store: the browser entry's IndexedDB and memory dbs,
 * without abstract-level and the polyfills it pulls into a page.
 */

/** An ordered byte-keyed store: what LiteDb needs of IndexedDB or memory. */
export interface ByteStore {
  open(): Promise<void>
  close(): Promise<void>
  get(key: Uint8Array): Promise<Uint8Array | undefined>
  /** Applies every op atomically, in order. */
  write(ops: readonly ByteOp[]): Promise<void>
  /** Up to `count` entries of `range`, in key order (descending if `reverse`). */
  read(range: ByteRange, reverse: boolean, count: number): Promise<Array<[Uint8Array, Uint8Array]>>
}

export type ByteOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

/** Bounds of a key range; either side may be missing. */
export interface ByteRange {
  lower?: Uint8Array
  lowerOpen?: boolean
  upper?: Uint8Array
  upperOpen?: boolean
}

export interface RangeOptions<K> {
  gt?: K
  gte?: K
  lt?: K
  lte?: K
  reverse?: boolean
  limit?: number
}

type KeyEncoding = 'view' | 'utf8'
type Key = Uint8Array | string
type BatchOp = { type: 'put' | 'del'; key: Key; value?: Uint8Array; sublevel?: LiteSublevel }

const encoder = new TextEncoder()
const decoder = new TextDecoder()
/** abstract-level's sublevel separator, so records sit where browser-level and memory-level put them. */
const SEPARATOR = '!'

/** What abstract-level rejects with on a closed db; storage errors wrap it as the cause. */
function notOpen(): Error {
  return Object.assign(new Error('Database is not open'), { code: 'LEVEL_DATABASE_NOT_OPEN' })
}

/** Keys and values are read and written under one prefix, as abstract-level's sublevels do. */
class Space {
  constructor(
    readonly root: LiteDb,
    readonly prefix: Uint8Array,
    readonly keyEncoding: KeyEncoding,
  ) {}

  encode(key: Key): Uint8Array {
    const bytes = this.keyEncoding === 'utf8' ? encoder.encode(String(key)) : checkView(key)
    if (this.prefix.length === 0) return bytes
    const out = new Uint8Array(this.prefix.length + bytes.length)
    out.set(this.prefix)
    out.set(bytes, this.prefix.length)
    return out
  }

  decode(key: Uint8Array): Key {
    const bytes = key.subarray(this.prefix.length)
    return this.keyEncoding === 'utf8' ? decoder.decode(bytes) : bytes
  }

  /** The range of `options` within this prefix. */
  range(options: RangeOptions<Key>): ByteRange {
    const range: ByteRange = {}
    if (options.gte !== undefined) range.lower = this.encode(options.gte)
    else if (options.gt !== undefined) Object.assign(range, { lower: this.encode(options.gt), lowerOpen: true })
    else if (this.prefix.length > 0) range.lower = this.prefix
    if (options.lte !== undefined) range.upper = this.encode(options.lte)
    else if (options.lt !== undefined) Object.assign(range, { upper: this.encode(options.lt), upperOpen: true })
    else if (this.prefix.length > 0) Object.assign(range, { upper: prefixEnd(this.prefix), upperOpen: true })
    return range
  }

  async get(key: Key): Promise<Uint8Array | undefined> {
    return (await this.root.ready()).get(this.encode(key))
  }

  async put(key: Key, value: Uint8Array): Promise<void> {
    return this.root.batch([{ type: 'put', key: this.encode(key), value }])
  }

  async del(key: Key): Promise<void> {
    return this.root.batch([{ type: 'del', key: this.encode(key) }])
  }

  iterator(options: RangeOptions<Key> = {}): LiteIterator {
    return new LiteIterator(this, this.range(options), options.reverse === true, options.limit ?? -1)
  }

  sublevel(name: string, options: { keyEncoding?: string; valueEncoding?: string } = {}): LiteSublevel {
    return new LiteSublevel(this.root, concat(this.prefix, encoder.encode(`${SEPARATOR}${name}${SEPARATOR}`)), keyEncodingOf(options))
  }
}

/** A sublevel: keys under its prefix, in its key encoding; values are Uint8Arrays. Open and closed with its root. */
export class LiteSublevel extends Space {
  get status(): LiteDb['status'] {
    return this.root.status
  }

  open(): Promise<void> {
    return this.root.open()
  }

  async close(): Promise<void> {}
}

/** A range read in pages, as abstract-level's iterator: nextv(n), all(), close(). */
export class LiteIterator {
  private done = false

  constructor(
    private readonly space: Space,
    private readonly range: ByteRange,
    private readonly reverse: boolean,
    private remaining: number,
  ) {
    if (remaining === 0) this.done = true
  }

  async nextv(size: number): Promise<Array<[Key, Uint8Array]>> {
    if (this.done) return []
    const count = this.remaining < 0 ? size : Math.min(size, this.remaining)
    const store = await this.space.root.ready()
    const rows = await store.read(this.range, this.reverse, count)
    if (this.remaining > 0) this.remaining -= rows.length
    if (rows.length < count || this.remaining === 0) this.done = true
    if (rows.length > 0) {
      // The next page starts after the last key read.
      const last = rows[rows.length - 1][0]
      if (this.reverse) Object.assign(this.range, { upper: last, upperOpen: true })
      else Object.assign(this.range, { lower: last, lowerOpen: true })
    }
    return rows.map(([key, value]) => [this.space.decode(key), value])
  }

  async all(): Promise<Array<[Key, Uint8Array]>> {
    const out: Array<[Key, Uint8Array]> = []
    for (;;) {
      const rows = await this.nextv(1000)
      for (const row of rows) out.push(row)
      if (this.done) return out
    }
  }

  async close(): Promise<void> {
    this.done = true
  }
}

/**
 * The root db: 'view' keys, sublevels, atomic batches whose ops may name a
 * sublevel. Opens on first use or open(); reopens after close().
 */
export class LiteDb extends Space {
  status: 'opening' | 'open' | 'closing' | 'closed' = 'opening'
  private opening: Promise<void> | undefined

  constructor(protected readonly store: ByteStore) {
    super(undefined as unknown as LiteDb, new Uint8Array(0), 'view')
    ;(this as { root: LiteDb }).root = this
  }

  open(): Promise<void> {
    if (this.status === 'open') return Promise.resolve()
    if (this.status === 'closing') return Promise.reject(notOpen())
    this.status = 'opening'
    return (this.opening ??= this.store.open().then(
      () => {
        this.status = 'open'
        this.opening = undefined
      },
      (err) => {
        this.status = 'closed'
        this.opening = undefined
        throw err
      },
    ))
  }

  async close(): Promise<void> {
    if (this.status === 'closed') return
    if (this.status === 'opening') await this.open().catch(() => {})
    if (this.status !== 'open') return
    this.status = 'closing'
    try {
      await this.store.close()
    } finally {
      this.status = 'closed'
    }
  }

  /** The store once open; rejects LEVEL_DATABASE_NOT_OPEN after close(). */
  async ready(): Promise<ByteStore> {
    if (this.status !== 'open') {
      if (this.status !== 'opening') throw notOpen()
      await this.open()
    }
    return this.store
  }

  async batch(ops: readonly BatchOp[]): Promise<void> {
    const encoded: ByteOp[] = ops.map((op) => {
      const key = op.sublevel ? op.sublevel.encode(op.key) : checkView(op.key)
      return op.type === 'del' ? { type: 'del', key } : { type: 'put', key, value: checkView(op.value) }
    })
    if (encoded.length > 0) await (await this.ready()).write(encoded)
  }
}

function keyEncodingOf(options: { keyEncoding?: string; valueEncoding?: string }): KeyEncoding {
  const keys = options.keyEncoding ?? 'utf8'
  if ((keys !== 'view' && keys !== 'utf8') || (options.valueEncoding ?? 'view') !== 'view') {
    throw new TypeError(`this db stores 'view' or 'utf8' keys and 'view' values, not ${keys} / ${options.valueEncoding}`)
  }
  return keys
}

function checkView(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError('keys and values of this db are Uint8Arrays')
  return value
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

/** The first key after every key that starts with `prefix` (a sublevel's, ending in '!'): its last byte plus one. */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice()
  end[end.length - 1]++
  return end
}
