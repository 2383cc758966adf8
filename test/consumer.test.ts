import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { ErrorCodes, HyperEmitter } from '../src/index.js'
import { dbFactories } from './helpers/dbs.js'

const SCHEMA = 'message Tick { required int32 n = 1; }'

describe.each(dbFactories.map((f) => f()))('durable consumers on $name', (factory) => {
  afterAll(() => factory.cleanup())

  it('on({ consumer }) resumes right after the last handled event', async () => {
    const db = factory.create()
    const first = HyperEmitter(db, SCHEMA)
    for (let n = 1; n <= 5; n++) await first.emit('Tick', { n })
    const seen: number[] = []
    first.on('Tick', (t: { n: number }) => void seen.push(t.n), { consumer: 'c1' })
    await vi.waitFor(() => expect(seen).toEqual([1, 2, 3, 4, 5]))
    await first.close()
    await db.close()
    const again = factory.reopen(db)
    if (!again) return
    const second = HyperEmitter(again, SCHEMA)
    for (let n = 6; n <= 8; n++) await second.emit('Tick', { n })
    const resumed: number[] = []
    second.on('Tick', (t: { n: number }) => void resumed.push(t.n), { consumer: 'c1' })
    await vi.waitFor(() => expect(resumed).toEqual([6, 7, 8]))
    await second.close()
    await again.close()
  })

  it("events({ consumer }) counts an event handled when the loop asks for the next", async () => {
    const db = factory.create()
    const first = HyperEmitter(db, SCHEMA)
    for (let n = 1; n <= 4; n++) await first.emit('Tick', { n })
    const seen: number[] = []
    for await (const e of first.events({ consumer: 'it' })) {
      seen.push(e.payload.n)
      if (e.payload.n === 2) break // 2 was being handled, not finished: it comes again
    }
    expect(seen).toEqual([1, 2])
    await first.close()
    await db.close()
    const again = factory.reopen(db)
    if (!again) return
    const second = HyperEmitter(again, SCHEMA)
    const resumed: number[] = []
    for await (const e of second.events({ consumer: 'it' })) {
      resumed.push(e.payload.n)
      if (e.payload.n === 4) break
    }
    expect(resumed).toEqual([2, 3, 4])
    await second.close()
    await again.close()
  })
})

describe('durable consumers', () => {
  it('refuses two readers of one consumer and checkpoint without a consumer', async () => {
    const e = HyperEmitter(null, SCHEMA)
    e.on('Tick', () => {}, { consumer: 'one' })
    expect(() => e.on('Tick', () => {}, { consumer: 'one' })).toThrowError(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    )
    expect(() => e.events({ from: 'checkpoint' })).toThrowError(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    await e.close()
  })

  it('a process killed between handling and saving redelivers, never skips', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-consumer-'))
    try {
      const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' })
      const e = HyperEmitter(db, SCHEMA)
      for (let n = 1; n <= 6; n++) await e.emit('Tick', { n })
      await e.close()
      await db.close()
      const run = (crashAfter: number) =>
        new Promise<{ lines: number[]; signal: string | null }>((resolve) => {
          const child = execFile(
            process.execPath,
            ['--import', 'tsx', join(__dirname, 'fixtures/consumer-crash.ts'), dir, String(crashAfter)],
            { timeout: 20_000 },
            (_err, stdout) => resolve({ lines: stdout.split('\n').filter(Boolean).map(Number), signal: child.signalCode }),
          )
        })
      const crashed = await run(3)
      expect(crashed.signal).toBe('SIGKILL')
      expect(crashed.lines).toEqual([1, 2, 3])
      const resumed = await run(0)
      expect(resumed.signal).toBeNull()
      // 3 was handled but never acknowledged: it must come again (a save
      // before the handler would resume at 4), and nothing after it is lost.
      expect(resumed.lines[resumed.lines.length - 1]).toBe(6)
      expect(resumed.lines[0]).toBeLessThanOrEqual(3)
      expect(resumed.lines[0]).toBeGreaterThanOrEqual(1)
      expect(resumed.lines).toEqual(Array.from({ length: 7 - resumed.lines[0] }, (_, i) => resumed.lines[0] + i))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
