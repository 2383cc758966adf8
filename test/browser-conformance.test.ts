// The portable Log conformance cases (test/browser-conformance.ts) in Node,
// on memory-level and classic-level; e2e/conformance.spec.ts runs the very
// same cases in Chromium on browser-level.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { afterAll, describe, expect, it } from 'vitest'
import { logCases, runCase, type Backend } from './browser-conformance.js'

const dirs: string[] = []
const locations = new WeakMap<object, string>()

const backends: Backend[] = [
  { name: 'memory-level', create: () => new MemoryLevel(), reopen: () => undefined },
  {
    name: 'classic-level',
    create() {
      const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-conformance-'))
      dirs.push(dir)
      const db = new ClassicLevel(dir)
      locations.set(db, dir)
      return db
    },
    reopen(db) {
      const dir = locations.get(db)!
      const again = new ClassicLevel(dir)
      locations.set(again, dir)
      return again
    },
  },
]

afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
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
