// A handle on a database another handle may share, as each browser tab has
// its own IndexedDB connection to one database: every operation goes to
// `store`, and closing one handle leaves the others (and the data) open.
import { AbstractIterator, AbstractLevel } from 'abstract-level'

const VIEW = { keyEncoding: 'view', valueEncoding: 'view' } as const

export class SharedHandle extends AbstractLevel<Uint8Array, Uint8Array> {
  constructor(private readonly store: AbstractLevel<any, any, any>) {
    super({ encodings: { view: true }, seek: true, has: true, permanence: true } as any, VIEW)
  }

  async _open(): Promise<void> {
    await this.store.open()
  }

  async _close(): Promise<void> {}

  async _get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.store.get(key, VIEW)
  }

  async _getMany(keys: Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return this.store.getMany(keys, VIEW)
  }

  async _has(key: Uint8Array): Promise<boolean> {
    return this.store.has(key, VIEW)
  }

  async _hasMany(keys: Uint8Array[]): Promise<boolean[]> {
    return this.store.hasMany(keys, VIEW)
  }

  async _put(key: Uint8Array, value: Uint8Array): Promise<void> {
    return this.store.put(key, value, VIEW)
  }

  async _del(key: Uint8Array): Promise<void> {
    return this.store.del(key, VIEW)
  }

  async _batch(operations: any[]): Promise<void> {
    return this.store.batch(
      operations.map((op) => (op.type === 'del' ? { type: 'del', key: op.key } : { type: 'put', key: op.key, value: op.value })),
      VIEW,
    )
  }

  async _clear(options: any): Promise<void> {
    return this.store.clear({ ...range(options), ...VIEW })
  }

  _iterator(options: any): any {
    return new ForwardingIterator(this, options, this.store.iterator({ ...range(options), keys: options.keys, values: options.values, ...VIEW }))
  }
}

function range(options: any): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of ['gt', 'gte', 'lt', 'lte', 'limit', 'reverse']) if (options[k] !== undefined) out[k] = options[k]
  return out
}

class ForwardingIterator extends AbstractIterator<any, Uint8Array, Uint8Array> {
  constructor(
    db: SharedHandle,
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
