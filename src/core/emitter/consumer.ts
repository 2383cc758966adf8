/**
 * Durable consumers: where a named listener or iterator left off, stored in
 * the db so a restart resumes right after it.
 */
import type { Db } from '../types.js'
import { ErrorCodes, HyperEmitterError } from '../errors.js'

/**
 * The stored position of one named, durable consumer: the change number of
 * the last event its handler finished with. Saved strictly after the
 * handler completed, so a crash in between redelivers (at-least-once) and
 * never skips; saves are serialized and only move forward.
 */
export class ConsumerCursor {
  private readonly store
  private saved = 0
  private wanted = 0
  private writing: Promise<void> | undefined

  constructor(
    db: Db,
    readonly name: string,
    private readonly onError: (err: unknown) => void,
  ) {
    this.store = db.sublevel<string, Uint8Array>('hyperemitter-consumers', { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  /** The stored position, or undefined for a consumer never seen on this db. */
  async load(): Promise<number | undefined> {
    let value: Uint8Array | undefined
    try {
      value = await this.store.get(this.name)
    } catch (cause) {
      throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `could not read the position of consumer "${this.name}"`, { cause })
    }
    if (value === undefined) return undefined
    this.saved = this.wanted = Number(new DataView(value.buffer, value.byteOffset, value.byteLength).getBigUint64(0))
    return this.saved
  }

  /** Record that the handler finished with `change`; written soon, coalesced with later ones. */
  advance(change: number): void {
    if (change <= this.wanted) return
    this.wanted = change
    this.writing ??= this.writeLoop()
  }

  /**
   * Forget the stored position, so the next reader starts from its `from`
   * (e.g. the CLI's --from-scratch). Call it while no reader uses the name.
   * Rejects STORAGE_FAILED.
   */
  async reset(): Promise<void> {
    await this.flush()
    try {
      await this.store.del(this.name)
    } catch (cause) {
      throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `could not reset the position of consumer "${this.name}"`, { cause })
    }
    this.saved = this.wanted = 0
  }

  /** Resolves once every advance() so far is stored. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing
  }

  private async writeLoop(): Promise<void> {
    try {
      while (this.saved < this.wanted) {
        const position = this.wanted
        const value = new Uint8Array(8)
        new DataView(value.buffer).setBigUint64(0, BigInt(position))
        try {
          await this.store.put(this.name, value)
        } catch (cause) {
          this.onError(new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `could not save the position of consumer "${this.name}"`, { cause }))
          return
        }
        this.saved = position
      }
    } finally {
      this.writing = undefined
    }
  }
}
