// What `npm run bench` runs, and how its results are grouped and ranked:
// shared by bench/index.ts (one tree) and bench/compare.ts (two trees).
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { figure } from './common.js'

export type Result = Record<string, unknown>

export interface Scenario {
  suite: string
  script: string
  args: string[]
  /** It repeats and takes medians itself (BENCH_RUNS): run it in the first round only. */
  once?: boolean
}

/** Fields that tell one scenario's results apart from another's. */
export const IDENTITY = ['signing', 'bench', 'scenario', 'events', 'entry', 'db', 'mode', 'transport', 'path', 'network', 'storage', 'tabs']
/** The figure a scenario's runs are ranked by (a dotted path for a nested one), and whether higher is better. */
export const METRICS: Array<[string, boolean]> = [
  ['eventsPerSecond', true],
  ['singlePutsPerSecond', true],
  ['putsPerSecond', true],
  ['opsPerSecond', true],
  ['write-per-frame.framesPerSecond', true],
  ['p99Ms', false],
  ['ms', false],
  ['maxMs', false],
  ['extraMb', false],
  ['ratio', false],
]

/** The scenarios of `npm run bench` with `n` events, those whose script `root` holds. */
export function benchScenarios(n: string, root = '.'): Scenario[] {
  const scenarios: Scenario[] = [
    { suite: 'baseline', script: 'bench/baseline.ts', args: ['memory', n] },
    { suite: 'baseline', script: 'bench/baseline.ts', args: ['classic', n] },
    { suite: 'emit', script: 'bench/emit.ts', args: ['memory', 'awaited', n] },
    { suite: 'emit', script: 'bench/emit.ts', args: ['memory', 'together', n] },
    { suite: 'emit', script: 'bench/emit.ts', args: ['classic', 'awaited', n] },
    { suite: 'emit', script: 'bench/emit.ts', args: ['classic', 'together', n] },
    // Suites that take their own arguments and print their own JSON lines.
    { suite: 'codec', script: 'bench/codec.ts', args: [] },
    { suite: 'schema', script: 'bench/schema.ts', args: [] },
    { suite: 'replication', script: 'bench/replication.ts', args: [] },
    { suite: 'browser', script: 'bench/browser.ts', args: [] },
    { suite: 'browser-tabs', script: 'bench/browser-tabs.ts', args: [] },
    { suite: 'small', script: 'bench/small.ts', args: [], once: true },
    { suite: 'crash', script: 'bench/crash.ts', args: [] },
    // 10k, 100k and 1M events: long, so once.
    { suite: 'scale', script: 'bench/scale.ts', args: [], once: true },
    // Minutes of attacks at the figures: once.
    { suite: 'hostile', script: 'bench/hostile.ts', args: [], once: true },
  ]
  return scenarios.filter((s) => existsSync(join(root, s.script)))
}

/** One result per scenario: its median run by its metric, with every run's figure (or every run, if it has no metric). */
export function medians(runs: Result[]): Result[] {
  const groups = new Map<string, Result[]>()
  for (const r of runs) {
    const id = identityOf(r)
    groups.set(id, [...(groups.get(id) ?? []), r])
  }
  const out: Result[] = []
  for (const group of groups.values()) {
    if (group.length === 1 && 'runs' in group[0]) {
      // A suite that took its own medians.
      out.push(group[0])
      continue
    }
    const metric = metricOf(group)
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

/** The key IDENTITY gives a result. */
export function identityOf(r: Result): string {
  return JSON.stringify(IDENTITY.map((k) => r[k]))
}

/** The first metric every result of `group` has. */
export function metricOf(group: Result[]): [string, boolean] | undefined {
  return METRICS.find(([path]) => group.every((r) => typeof figure(r, path) === 'number'))
}

/** Runs one scenario's script in `cwd` (a tree with its own node_modules); returns what it printed. */
export function scenarioOutput(cwd: string, { script, args }: Scenario, env: Record<string, string>): string {
  return execFileSync(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 15 * 60_000,
    env: { ...process.env, ...env },
  })
}

/** The JSON lines a scenario printed. */
export function jsonLines(out: string): Result[] {
  return out
    .split('\n')
    .filter((line) => line.trim().startsWith('{'))
    .map((line) => JSON.parse(line))
}
