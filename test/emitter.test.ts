import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { MemoryLevel } from 'memory-level'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { ErrorCodes, HyperEmitter, HyperEmitterError } from '../src/index.js'
import { captureChunkRecords, dbFactories, ownsBuffer, spyBatch } from './helpers/dbs.js'

// The seed's fixture schema: Hello, userAdded, userRemoved (proto2).
const SCHEMA = readFileSync(new URL('./fixtures/messages.proto', import.meta.url), 'utf8')

/** Resolves after `n` calls of the returned collector. */
function collector<T>(n: number) {
  const seen: T[] = []
  let resolve!: () => void
  const done = new Promise<void>((r) => (resolve = r))
  const push = (value: T) => {
    seen.push(value)
    if (seen.length === n) resolve()
  }
  return { seen, push, done }
}

const open: Array<{ close(): Promise<void> }> = []
function track<T extends { close(): Promise<void> }>(emitter: T): T {
  open.push(emitter)
  return emitter
}
afterEach(async () => {
  for (const e of open.splice(0)) await e.close().catch(() => {})
})

describe('construction', () => {
  it('works with and without new, and in the options form', async () => {
    const a = track(new HyperEmitter(new MemoryLevel(), SCHEMA))
    const b = track(HyperEmitter(new MemoryLevel(), SCHEMA))
    const c = track(HyperEmitter({ schema: SCHEMA }))
    for (const e of [a, b, c]) {
      expect(e).toBeInstanceOf(HyperEmitter)
      await e.ready()
      expect(Object.keys(e.messages)).toContain('Hello')
      expect(e.codecs).toBe(e.messages)
    }
  })

  it('refuses a db that is not abstract-level, with a code', () => {
    expect(() => HyperEmitter('not a db' as never, SCHEMA)).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    )
  })

  it('refuses an unparsable schema with INVALID_SCHEMA', () => {
    expect(() => HyperEmitter(null, 'message {')).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_SCHEMA }))
  })

  it('loads a schema from a stream', async () => {
    const e = track(HyperEmitter(null, Readable.from([Buffer.from(SCHEMA.slice(0, 20)), Buffer.from(SCHEMA.slice(20))])))
    await e.ready()
    const got = collector<unknown>(1)
    e.on('Hello', got.push)
    await e.emit('Hello', { from: 'stream' })
    await got.done
    expect(got.seen[0]).toEqual({ from: 'stream', message: '' })
  })

  it('rejects emits with the start-up failure when a streamed schema is bad, each with its own error', async () => {
    const e = HyperEmitter(null, Readable.from(['message {']))
    e.status.on('error', () => {})
    const [a, b] = await Promise.allSettled([e.emit('A', {}), e.emit('B', {})])
    expect(a).toMatchObject({ status: 'rejected', reason: { code: ErrorCodes.INVALID_SCHEMA } })
    expect(b).toMatchObject({ status: 'rejected', reason: { code: ErrorCodes.INVALID_SCHEMA } })
    expect((a as PromiseRejectedResult).reason).not.toBe((b as PromiseRejectedResult).reason)
    await e.close()
  })

  it('keeps a db it was given open, closes one it made', async () => {
    const db = new MemoryLevel()
    const given = HyperEmitter(db, SCHEMA)
    await given.ready()
    await given.close()
    expect(db.status).toBe('open')
    await db.close()
  })

  it('in Node, hands the db small records in shared buffers unless told not to (sharedRecordBuffers)', async () => {
    for (const [options, shared] of [[{}, true], [{ sharedRecordBuffers: false }, false]] as const) {
      const db = new MemoryLevel()
      const records = captureChunkRecords(db)
      const e = track(HyperEmitter(db, SCHEMA, options))
      await e.emit('Hello', { from: 'a' })
      await e.emit('Hello', { from: 'b' })
      expect(records).toHaveLength(2)
      for (const r of records) expect(ownsBuffer(r), JSON.stringify(options)).toBe(!shared)
    }
  })

  it('emits status ready', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const ready = vi.fn()
    e.status.on('ready', ready)
    await e.ready()
    expect(ready).toHaveBeenCalledTimes(1)
  })
})

