// Library behaviour the hypem CLI relies on: durable consumers started with
// an explicit `from`, and resetting a consumer's stored position.
import { MemoryLevel } from 'memory-level'
import { describe, expect, it, vi } from 'vitest'
import { HyperEmitter } from '../src/index.js'
import { ConsumerCursor } from '../src/core/emitter/consumer.js'

const SCHEMA = 'message Tick { required int32 n = 1; }'

describe('durable consumers with an explicit from', () => {
  it("events({ consumer, from: 'beginning' }) delivers old and new events, then resumes after the stored position", async () => {
    const db = new MemoryLevel<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' })
    const first = HyperEmitter(db, SCHEMA)
    await first.emit('Tick', { n: 1 })
    const seen: number[] = []
    first.on('Tick', (t: { n: number }) => void seen.push(t.n), { consumer: 'c', from: 'beginning' })
    // Emitted after the consumer started: it used to stay stuck, never delivered.
    await first.emit('Tick', { n: 2 })
    await vi.waitFor(() => expect(seen).toEqual([1, 2]))
    await first.close()

    const second = HyperEmitter(db, SCHEMA)
    await second.emit('Tick', { n: 3 })
    const resumed: number[] = []
    // A stored position wins over `from`.
    second.on('Tick', (t: { n: number }) => void resumed.push(t.n), { consumer: 'c', from: 'beginning' })
    await vi.waitFor(() => expect(resumed).toEqual([3]))
    await second.close()

    // reset() forgets the position: `from` applies again.
    await new ConsumerCursor(db, 'c', () => {}).reset()
    expect(await new ConsumerCursor(db, 'c', () => {}).load()).toBeUndefined()
    const third = HyperEmitter(db, SCHEMA)
    const again: number[] = []
    third.on('Tick', (t: { n: number }) => void again.push(t.n), { consumer: 'c', from: 'beginning' })
    await vi.waitFor(() => expect(again).toEqual([1, 2, 3]))
    await third.close()
    await db.close()
  })
})
