/**
 * Who hears of committed batches: change listeners (the emitter, the sync
 * layer), called synchronously per run of one origin, and live readers.
 */
import { ErrorCodes, HyperEmitterError } from '../errors.js'
import type { ChangeListener, LogEntry } from '../types.js'

/** A live reader: pushed every committed batch, woken when the log closes. */
export interface LiveReader {
  push(entries: LogEntry[]): void
  wakeUp(): void
}

export class ChangeListeners {
  private listeners: ChangeListener[] = []
  private readonly readers = new Set<LiveReader>()

  /** See Log.onChange(). */
  add(listener: ChangeListener): () => void {
    if (typeof listener !== 'function') throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'onChange() takes a function')
    // Copy-on-write: emit() iterates a snapshot without copying.
    this.listeners = [...this.listeners, listener]
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener)
    }
  }

  addReader(reader: LiveReader): void {
    this.readers.add(reader)
  }

  removeReader(reader: LiveReader): void {
    this.readers.delete(reader)
  }

  /** The log closed: live readers end once they have delivered what they hold. */
  endReaders(): void {
    for (const r of this.readers) r.wakeUp()
    this.readers.clear()
  }

  /** Tells everyone of a committed batch; `origins[i]` is entry i's. */
  emit(entries: LogEntry[], origins: unknown[]): void {
    const listeners = this.listeners
    for (const r of this.readers) r.push(entries)
    if (listeners.length === 0) return
    let start = 0
    for (let i = 1; i <= entries.length; i++) {
      if (i < entries.length && origins[i] === origins[start]) continue
      const run = start === 0 && i === entries.length ? entries : entries.slice(start, i)
      for (const l of listeners) {
        try {
          l(run, origins[start])
        } catch (err) {
          rethrowAsync(err)
        }
      }
      start = i
    }
  }
}

function rethrowAsync(err: unknown): void {
  // A throwing listener must not undo a committed batch or starve the other
  // listeners; surface it the way EventTarget does, outside our call stack.
  setTimeout(() => {
    throw err
  }, 0)
}