describe('emit and on', () => {
  it('delivers plain objects with defaults, as the seed shows', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const got = collector<Record<string, unknown>>(1)
    e.on('Hello', got.push)
    await e.emit('Hello', { from: 'Matteo' })
    await got.done
    expect(got.seen[0]).toEqual({ from: 'Matteo', message: '' })
    expect(Object.keys(got.seen[0]).sort()).toEqual(['from', 'message'])
    expect(got.seen[0]).not.toHaveProperty('$typeName')
  })

  it('resolves emit and calls back once stored, with nothing listening', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    await expect(e.emit('Hello', { from: 'a' })).resolves.toBeUndefined()
    const err = await new Promise((resolve) => e.emit('Hello', { from: 'b' }, resolve))
    expect(err).toBeNull()
    const events = []
    for await (const ev of e.events({ from: 'beginning' })) {
      events.push(ev)
      if (events.length === 2) break
    }
    expect(events.map((ev) => ev.payload.from)).toEqual(['a', 'b'])
  })

  it('does not wait for a listener that never calls done', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    e.on('Hello', (_msg: unknown, _done: () => void) => {})
    await e.emit('Hello', { from: 'a' })
    await e.emit('Hello', { from: 'b' })
  })

  it('refuses invalid messages with their own codes and appends nothing', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const seen: unknown[] = []
    e.on('Hello', (m) => {
      seen.push(m)
    })
    const cases: Array<[string, unknown, string]> = [
      ['Nope', { from: 'x' }, ErrorCodes.UNKNOWN_EVENT],
      ['Hello', { message: 'no from' }, ErrorCodes.MISSING_FIELD],
      ['Hello', { from: 'x', extra: 1 }, ErrorCodes.UNKNOWN_FIELD],
      ['Hello', { from: 42 }, ErrorCodes.INVALID_FIELD],
    ]
    for (const [name, message, code] of cases) {
      await expect(e.emit(name, message)).rejects.toMatchObject({ code })
    }
    await e.emit('Hello', { from: 'ok' })
    const all = []
    for await (const ev of e.events({ from: 'beginning' })) {
      all.push(ev)
      break
    }
    expect(all).toEqual([{ name: 'Hello', payload: { from: 'ok', message: '' } }])
    await vi.waitFor(() => expect(seen).toHaveLength(1))
  })

  it('encodes an emit made while another is being encoded (a getter that emits) without mixing their bytes', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const got = collector<{ name: string; payload: unknown }>(3)
    ;(async () => {
      for await (const ev of e.events({ from: 'beginning' })) got.push(ev)
    })()
    const outer = {
      from: 'outer',
      // Read while `outer` is encoded: this nested emit encodes in between.
      get message() {
        void e.emit('userAdded', { id: 7, username: 'nested, and longer than the outer message' })
        return 'outer message'
      },
    }
    await e.emit('Hello', outer)
    await e.emit('Hello', { from: 'after' })
    await got.done
    expect(got.seen).toEqual([
      { name: 'userAdded', payload: { id: 7, username: 'nested, and longer than the outer message' } },
      { name: 'Hello', payload: { from: 'outer', message: 'outer message' } },
      { name: 'Hello', payload: { from: 'after', message: '' } },
    ])
  })

  it('packs custom codec payloads and raw bytes as given', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    e.registerCodec('Note', { encode: (v: string) => new TextEncoder().encode(v), decode: (b: Uint8Array) => new TextDecoder().decode(b) })
    const got = collector<{ name: string; payload: unknown }>(3)
    ;(async () => {
      for await (const ev of e.events({ from: 'beginning' })) got.push(ev)
    })()
    void e.emit('Note', 'first')
    void e.emit('Raw', new Uint8Array([1, 2, 3]))
    await e.emit('Hello', { from: 'last' })
    await got.done
    expect(got.seen).toEqual([
      { name: 'Note', payload: 'first' },
      { name: 'Raw', payload: new Uint8Array([1, 2, 3]) },
      { name: 'Hello', payload: { from: 'last', message: '' } },
    ])
  })

  it('sends failures to the callback only: no unhandled rejection', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const unhandled = vi.fn()
    process.on('unhandledRejection', unhandled)
    try {
      const err = await new Promise<Error | null>((resolve) => e.emit('Nope', {}, resolve))
      expect(err).toBeInstanceOf(HyperEmitterError)
      expect((err as HyperEmitterError).code).toBe(ErrorCodes.UNKNOWN_EVENT)
      await e.close()
      const closedErr = await new Promise<Error | null>((resolve) => e.emit('Hello', { from: 'x' }, resolve))
      expect((closedErr as HyperEmitterError).code).toBe(ErrorCodes.CLOSED)
      await new Promise((r) => setTimeout(r, 20))
      expect(unhandled).not.toHaveBeenCalled()
    } finally {
      process.off('unhandledRejection', unhandled)
    }
  })

  it('gives each handler its events in log order, one at a time, gated by done or a promise', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const N = 50
    let active = 0
    let maxActive = 0
    const byDone = collector<number>(N)
    const byPromise = collector<number>(N)
    const fast = collector<number>(N)
    e.on('userAdded', (m: { id: number }, done: () => void) => {
      active++
      maxActive = Math.max(maxActive, active)
      setTimeout(() => {
        active--
        byDone.push(m.id)
        done()
      }, 1)
    })
    e.on('userAdded', async (m: { id: number }) => {
      await new Promise((r) => setTimeout(r, 1))
      byPromise.push(m.id)
    })
    e.on('userAdded', (m: { id: number }) => fast.push(m.id))
    await Promise.all(Array.from({ length: N }, (_, i) => e.emit('userAdded', { id: i, username: 'u' })))
    // The synchronous handler is not held back by the slow ones.
    await fast.done
    expect(byDone.seen.length).toBeLessThan(N)
    await Promise.all([byDone.done, byPromise.done])
    const expected = Array.from({ length: N }, (_, i) => i)
    expect(byDone.seen).toEqual(expected)
    expect(byPromise.seen).toEqual(expected)
    expect(fast.seen).toEqual(expected)
    expect(maxActive).toBe(1)
  })

  it('catches a slow listener up from the log without losing or reordering events', async () => {
    const e = track(HyperEmitter({ schema: SCHEMA, maxQueue: 8 }))
    const N = 300
    const got = collector<number>(N)
    e.on('userAdded', async (m: { id: number }) => {
      await new Promise((r) => setImmediate(r))
      got.push(m.id)
    })
    await Promise.all(Array.from({ length: N }, (_, i) => e.emit('userAdded', { id: i })))
    await got.done
    expect(got.seen).toEqual(Array.from({ length: N }, (_, i) => i))
  })

  it('reports a throwing listener on status error and keeps delivering', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const errors: HyperEmitterError[] = []
    e.status.on('error', (err) => errors.push(err as HyperEmitterError))
    const got = collector<string>(2)
    e.on('Hello', (m: { from: string }) => {
      got.push(m.from)
      if (m.from === 'a') throw new Error('boom')
    })
    await e.emit('Hello', { from: 'a' })
    await e.emit('Hello', { from: 'b' })
    await got.done
    expect(got.seen).toEqual(['a', 'b'])
    expect(errors).toHaveLength(1)
    expect(errors[0].code).toBe(ErrorCodes.LISTENER_FAILED)
  })

  it('once() fires once; removeListener()/off() stop delivery', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const once = vi.fn()
    const removed = vi.fn()
    const kept = collector<string>(3)
    e.once('Hello', once)
    e.on('Hello', removed)
    e.on('Hello', (m: { from: string }) => kept.push(m.from))
    e.removeListener('Hello', removed)
    expect(e.listenerCount('Hello')).toBe(2)
    for (const from of ['a', 'b', 'c']) await e.emit('Hello', { from })
    await kept.done
    expect(once).toHaveBeenCalledTimes(1)
    expect(once).toHaveBeenCalledWith({ from: 'a', message: '' })
    expect(removed).not.toHaveBeenCalled()
    expect(e.listenerCount('Hello')).toBe(1)
    expect(e.off('Hello', once)).toBe(e)
  })

  it('validates on() arguments', () => {
    const e = track(HyperEmitter(null, SCHEMA))
    expect(() => e.on('Hello', 'nope' as never)).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    expect(() => e.on('' as never, () => {})).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
  })
})

