// Emits fired in turns, some invalid, with db batches failing at random:
// every emit's outcome must match the log (resolved: stored once, in emit
// order; rejected: not stored), whatever the grouping.
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { MemoryLevel } from 'memory-level'
import { describe, expect, it } from 'vitest'
import { ErrorCodes, HyperEmitter, type HyperEmitterError } from '../src/index.js'
import { decodeEnvelope } from '../src/core/codec/envelope.js'
import type { Log } from '../src/core/log/log.js'
import { spyBatch } from './helpers/dbs.js'

const SCHEMA = readFileSync(new URL('./fixtures/messages.proto', import.meta.url), 'utf8')

/** One emit of a turn: valid (a unique id) or refused by the schema. */
const anEmit = fc.oneof({ arbitrary: fc.constant('valid' as const), weight: 9 }, { arbitrary: fc.constant('invalid' as const), weight: 1 })
/** A turn: emits fired without awaiting, and whether the next db batch fails. */
const aTurn = fc.record({ emits: fc.array(anEmit, { minLength: 1, maxLength: 1200 }), failNextBatch: fc.boolean() })

describe('emits fired in turns (fast-check)', () => {
  it('resolve exactly when stored, once each and in order, across groups, refusals and failed batches', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(aTurn, { minLength: 1, maxLength: 6 }), async (turns) => {
        const db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
        const spy = spyBatch(db)
        const e = HyperEmitter(db, SCHEMA)
        await e.ready()
        let id = 0
        const outcomes: Array<{ id: number; valid: boolean; result: Promise<'stored' | string> }> = []
        for (const turn of turns) {
          spy.failNext = turn.failNextBatch ? 1 : 0
          const pending: Promise<unknown>[] = []
          for (const kind of turn.emits) {
            const n = ++id
            const p = kind === 'valid' ? e.emit('userAdded', { id: n }) : e.emit('userAdded', { id: 'not a number' } as never)
            const result = p.then(
              () => 'stored' as const,
              (err: HyperEmitterError) => err.code,
            )
            outcomes.push({ id: n, valid: kind === 'valid', result })
            pending.push(result)
          }
          await Promise.all(pending)
        }
        const results = await Promise.all(outcomes.map((o) => o.result))
        // Everything in the log, read once (not live).
        const stored: number[] = []
        for await (const entry of (e as unknown as { log: Log }).log.read()) {
          const { payload } = decodeEnvelope(entry.value)
          stored.push((e.messages.userAdded.decode(payload) as { id: number }).id)
        }
        await e.close()
        await db.close()

        // Refused ones were refused for their field; the others stored, or failed with the batch.
        outcomes.forEach((o, i) => {
          if (!o.valid) expect(results[i]).toBe(ErrorCodes.INVALID_FIELD)
          else expect(['stored', ErrorCodes.STORAGE_FAILED]).toContain(results[i])
        })
        expect(stored).toEqual(outcomes.filter((_, i) => results[i] === 'stored').map((o) => o.id))
        // A failed batch fails only itself: with no failure injected, everything valid was stored.
        if (!turns.some((t) => t.failNextBatch)) expect(stored.length).toBe(outcomes.filter((o) => o.valid).length)
      }),
      { numRuns: 40 },
    )
  })
})
