// Several Logs on one db (the tabs of a browser on one IndexedDB log): they
// write under a shared mutex, each on top of what the others committed, as
// one writer; refresh() shows each what the others wrote.
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { until } from './session-helpers.js'
import { equalBytes } from '../src/core/bytes/bytes.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { COMMITTED_ELSEWHERE, type DbLock, Log, type LogOptions } from '../src/core/log/log.js'
import type { LogEntry } from '../src/core/types.js'

const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

/** What a Web Lock gives: exclusive holders one at a time, shared ones together, in request order; `modes` lists what was asked. */
function webLock() {
  const modes: Array<'exclusive' | 'shared'> = []
  const queue: Array<{ mode: 'exclusive' | 'shared'; start: () => void }> = []
  let held: 'exclusive' | 'shared' | undefined
  let holders = 0
  const pump = (): void => {
    while (queue.length > 0 && (holders === 0 || (held === 'shared' && queue[0].mode === 'shared'))) {
      const next = queue.shift()!
      held = next.mode
      holders++
      next.start()
    }
  }
  const lock: DbLock = (mode, fn) => {
    modes.push(mode)
    return new Promise((resolve, reject) => {
      queue.push({
        mode,
        start: () => {
          if (mode === 'exclusive') expect(holders).toBe(1)
          fn()
            .then(resolve, reject)
            .finally(() => {
              if (--holders === 0) held = undefined
              pump()
            })
        },
      })
      pump()
    })
  }
  return { lock, modes }
}

/** `count` logs on one fresh db, sharing one mutex, opened at once; `options[i]` adds to log i's options. */
async function logsOnOneDb(count: number, options: LogOptions[] = []): Promise<{ db: MemoryLevel<Uint8Array, Uint8Array>; logs: Log[]; modes: Array<'exclusive' | 'shared'> }> {
  const db = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })
  const { lock, modes } = webLock()
  const logs = Array.from({ length: count }, (_, i) => new Log(db, { lock, ...options[i] }))
  await Promise.all(logs.map((l) => l.open()))
  return { db, logs, modes }
}

async function all(log: Log): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  for await (const e of log.read()) out.push(e)
  return out
}

describe('Logs sharing one db', () => {
  it('opened at once on an empty db, they make up one writer id between them; on a db with a log, they open side by side', async () => {
    const { db, logs, modes } = await logsOnOneDb(3)
    expect(new Set(logs.map((l) => l.writerId)).size).toBe(1)
    expect(modes).toEqual(['exclusive', 'exclusive', 'exclusive'])
    await logs[0].append(enc('one'))
    const { lock, modes: later } = webLock()
    const more = [new Log(db, { lock }), new Log(db, { lock })]
    await Promise.all(more.map((l) => l.open()))
    expect(later).toEqual(['shared', 'shared'])
    for (const l of [...logs, ...more]) expect(l.writerId).toBe(logs[0].writerId)
    await more[0].append(enc('two'))
    expect(later).toEqual(['shared', 'shared', 'exclusive'])
    for (const l of [...logs, ...more]) await l.close()
  })

  it('interleaved appends become one chain of one writer, the same for every log, and the db reopens consistent', async () => {
    const {
      db,
      logs: [a, b],
    } = await logsOnOneDb(2)
    // Enough for several key checkpoints, written by either log.
    const rounds = 30
    for (let r = 0; r < rounds; r++) {
      const writes: Promise<unknown>[] = []
      for (let i = 0; i < 50; i++) writes.push(a.append(enc(`a ${r} ${i}`)), b.append(enc(`b ${r} ${i}`)))
      await Promise.all(writes)
    }
    await Promise.all([a.refresh(), b.refresh()])
    const total = rounds * 100
    for (const log of [a, b]) {
      expect(log.length).toBe(total)
      expect(log.clock()).toEqual(new Map([[a.writerId, total]]))
    }
    expect(a.heads()).toEqual(b.heads())
    const entries = await all(a)
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    for (let i = 1; i < entries.length; i++) expect(equalBytes(entries[i].links[0], entries[i - 1].key)).toBe(true)
    expect(entries.filter((e) => dec(e.value).startsWith('b')).length).toBe(total / 2)
    // Every key is found by every log, and by a log opened afresh on the db (the key index records are whole).
    await a.close()
    await b.close()
    const again = new Log(db)
    await again.open()
    expect(again.length).toBe(total)
    expect(again.heads()).toEqual([entries[total - 1].key])
    for (const e of [entries[0], entries[1500], entries[total - 1]]) expect((await again.get(e.key))?.change).toBe(e.change)
    await again.append(enc('after'))
    expect((await all(again)).length).toBe(total + 1)
    await again.close()
  })

  it('refresh() hands what another log committed to listeners (origin COMMITTED_ELSEWHERE) and live readers, once', async () => {
    const {
      logs: [writer, reader],
    } = await logsOnOneDb(2)
    const heard: Array<[string, unknown]> = []
    reader.onChange((entries, origin) => {
      for (const e of entries) heard.push([dec(e.value), origin])
    })
    const live = reader.read({ live: true })
    for (let i = 0; i < 5; i++) await writer.append(enc(`e${i}`))
    expect(heard).toEqual([])
    await reader.refresh()
    await reader.refresh()
    expect(heard).toEqual(Array.from({ length: 5 }, (_, i) => [`e${i}`, COMMITTED_ELSEWHERE]))
    for (let i = 0; i < 5; i++) expect(dec((await live.next()).value.value)).toBe(`e${i}`)
    // The reader's own append goes on top of what it loaded.
    const own = await reader.append(enc('own'))
    expect(own.seq).toBe(6)
    expect(own.change).toBe(6)
    await writer.close()
    await reader.close()
    await expect(reader.refresh()).rejects.toSatisfy((err) => isHyperEmitterError(err, ErrorCodes.CLOSED))
  })

  it('a write that finds the db damaged past its last change fails with STORAGE_FAILED, and stores nothing', async () => {
    const {
      db,
      logs: [a, b],
    } = await logsOnOneDb(2)
    await a.append(enc('one'))
    // A chunk that does not follow change 1 (as a torn or foreign write would leave).
    const sub = db.sublevel<Uint8Array, Uint8Array>('hyperemitter', { keyEncoding: 'view', valueEncoding: 'view' })
    const key = new Uint8Array(9)
    key[0] = 0x63
    key[8] = 5
    await sub.put(key, new Uint8Array(40))
    const err = await b.append(enc('two')).catch((e: unknown) => e)
    expect(isHyperEmitterError(err, ErrorCodes.STORAGE_FAILED)).toBe(true)
    await a.close()
    await b.close()
  })
})