describe('emits fired together', () => {
  /** A memory db whose batches are counted, and failed on demand. */
  function countedDb() {
    const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    return { db, spy: spyBatch(db) }
  }

  async function storedFroms(e: { events(o: { from: 'beginning' }): AsyncIterable<{ payload: any }> }, n: number): Promise<string[]> {
    const froms: string[] = []
    if (n === 0) return froms
    for await (const ev of e.events({ from: 'beginning' })) {
      froms.push(ev.payload.from)
      if (froms.length === n) break
    }
    return froms
  }

  it('go in one batch; a bad one among them is refused alone, at once', async () => {
    const { db, spy } = countedDb()
    const e = track(HyperEmitter(db, SCHEMA))
    await e.ready()
    const before = spy.calls
    const good = ['a', 'b', 'c', 'd'].map((from) => e.emit('Hello', { from }))
    const bad = e.emit('Hello', { from: 7 } as any)
    const settled: string[] = []
    bad.catch(() => settled.push('bad'))
    good[0].then(() => settled.push('good'))
    await expect(bad).rejects.toMatchObject({ code: ErrorCodes.INVALID_FIELD })
    await Promise.all(good)
    expect(settled[0]).toBe('bad')
    expect(spy.calls - before).toBe(1)
    expect(await storedFroms(e, 4)).toEqual(['a', 'b', 'c', 'd'])
  })

  it('more than a batch holds are split into batches of 1000, all stored in order', async () => {
    const { db, spy } = countedDb()
    const e = track(HyperEmitter(db, SCHEMA))
    await e.ready()
    const before = spy.calls
    const pending = Array.from({ length: 2500 }, (_, i) => e.emit('Hello', { from: `e${i}` }))
    await Promise.all(pending)
    expect(new Set(pending).size).toBe(3)
    expect(spy.calls - before).toBe(3)
    const froms = await storedFroms(e, 2500)
    expect(froms.filter((f, i) => f !== `e${i}`)).toEqual([])
  })

  it('a failed batch rejects all its emits with STORAGE_FAILED, stores none, and the emitter goes on', async () => {
    const { db, spy } = countedDb()
    const e = track(HyperEmitter(db, SCHEMA))
    await e.ready()
    spy.failNext = 1
    const results = await Promise.allSettled([e.emit('Hello', { from: 'x' }), e.emit('Hello', { from: 'y' })])
    expect(results.map((r) => r.status === 'rejected' && (r.reason as HyperEmitterError).code)).toEqual([
      ErrorCodes.STORAGE_FAILED,
      ErrorCodes.STORAGE_FAILED,
    ])
    await e.emit('Hello', { from: 'z' })
    expect(await storedFroms(e, 1)).toEqual(['z'])
  })

  it('calls the callbacks of one turn once each, in emit order, after the listener had the events; one that throws stops none of the others', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    await e.ready()
    const order: string[] = []
    e.on('Hello', (m: { from: string }) => {
      order.push(`listener ${m.from}`)
    })
    const runners = process.listeners('unhandledRejection')
    process.removeAllListeners('unhandledRejection')
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      const all = new Promise<void>((resolve) => {
        for (let i = 0; i < 5; i++) {
          e.emit('Hello', { from: String(i) }, (err) => {
            order.push(`callback ${i} ${err === null ? 'ok' : 'failed'}`)
            if (i === 1) throw new Error('a callback that throws')
            if (i === 4) resolve()
          })
        }
      })
      // A failing emit in the same turn reaches its own callback only.
      const refused = new Promise<Error | null>((resolve) => e.emit('Nope', {}, resolve))
      await all
      expect(((await refused) as HyperEmitterError).code).toBe(ErrorCodes.UNKNOWN_EVENT)
      expect(order).toEqual([
        ...[0, 1, 2, 3, 4].map((i) => `listener ${i}`),
        ...[0, 1, 2, 3, 4].map((i) => `callback ${i} ok`),
      ])
      await vi.waitFor(() => expect(unhandled.map((r) => (r as Error).message)).toEqual(['a callback that throws']))
    } finally {
      process.off('unhandledRejection', onUnhandled)
      for (const l of runners) process.on('unhandledRejection', l)
    }
    expect(() => e.emit('Hello', { from: 'x' }, 'not a function' as never)).toThrow(/callback must be a function/)
  })

  it('in a failed batch, a callback emit does not hide the failure of a promise emit nobody handles', async () => {
    const { db, spy } = countedDb()
    const e = track(HyperEmitter(db, SCHEMA))
    await e.ready()
    // Only this test's listener sees unhandled rejections meanwhile (the runner's would fail the run).
    const runners = process.listeners('unhandledRejection')
    process.removeAllListeners('unhandledRejection')
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      spy.failNext = 1
      const viaCallback = new Promise<Error | null>((resolve) => e.emit('Hello', { from: 'cb' }, resolve))
      void e.emit('Hello', { from: 'nobody awaits this' })
      expect(((await viaCallback) as HyperEmitterError).code).toBe(ErrorCodes.STORAGE_FAILED)
      await vi.waitFor(() => expect(unhandled.map((r) => (r as HyperEmitterError).code)).toEqual([ErrorCodes.STORAGE_FAILED]))
    } finally {
      process.off('unhandledRejection', onUnhandled)
      for (const l of runners) process.on('unhandledRejection', l)
    }
  })

  it('encode the message during the call, even before ready: changing it afterwards changes nothing', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const message = { from: 'original' }
    const stored = e.emit('Hello', message)
    message.from = 'changed later'
    await stored
    expect(await storedFroms(e, 1)).toEqual(['original'])
  })

  it('keep their order across a streamed schema loading while the db still opens', async () => {
    // A db that opens slowly, so there is a window with the schema loaded and the log not open.
    const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
    const open = db.open.bind(db)
    ;(db as any).open = async (...args: unknown[]) => {
      await new Promise((r) => setTimeout(r, 100))
      return (open as any)(...args)
    }
    const e = track(HyperEmitter(db, Readable.from([Buffer.from(SCHEMA)])))
    const first = e.emit('Hello', { from: 'while the schema loads' })
    await vi.waitFor(() => expect(Object.keys(e.messages)).toContain('Hello'))
    expect(db.status).not.toBe('open')
    const second = e.emit('Hello', { from: 'after it loaded' })
    await Promise.all([first, second])
    expect(await storedFroms(e, 2)).toEqual(['while the schema loads', 'after it loaded'])
    await db.close()
  })

  it("keep their order across ready: emits made before it come before a 'ready' handler's", async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    let fromHandler: Promise<void> | undefined
    e.status.on('ready', () => {
      fromHandler = e.emit('Hello', { from: 'in ready handler' })
    })
    const early = [e.emit('Hello', { from: 'early 1' }), e.emit('Hello', { from: 'early 2' })]
    await Promise.all(early)
    await fromHandler
    expect(await storedFroms(e, 3)).toEqual(['early 1', 'early 2', 'in ready handler'])
  })
})

