// `npm run bench`: runs every scenario in its own process (so each peak RSS
// is its own) and prints one JSON document. Baselines run in the same
// invocation: compare against them, not against numbers from another day.
// Every suite runs BENCH_RUNS times (default 3, interleaved) and each
// scenario reports its median run, with every run's figure beside it: on a
// shared machine one run can be off by a third either way.
// BENCH_N overrides the event count; BENCH_ONLY=emit,baseline picks suites.
// The small suite (bench/small.ts) sets its own sizes and alternates its own
// runs against the 2015 original, so it runs once.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { figure } from './common.js'
import { judgeTargets, SIZED_BY_ITSELF, TARGET_EVENTS } from './targets.js'

const N = process.env.BENCH_N ?? '100000'
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`BENCH_RUNS must be a positive integer, got ${process.env.BENCH_RUNS}`)
const only = process.env.BENCH_ONLY?.split(',')

type Result = Record<string, unknown>

/** Fields that tell one scenario's results apart from another's. */
const IDENTITY = ['bench', 'scenario', 'events', 'entry', 'db', 'mode', 'transport', 'path', 'network', 'storage', 'tabs']
/** The figure a scenario's runs are ranked by (a dotted path for a nested one), and whether higher is better. */
const METRICS: Array<[string, boolean]> = [
  ['eventsPerSecond', true],
  ['singlePutsPerSecond', true],
  ['putsPerSecond', true],
  ['write-per-frame.framesPerSecond', true],
  ['p99Ms', false],
  ['ms', false],
  ['maxMs', false],
  ['extraMb', false],
  ['ratio', false],
]

/** One result per scenario: its median run by its metric, with every run's figure (or every run, if it has no metric). */
function medians(runs: Result[]): Result[] {
  const groups = new Map<string, Result[]>()
  for (const r of runs) {
    const id = JSON.stringify(IDENTITY.map((k) => r[k]))
    groups.set(id, [...(groups.get(id) ?? []), r])
  }
  const out: Result[] = []
  for (const group of groups.values()) {
    if (group.length === 1 && 'runs' in group[0]) {
      // A suite that took its own medians.
      out.push(group[0])
      continue
    }
    const metric = METRICS.find(([path]) => group.every((r) => typeof figure(r, path) === 'number'))
    if (metric === undefined) {
      out.push(...group)
      continue
    }
    const [path, higherIsBetter] = metric
    const value = (r: Result) => figure(r, path) as number
    const sorted = [...group].sort((a, b) => (higherIsBetter ? 1 : -1) * (value(a) - value(b)))
    out.push({ ...sorted[Math.floor((sorted.length - 1) / 2)], runs: group.length, [`${path}Runs`]: sorted.map(value) })
  }
  return out
}

interface Scenario {
  suite: string
  script: string
  args: string[]
  /** It repeats and takes medians itself (BENCH_RUNS): run it in the first round only. */
  once?: boolean
}

const scenarios: Scenario[] = [
  { suite: 'baseline', script: 'bench/baseline.ts', args: ['memory', N] },
  { suite: 'baseline', script: 'bench/baseline.ts', args: ['classic', N] },
  { suite: 'emit', script: 'bench/emit.ts', args: ['memory', 'awaited', N] },
  { suite: 'emit', script: 'bench/emit.ts', args: ['memory', 'together', N] },
  { suite: 'emit', script: 'bench/emit.ts', args: ['classic', 'awaited', N] },
  { suite: 'emit', script: 'bench/emit.ts', args: ['classic', 'together', N] },
]
// Suites that take their own arguments and print their own JSON lines.
for (const [suite, script] of [
  ['replication', 'bench/replication.ts'],
  ['browser', 'bench/browser.ts'],
  ['browser-tabs', 'bench/browser-tabs.ts'],
]) {
  if (existsSync(script)) scenarios.push({ suite, script, args: [] })
}
scenarios.push(
  { suite: 'small', script: 'bench/small.ts', args: [], once: true },
  { suite: 'crash', script: 'bench/crash.ts', args: [] },
  // 10k, 100k and 1M events: long, so once.
  { suite: 'scale', script: 'bench/scale.ts', args: [], once: true },
  // Minutes of attacks at the figures: once.
  { suite: 'hostile', script: 'bench/hostile.ts', args: [], once: true },
)

const runs: Result[] = []
const failures: Array<{ script: string; args: string[]; error: string }> = []
for (let run = 0; run < RUNS; run++) {
  for (const { suite, script, args, once } of scenarios) {
    if ((only && !only.includes(suite)) || (once && run > 0)) continue
    try {
      const out = execFileSync(process.execPath, ['--import', 'tsx', script, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 15 * 60_000,
        env: { ...process.env, BENCH_N: N, BENCH_RUNS: String(RUNS) },
      })
      for (const line of out.split('\n')) if (line.trim().startsWith('{')) runs.push(JSON.parse(line))
    } catch (err) {
      failures.push({ script, args, error: err instanceof Error ? err.message.split('\n')[0] : String(err) })
    }
  }
}

const results = medians(runs)
console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      memoryGb: Math.round(totalmem() / 2 ** 30),
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
      events: Number(N),
      runs: RUNS,
      // The issues' targets, judged on the medians below (see targets.ts);
      // the throughput ones only at the event count they were set for.
      targets: judgeTargets(results.filter((r) => Number(N) === TARGET_EVENTS || SIZED_BY_ITSELF.has(r.bench as string))),
      results,
      failures,
    },
    null,
    2,
  ),
)
if (failures.length > 0) process.exitCode = 1