describe('Logs sharing one db, taking turns', () => {
  it('a long backlog in one log gives the write turn up now and then, so another log writes in between', async () => {
    const {
      logs: [busy, other],
    } = await logsOnOneDb(2, [{ maxBatch: 10 }])
    // Thousands of small batches: far longer than one turn.
    const backlog = Array.from({ length: 20_000 }, (_, i) => busy.append(enc(`busy ${i}`)))
    await new Promise((resolve) => setTimeout(resolve, 5))
    const mine = await other.append(enc('in between'))
    const last = await backlog[backlog.length - 1]
    expect(mine.change).toBeLessThan(last.change)
    await Promise.all(backlog)
    await busy.refresh()
    expect(busy.length).toBe(20_001)
    await busy.close()
    await other.close()
  })
})

describe('Logs sharing one db, loading while another writes', () => {
  it('a key checkpoint written between reading the chunks and reading the checkpoints waits for the next load; the db stays whole', async () => {
    const {
      db,
      logs: [writer, reader],
    } = await logsOnOneDb(2)
    for (let i = 0; i < 1000; i++) void writer.append(enc(`w${i}`))
    await writer.append(enc('w last'))
    // Hold the reader's load after it read the chunks ('c' after the sublevel's 14-byte prefix) and
    // before it reads the key checkpoints (memory-level's iterators see the db as it was when made).
    let pause: Promise<void> | undefined
    let resume!: () => void
    const makeIterator = (db as any)._iterator.bind(db)
    ;(db as any)._iterator = (options: { gte?: Uint8Array }) => {
      const it = makeIterator(options)
      if (options.gte?.[14] !== 0x63) return it
      const nextv = it._nextv.bind(it)
      it._nextv = async (size: number, o: unknown) => {
        const rows = await nextv(size, o)
        if (rows.length === 0 && pause === undefined) {
          pause = new Promise<void>((r) => (resume = r))
          await pause
        }
        return rows
      }
      return it
    }
    const loading = reader.refresh()
    await until(() => pause !== undefined)
    // Meanwhile the writer crosses a checkpoint: its k record covers changes the reader has not loaded.
    for (let i = 0; i < 100; i++) void writer.append(enc(`x${i}`))
    await writer.append(enc('x last'))
    resume()
    await loading
    // The reader writes on, checkpoints included, on top of it all.
    for (let i = 0; i < 2000; i++) void reader.append(enc(`r${i}`))
    const last = await reader.append(enc('r last'))
    await writer.close()
    await reader.close()
    const again = new Log(db)
    await again.open()
    expect(again.length).toBe(last.change)
    for await (const e of again.read()) if (e.change % 97 === 0) expect((await again.get(e.key))?.change).toBe(e.change)
    await again.close()
  })
})