describe('delivery by name', () => {
  it('named listeners get only their events, in order, beside an iterator that gets all; a node whose value is no event is reported and skipped', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    await e.ready()
    const added: number[] = []
    const removed: number[] = []
    e.on('userAdded', (m: any) => {
      added.push(m.id)
    })
    e.on('userRemoved', (m: any) => {
      removed.push(m.id)
    })
    const errors: Error[] = []
    e.status.on('error', (err) => errors.push(err))
    const all: string[] = []
    const reading = (async () => {
      for await (const ev of e.events()) {
        all.push(`${ev.name}:${(ev.payload as any).id ?? (ev.payload as any).from}`)
        if (all.length === 7) break
      }
    })()
    await new Promise((r) => setTimeout(r, 0))
    const emits = [e.emit('userAdded', { id: 1 }), e.emit('Hello', { from: 'x' }), e.emit('userRemoved', { id: 1 }), e.emit('userAdded', { id: 2 })]
    await Promise.all(emits)
    // A node from elsewhere whose value is not an event envelope (wire type 7 is no protobuf).
    const log = (e as any).log
    await log.append(Uint8Array.of(0x0f, 0x01))
    await Promise.all([e.emit('userAdded', { id: 3 }), e.emit('Hello', { from: 'y' }), e.emit('userRemoved', { id: 3 })])
    await reading
    // With the iterator gone only named listeners are left: events nobody takes are read by name only.
    await log.append(Uint8Array.of(0x0f, 0x02))
    await Promise.all([e.emit('Hello', { from: 'z' }), e.emit('userAdded', { id: 4 }), e.emit('Hello', { from: 'w' }), e.emit('userRemoved', { id: 4 })])
    await vi.waitFor(() => expect(removed).toEqual([1, 3, 4]))
    expect(added).toEqual([1, 2, 3, 4])
    expect(all).toEqual(['userAdded:1', 'Hello:x', 'userRemoved:1', 'userAdded:2', 'userAdded:3', 'Hello:y', 'userRemoved:3'])
    expect(errors.map((err) => (err as HyperEmitterError).code)).toEqual([ErrorCodes.INVALID_NODE, ErrorCodes.INVALID_NODE])
  })
})

