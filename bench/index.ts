// `npm run bench`: runs every scenario in its own process (so each peak RSS
// is its own) and prints one JSON document. Baselines run in the same
// invocation: compare against them, not against numbers from another day.
// BENCH_N overrides the event count; BENCH_ONLY=emit,baseline picks suites.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'

const N = process.env.BENCH_N ?? '100000'
const only = process.env.BENCH_ONLY?.split(',')

interface Scenario {
  suite: string
  script: string
  args: string[]
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
]) {
  if (existsSync(script)) scenarios.push({ suite, script, args: [] })
}

const results: unknown[] = []
const failures: Array<{ script: string; args: string[]; error: string }> = []
for (const { suite, script, args } of scenarios) {
  if (only && !only.includes(suite)) continue
  try {
    const out = execFileSync(process.execPath, ['--import', 'tsx', script, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 15 * 60_000,
      env: { ...process.env, BENCH_N: N },
    })
    for (const line of out.split('\n')) if (line.trim().startsWith('{')) results.push(JSON.parse(line))
  } catch (err) {
    failures.push({ script, args, error: err instanceof Error ? err.message.split('\n')[0] : String(err) })
  }
}

console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      memoryGb: Math.round(totalmem() / 2 ** 30),
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
      events: Number(N),
      results,
      failures,
    },
    null,
    2,
  ),
)
if (failures.length > 0) process.exitCode = 1
