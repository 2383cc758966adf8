// `npm run bench`: runs every scenario in its own process (so each peak RSS
// is its own) and prints one JSON document. Baselines run in the same
// invocation: compare against them, not against numbers from another day.
// Every suite runs BENCH_RUNS times (default 3, interleaved) and each
// scenario reports its median run, with every run's figure beside it: on a
// shared machine one run can be off by a third either way.
// BENCH_N overrides the event count; BENCH_ONLY=emit,baseline picks suites.
// The scenario list is bench/scenarios.ts; bench/compare.ts runs it on this
// tree and an older commit side by side.
// The small suite (bench/small.ts) sets its own sizes and alternates its own
// runs against the 2015 original, so it runs once.
import { cpus, loadavg, totalmem } from 'node:os'
import { benchScenarios, jsonLines, medians, type Result, scenarioOutput } from './scenarios.js'
import { judgeTargets, SIZED_BY_ITSELF, TARGET_EVENTS } from './targets.js'

const N = process.env.BENCH_N ?? '100000'
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error(`BENCH_RUNS must be a positive integer, got ${process.env.BENCH_RUNS}`)
const only = process.env.BENCH_ONLY?.split(',')
const scenarios = benchScenarios(N)

const runs: Result[] = []
const failures: Array<{ script: string; args: string[]; error: string }> = []
for (let run = 0; run < RUNS; run++) {
  for (const { suite, script, args, once } of scenarios) {
    if ((only && !only.includes(suite)) || (once && run > 0)) continue
    try {
      runs.push(...jsonLines(scenarioOutput('.', { suite, script, args }, { BENCH_N: N, BENCH_RUNS: String(RUNS) })))
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