describe('registerCodec', () => {
  const json = {
    encode: (v: unknown) => new TextEncoder().encode(JSON.stringify(v)),
    decode: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)),
  }

  it('takes (name, codec), an object and an array, and chains', async () => {
    const e = track(HyperEmitter())
    expect(e.registerCodec('A', json).registerCodec({ B: json }).registerCodec([{ name: 'C', codec: json }])).toBe(e)
    const got = collector<unknown>(3)
    for (const name of ['A', 'B', 'C']) e.on(name, got.push)
    await e.emit('A', { a: 1 })
    await e.emit('B', [2])
    await e.emit('C', 'three')
    await got.done
    expect(got.seen).toEqual([{ a: 1 }, [2], 'three'])
  })

  it('refuses malformed codecs and unknown names without bytes', async () => {
    const e = track(HyperEmitter())
    expect(() => e.registerCodec('A', { encode() {} } as never)).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    )
    await expect(e.emit('Raw', { not: 'bytes' })).rejects.toMatchObject({ code: ErrorCodes.UNKNOWN_EVENT })
    const got = collector<unknown>(1)
    e.on('Raw', got.push)
    await e.emit('Raw', new Uint8Array([1, 2, 3]))
    await got.done
    expect(got.seen[0]).toEqual(new Uint8Array([1, 2, 3]))
  })
})

