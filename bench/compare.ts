// Before and after in one run: `npm run bench`'s scenarios on this tree and
// on an older commit (default 155639d, the code before src/core moved into
// folders), alternating which goes first run by run so drift in load hits
// both alike. Prints one JSON document (each scenario's median on each side
// and head/base, where below 1 means this tree is slower or bigger), and the
// same as a Markdown table on stderr.
// The older commit is checked out once into a worktree under the OS temp
// dir, with its own node_modules (`npm ci`). Its scripts run its own code;
// a scenario only one side has is listed, unpaired.
// Beside each figure (wall time, so it moves with the machine's load), each
// scenario's process CPU seconds for the same work: on a shared machine the
// steadier of the two, since waiting for a core costs no CPU time.
// Run: npx tsx bench/compare.ts [commit]   (BENCH_RUNS, default 3; BENCH_ONLY; BENCH_N)
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { figure } from './common.js'
import { benchScenarios, identityOf, IDENTITY, jsonLines, medians, metricOf, type Result, type Scenario, scenarioOutput } from './scenarios.js'

const BASE = process.argv[2] ?? '155639d'
const N = process.env.BENCH_N ?? '100000'
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`BENCH_RUNS must be a positive integer, got ${process.env.BENCH_RUNS}`)
const only = process.env.BENCH_ONLY?.split(',')

const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim()

/** A worktree of `commit` with node_modules installed, made on first use. */
function baseTree(commit: string): string {
  const sha = git('rev-parse', '--verify', `${commit}^{commit}`)
  const dir = join(tmpdir(), `hyperemitter-bench-${sha.slice(0, 12)}`)
  if (!existsSync(dir)) git('worktree', 'add', '--detach', dir, sha)
  if (!existsSync(join(dir, 'node_modules'))) {
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
  }
  return dir
}

/**
 * A scenario's results on one side. Older codec and schema benches printed
 * one pretty JSON document with `results: [{ name, opsPerSec }]`: read as lines.
 */
function run(cwd: string, scenario: Scenario): Result[] {
  const out = scenarioOutput(cwd, scenario, { BENCH_N: N, BENCH_RUNS: String(RUNS) })
  if (!out.trimStart().startsWith('{\n')) return jsonLines(out)
  const doc = JSON.parse(out) as { results: Array<{ name: string; opsPerSec: number }> }
  return doc.results.map((r) => ({ bench: scenario.suite, scenario: r.name, opsPerSecond: r.opsPerSec }))
}

/**
 * CPU seconds of this process's children that have ended (Linux: cutime and
 * cstime in /proc/self/stat, at 100 ticks a second), including theirs.
 */
function childCpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')
  // Fields 16 and 17 of stat(5), counted from after the command name.
  return (Number(fields[13]) + Number(fields[14])) / 100
}

const head = process.cwd()
const base = baseTree(BASE)
const sides = { base, head }
const scenarios = benchScenarios(N, head).filter((s) => !only || only.includes(s.suite))
const results: Record<'base' | 'head', Result[]> = { base: [], head: [] }
/** Per scenario invocation (script and arguments): each run's CPU seconds, per side. */
const cpu = new Map<string, Record<'base' | 'head', number[]>>()
const failures: Array<{ side: string; script: string; error: string }> = []
for (let round = 0; round < RUNS; round++) {
  for (const scenario of scenarios) {
    if (scenario.once && round > 0) continue
    const order: Array<'base' | 'head'> = round % 2 === 0 ? ['base', 'head'] : ['head', 'base']
    for (const side of order) {
      if (!existsSync(join(sides[side], scenario.script))) continue
      const key = [scenario.script, ...scenario.args].join(' ')
      if (!cpu.has(key)) cpu.set(key, { base: [], head: [] })
      try {
        const before = childCpuSeconds()
        results[side].push(...run(sides[side], scenario))
        cpu.get(key)![side].push(Math.round((childCpuSeconds() - before) * 100) / 100)
      } catch (err) {
        failures.push({ side, script: scenario.script, error: err instanceof Error ? err.message.split('\n')[0] : String(err) })
      }
    }
  }
}

const baseMedians = new Map(medians(results.base).map((r) => [identityOf(r), r]))
const rows = medians(results.head).map((h) => {
  const b = baseMedians.get(identityOf(h))
  baseMedians.delete(identityOf(h))
  const metric = b && metricOf([h, b])
  const id = Object.fromEntries(IDENTITY.filter((k) => h[k] !== undefined).map((k) => [k, h[k]]))
  if (!b || !metric) return { ...id, unpaired: b ? 'no shared metric' : 'head only' }
  const [path, higherIsBetter] = metric
  const hv = figure(h, path) as number
  const bv = figure(b, path) as number
  return { ...id, metric: path, base: bv, head: hv, ratio: round2(higherIsBetter ? hv / bv : bv / hv), baseRuns: b[`${path}Runs`], headRuns: h[`${path}Runs`] }
})
for (const b of baseMedians.values()) rows.push({ ...Object.fromEntries(IDENTITY.filter((k) => b[k] !== undefined).map((k) => [k, b[k]])), unpaired: 'base only' })

const cpuRows = [...cpu].flatMap(([invocation, { base: b, head: h }]) =>
  b.length > 0 && h.length > 0 ? [{ invocation, baseCpuSeconds: median(b), headCpuSeconds: median(h), ratio: round2(median(b) / median(h)), baseRuns: b, headRuns: h }] : [],
)

console.log(
  JSON.stringify({ date: new Date().toISOString(), base: git('rev-parse', '--short', BASE), head: git('rev-parse', '--short', 'HEAD'), runs: RUNS, events: Number(N), rows, cpu: cpuRows, failures }, null, 2),
)
console.error(markdown(rows))
console.error('\n| invocation | base CPU s | head CPU s | base/head |\n| --- | --- | --- | --- |')
for (const r of cpuRows) console.error(`| ${r.invocation} | ${r.baseCpuSeconds} | ${r.headCpuSeconds} | ${r.ratio} |`)
if (failures.length > 0) process.exitCode = 1

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

function round2(n: number): number {
  return Math.round(n * 100) / 100
}

/** The rows as a table: one line per paired figure, the ratio where below 1 means worse. */
function markdown(table: Array<Record<string, unknown>>): string {
  const lines = ['| scenario | metric | base | head | head/base |', '| --- | --- | --- | --- | --- |']
  for (const r of table) {
    if (r.metric === undefined) continue
    const name = IDENTITY.filter((k) => r[k] !== undefined).map((k) => String(r[k])).join(' / ')
    lines.push(`| ${name} | ${r.metric} | ${r.base} | ${r.head} | ${r.ratio} |`)
  }
  return lines.join('\n')
}
