// Several Logs on one db (the tabs of a browser on one IndexedDB log): they
// write under a shared mutex, each on top of what the others committed, as
// one writer; refresh() shows each what the others wrote.
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { equalBytes } from '../src/core/bytes/bytes.js'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import { COMMITTED_ELSEWHERE, Log } from '../src/core/log/log.js'
import type { LogEntry } from '../src/core/types.js'

const enc = (s: string) => new TextEncoder().encode(s)
const dec = (b: Uint8Array) => new TextDecoder().decode(b)

/** What a Web Lock gives: one holder at a time, in request order. */
function mutex() {
  let tail: Promise<unknown> = Promise.resolve()
  let holders = 0
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(async () => {
      holders++
      try {
        expect(holders).toBe(1)
        return await fn()
      } finally {
        holders--
      }
    })
    tail = run.catch(() => {})
    return run
  }
  return exclusive
}

async function all(log: Log): Promise<LogEntry[]> {
  const out: LogEntry[] = []
  for await (const e of log.read()) out.push(e)
  return out
}

describe('Logs sharing one db', () => {
  it('opened at once on an empty db, they make up one writer id between them', async () => {
    const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    const exclusive = mutex()
    const logs = [new Log(db, { exclusive }), new Log(db, { exclusive }), new Log(db, { exclusive })]
    await Promise.all(logs.map((l) => l.open()))
    expect(new Set(logs.map((l) => l.writerId)).size).toBe(1)
    for (const l of logs) await l.close()
  })

  it('interleaved appends become one chain of one writer, the same for every log, and the db reopens consistent', async () => {
    const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    const exclusive = mutex()
    const a = new Log(db, { exclusive })
    const b = new Log(db, { exclusive })
    await Promise.all([a.open(), b.open()])
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
    const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    const exclusive = mutex()
    const writer = new Log(db, { exclusive })
    const reader = new Log(db, { exclusive })
    await Promise.all([writer.open(), reader.open()])
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
    const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    const exclusive = mutex()
    const a = new Log(db, { exclusive })
    const b = new Log(db, { exclusive })
    await Promise.all([a.open(), b.open()])
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
