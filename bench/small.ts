// The small and the cold, side by side with the 2015 original: what a short
// process, a page load or a test run sees. Every measurement is a fresh
// `node` process running the built library (dist/, rebuilt here when src/ is
// newer) or the original (bench/original/, installed here on first use), and
// the two alternate run by run so drift in load hits both alike. Prints one
// JSON line per figure, each the median of BENCH_RUNS runs (at least 5 for
// the start-up figures, which take milliseconds):
//
//   start:  node start to the first emit resolved (text schema, in-memory db),
//           beside a bare node start (a script that only exits, as `node -e 0`)
//           and the original's; wall time, and each process's CPU time.
//   import: the import time of each entry (ESM, CJS, the browser entries).
//   small:  bench/small-run.mjs's local, cold and live scenarios at N = 1k
//           and 10k, ours against the original's, with the ratio.
// Run: npx tsx bench/small.ts
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { printJson } from './common.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const START_RUNS = Math.max(5, RUNS)
const SIZES = [1_000, 10_000]
const SCENARIOS = ['local', 'cold', 'live']
const IMPLS = ['ours', 'original'] as const
/** `node -e 0`, plus the one line that reports its CPU time as bench/start-run.mjs does. */
const BARE_NODE = 'const { user, system } = process.cpuUsage(); console.log(JSON.stringify({ cpuMs: (user + system) / 1000 }))'
/** Entries whose import time is reported: [name, specifier, how, node flags]. */
const ENTRIES: Array<[string, string, 'import' | 'require', string[]]> = [
  ['hyperemitter (Node, ESM)', 'hyperemitter', 'import', []],
  ['hyperemitter (Node, CJS)', 'hyperemitter', 'require', []],
  ['hyperemitter (browser condition)', 'hyperemitter', 'import', ['--conditions=browser']],
  ['hyperemitter/lean', 'hyperemitter/lean', 'import', []],
]

/** Newest modification time under `dir`, ms. */
function newest(dir: string): number {
  let latest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, statSync(join(entry.parentPath, entry.name)).mtimeMs)
  }
  return latest
}

/** The bench measures what ships: build dist/ when it is missing or older than src/. */
function ensureBuilt(): void {
  const built = join(ROOT, 'dist/index.js')
  if (existsSync(built) && statSync(built).mtimeMs >= newest(join(ROOT, 'src'))) return
  console.error('bench: building dist/ (npx tsup)')
  execFileSync('npx', ['tsup'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
}

/** The original's leveldown does not build on Node 20 and only its CLI needs it: skip install scripts. */
function ensureOriginal(): void {
  const dir = join(ROOT, 'bench/original')
  if (existsSync(join(dir, 'node_modules/hyperemitter/package.json'))) return
  console.error('bench: installing the 2015 original into bench/original (npm ci --ignore-scripts)')
  execFileSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] })
}

/** Wall time of one fresh `node` process and the CPU time it reports, ms; fails the bench if it fails. */
function timeProcess(args: string[]): { ms: number; cpuMs: number } {
  const start = performance.now()
  const result = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  const ms = performance.now() - start
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${result.stderr || result.error}`)
  return { ms, cpuMs: JSON.parse(result.stdout).cpuMs }
}

/** The one JSON line a bench process prints. */
function runJson(args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 10 * 60_000, stdio: ['ignore', 'pipe', 'inherit'] })
  const line = out.split('\n').find((l) => l.startsWith('{'))
  if (line === undefined) throw new Error(`node ${args.join(' ')} printed no result`)
  return JSON.parse(line)
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits

/** Runs each of `jobs` `runs` times, rotating their order every round; every job's results in run order. */
function alternate<T>(runs: number, jobs: Array<() => T>): T[][] {
  const results: T[][] = jobs.map(() => [])
  for (let r = 0; r < runs; r++) {
    for (let j = 0; j < jobs.length; j++) {
      const k = (j + r) % jobs.length
      results[k].push(jobs[k]())
    }
  }
  return results
}

function start(): void {
  const [bareRuns, oursRuns, originalRuns] = alternate(START_RUNS, [
    () => timeProcess(['-e', BARE_NODE]),
    () => timeProcess(['bench/start-run.mjs', 'first-emit', 'ours']),
    () => timeProcess(['bench/start-run.mjs', 'first-emit', 'original']),
  ])
  const wall = (runs: Array<{ ms: number }>) => median(runs.map((r) => r.ms))
  const cpu = (runs: Array<{ cpuMs: number }>) => median(runs.map((r) => r.cpuMs))
  printJson({
    bench: 'start',
    scenario: 'first-emit',
    ms: round(wall(oursRuns)),
    bareNodeMs: round(wall(bareRuns)),
    ofBareNode: round(wall(oursRuns) / wall(bareRuns), 2),
    originalMs: round(wall(originalRuns)),
    ofOriginal: round(wall(oursRuns) / wall(originalRuns), 2),
    cpuMs: cpu(oursRuns),
    bareNodeCpuMs: cpu(bareRuns),
    cpuOfBareNode: round(cpu(oursRuns) / cpu(bareRuns), 2),
    originalCpuMs: cpu(originalRuns),
    runs: START_RUNS,
    msRuns: oursRuns.map((r) => round(r.ms)),
    bareNodeMsRuns: bareRuns.map((r) => round(r.ms)),
  })
}

function imports(): void {
  const results = alternate(
    START_RUNS,
    ENTRIES.map(([, specifier, how, flags]) => () => runJson([...flags, 'bench/start-run.mjs', 'import', specifier, how]).importMs),
  )
  ENTRIES.forEach(([entry], i) => printJson({ bench: 'import', entry, importMs: median(results[i]), runs: START_RUNS, importMsRuns: results[i] }))
}

function small(): void {
  for (const n of SIZES) {
    for (const scenario of SCENARIOS) {
      const [ours, original] = alternate(
        RUNS,
        IMPLS.map((impl) => () => runJson(['bench/small-run.mjs', impl, scenario, String(n)])),
      )
      const rate = (runs: Record<string, number>[]) => median(runs.map((r) => r.eventsPerSecond))
      printJson({
        bench: 'small',
        scenario,
        events: n,
        eventsPerSecond: rate(ours),
        originalEventsPerSecond: rate(original),
        ratioToOriginal: round(rate(ours) / rate(original), 2),
        peakRssMb: median(ours.map((r) => r.peakRssMb)),
        originalPeakRssMb: median(original.map((r) => r.peakRssMb)),
        runs: RUNS,
        eventsPerSecondRuns: ours.map((r) => r.eventsPerSecond),
        originalEventsPerSecondRuns: original.map((r) => r.eventsPerSecond),
      })
    }
  }
}

ensureBuilt()
ensureOriginal()
const only = process.argv[2]
if (only === undefined || only === 'start') start()
if (only === undefined || only === 'import') imports()
if (only === undefined || only === 'small') small()
