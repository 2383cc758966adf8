import { describe, expect, it } from 'vitest'
import { judgeTargets, TARGETS } from '../bench/targets.js'

const baseline = { bench: 'baseline-db', db: 'classic', singlePutsPerSecond: 25_000, batchedPutsPerSecond: 400_000 }
const awaited = { bench: 'emit', db: 'classic', mode: 'awaited', eventsPerSecond: 21_000 }
const together = { bench: 'emit', db: 'classic', mode: 'together', eventsPerSecond: 190_000 }
const coldTcp = { bench: 'replication', scenario: 'cold', transport: 'tcp', db: 'classic', eventsPerSecond: 160_000, wireOverNodeAtoB: 1.25 }

describe('bench targets', () => {
  it('judges each target that ran, beside its same-run baseline', () => {
    const judged = judgeTargets([baseline, awaited, together, { ...together, db: 'memory', eventsPerSecond: 900_000 }])
    expect(judged).toHaveLength(3)
    expect(judged[0]).toMatchObject({
      issue: 2,
      value: 21_000,
      atLeast: 20_000,
      met: true,
      sameRunBaseline: { value: 25_000, issueQuoted: 26_000 },
      ofBaseline: 0.84,
      targetOfIssueBaseline: 0.769,
    })
    // The memory-level run of the same mode is not the classic-level target's.
    expect(judged[1]).toMatchObject({ value: 190_000, met: false, ofBaseline: 0.475, targetOfIssueBaseline: 0.426 })
    // Issue 17 judges the same awaited figure by its ratio to the raw single put alone.
    expect(judged[2]).toMatchObject({ issue: 17, value: 21_000, ofBaseline: 0.84, ofBaselineAtLeast: 0.6, met: true })
  })

  it('fails a ratio target below its ratio, whatever the figure', () => {
    const memoryBase = { ...baseline, db: 'memory', singlePutsPerSecond: 100_000 }
    const slow = { bench: 'emit', db: 'memory', mode: 'awaited', eventsPerSecond: 74_000 }
    expect(judgeTargets([memoryBase, slow])).toMatchObject([{ issue: 17, ofBaseline: 0.74, ofBaselineAtLeast: 0.75, met: false }])
    expect(judgeTargets([memoryBase, { ...slow, eventsPerSecond: 75_000 }])).toMatchObject([{ met: true }])
  })

  it('judges the small-N ratios to the original at 10k only, and the start-up ratio', () => {
    const small = (scenario: string, events: number, ratioToOriginal: number) => ({ bench: 'small', scenario, events, ratioToOriginal })
    const judged = judgeTargets([
      small('local', 1_000, 5),
      small('local', 10_000, 21),
      small('cold', 10_000, 14.9),
      small('live', 10_000, 30),
      { bench: 'start', scenario: 'first-emit', ofBareNode: 2.6 },
    ])
    expect(judged.map((j) => [j.value, j.met])).toEqual([
      [21, true],
      [14.9, false],
      [30, true],
      [2.6, false],
    ])
  })

  it('holds upper bounds too, and leaves out scenarios that did not run', () => {
    const judged = judgeTargets([coldTcp])
    expect(judged.map((j) => [j.measure, j.met])).toEqual([
      [TARGETS[2].measure, true],
      [TARGETS[5].measure, false],
    ])
    expect(judged[1]).toMatchObject({ value: 1.25, atMost: 1.2 })
  })

  it('reads nested figures, and reports a missing baseline as null rather than a ratio', () => {
    const judged = judgeTargets([{ bench: 'x', nested: { rate: 5 } }], [
      { issue: 9, measure: 'nested', match: { bench: 'x' }, figure: 'nested.rate', atLeast: 4, baseline: { match: { bench: 'y' }, figure: 'rate', measure: 'absent', issueQuoted: 8 } },
    ])
    expect(judged).toEqual([
      {
        issue: 9,
        measure: 'nested',
        value: 5,
        atLeast: 4,
        atMost: undefined,
        met: true,
        sameRunBaseline: { measure: 'absent', value: null, issueQuoted: 8 },
        ofBaseline: null,
        targetOfIssueBaseline: 0.5,
      },
    ])
  })
})
