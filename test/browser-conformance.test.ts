// The portable Log conformance cases (test/browser-conformance.ts) in Node,
// on memory-level and classic-level; e2e/conformance.spec.ts runs the very
// same cases in Chromium on browser-level.
import { afterAll, describe, expect, it } from 'vitest'
import { MemoryLevel } from 'memory-level'
import { logCases, runCase, type Backend } from './browser-conformance.js'
import { dbFactories } from './helpers/dbs.js'

const backends = dbFactories.map((f) => f())

afterAll(() => {
  for (const backend of backends) backend.cleanup()
})

describe.each(backends)('portable Log conformance on $name', (backend) => {
  it.each(logCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const result = await runCase(backend, c)
    expect(result.error).toBeUndefined()
    expect(result.ok).toBe(true)
  })
})

describe('the portable cases can fail', () => {
  it('reports a backend that loses writes', async () => {
    // A db whose batches succeed without storing anything: the reopen case must notice.
    const lossy: Backend = {
      name: 'lossy',
      create: () => new MemoryLevel(),
      reopen: () => new MemoryLevel(),
    }
    const c = logCases.find((x) => x.name.startsWith('reopening'))!
    const result = await runCase(lossy, c)
    expect(result.ok).toBe(false)
    expect(result.error).toMatch(/state after reopen/)
  })
})