describe('streams and iterators', () => {
  it('stream() emits what is written and reads events from now, even before ready', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const stream = e.stream()
    const read: unknown[] = []
    stream.on('data', (ev) => read.push(ev))
    stream.write({ name: 'Hello', payload: { from: 'stream' } })
    await e.emit('Hello', { from: 'direct' })
    await vi.waitFor(() => expect(read).toHaveLength(2))
    expect(read).toEqual([
      { name: 'Hello', payload: { from: 'stream', message: '' } },
      { name: 'Hello', payload: { from: 'direct', message: '' } },
    ])
    stream.destroy()
  })

  it("stream({ from: 'beginning' }) replays the log in order, then goes live", async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    await e.emit('userAdded', { id: 1 })
    await e.emit('userRemoved', { id: 1 })
    const stream = e.stream({ from: 'beginning' })
    const read: Array<{ name: string }> = []
    stream.on('data', (ev) => read.push(ev))
    await vi.waitFor(() => expect(read).toHaveLength(2))
    await e.emit('userAdded', { id: 2 })
    await vi.waitFor(() => expect(read).toHaveLength(3))
    expect(read.map((ev) => ev.name)).toEqual(['userAdded', 'userRemoved', 'userAdded'])
    stream.destroy()
  })

  it('a bad write errors the stream with a coded error', async () => {
    const e = track(HyperEmitter(null, SCHEMA))
    const stream = e.stream()
    const err = await new Promise<HyperEmitterError>((resolve) => {
      stream.on('error', resolve)
      stream.write({ name: 'Nope', payload: {} })
    })
    expect(err.code).toBe(ErrorCodes.UNKNOWN_EVENT)
  })

  it('events() iterates live and ends when the emitter closes', async () => {
    const e = HyperEmitter(null, SCHEMA)
    const seen: string[] = []
    const loop = (async () => {
      for await (const ev of e.events()) seen.push(ev.payload.from)
    })()
    await e.emit('Hello', { from: 'a' })
    await e.emit('Hello', { from: 'b' })
    await vi.waitFor(() => expect(seen).toEqual(['a', 'b']))
    await e.close()
    await loop
  })

  it('refuses an invalid start position', () => {
    const e = track(HyperEmitter(null, SCHEMA))
    expect(() => e.events({ from: 'yesterday' as never })).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    )
  })
})

describe.each(dbFactories.map((f) => f()))('persistence on $name', (factory) => {
  afterAll(() => factory.cleanup())

  it('keeps its id, and does not redeliver old events after a restart', async () => {
    const db = factory.create()
    const first = HyperEmitter(db, SCHEMA)
    const id = await first.getId()
    expect(id).toMatch(/^[0-9a-f]{32}$/)
    await first.emit('Hello', { from: 'before' })
    await first.close()
    await db.close()

    const again = factory.reopen(db)
    if (!again) return // memory dbs do not survive close
    const second = HyperEmitter(again, SCHEMA)
    expect(await new Promise((resolve) => second.getId((err, value) => resolve(err ?? value)))).toBe(id)
    const live = collector<string>(1)
    second.on('Hello', (m: { from: string }) => live.push(m.from))
    await second.emit('Hello', { from: 'after' })
    await live.done
    expect(live.seen).toEqual(['after'])
    const all: string[] = []
    for await (const ev of second.events({ from: 'beginning' })) {
      all.push(ev.payload.from)
      if (all.length === 2) break
    }
    expect(all).toEqual(['before', 'after'])
    await second.close()
    await again.close()
  })
})

describe('close', () => {
  it('resolves and calls back; afterwards emit fails with CLOSED', async () => {
    const e = HyperEmitter(null, SCHEMA)
    await e.emit('Hello', { from: 'x' })
    const closed = vi.fn()
    e.status.on('close', closed)
    await new Promise<void>((resolve, reject) => e.close((err) => (err ? reject(err) : resolve())))
    expect(closed).toHaveBeenCalledTimes(1)
    await expect(e.emit('Hello', { from: 'y' })).rejects.toMatchObject({ code: ErrorCodes.CLOSED })
    await e.close() // idempotent
  })
})

describe('many emits at once', () => {
  it('commits every one of a burst beyond the in-flight cap, in order, and close() waits for them', async () => {
    const db = new MemoryLevel()
    const e = HyperEmitter(db, SCHEMA)
    const N = 5000
    const pending = Array.from({ length: N }, (_, i) => e.emit('userAdded', { id: i }))
    // One bad event in the middle fails alone.
    const bad = e.emit('userAdded', { id: 'x' as never })
    const tail = Array.from({ length: 10 }, (_, i) => e.emit('userAdded', { id: N + i }))
    const closed = e.close()
    await expect(bad).rejects.toMatchObject({ code: ErrorCodes.INVALID_FIELD })
    await Promise.all([...pending, ...tail])
    await closed
    const again = HyperEmitter(db, SCHEMA)
    const ids: number[] = []
    for await (const ev of again.events({ from: 'beginning' })) {
      ids.push(ev.payload.id)
      if (ids.length === N + 10) break
    }
    expect(ids).toEqual(Array.from({ length: N + 10 }, (_, i) => i))
    await again.close()
    await db.close()
  })
})
