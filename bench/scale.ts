// The cost curve on classic-level: how burst emits, reopening and cold
// catch-up scale from 10k to 1M events, each step in fresh processes.
//
//   fill:    N emits (at most 2000 in flight) into an empty db; the burst
//            emit rate and the process's peak RSS.
//   reopen:  the filled db opened in a fresh process: construction to
//            ready(), and that process's peak RSS.
//   catchup: bench/replication.ts's cold scenario over TCP (the hub fills
//            its own db, then an empty peer in another process catches up),
//            with the peak RSS of each side.
//
// Prints one JSON line per size, and a last line with the 1M rates (wall and
// CPU time) over the 100k ones (issue 17's targets: within 20%, reopen under
// 1 s, catch-up under 250 MB per side).
// Run: npx tsx bench/scale.ts [N ...]        (default 10000 100000 1000000)
//      npx tsx bench/scale.ts fill <dir> <N> | reopen <dir>
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import { HyperEmitter } from '../src/index.js'
import { HELLO_SCHEMA, helloMessage, peakRssMb, printJson } from './common.js'

const IN_FLIGHT = 2000
const SIZES = [10_000, 100_000, 1_000_000]

function open(dir: string): ClassicLevel<Uint8Array, Uint8Array> {
  return new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' })
}

async function fill(dir: string, n: number): Promise<void> {
  const emitter = HyperEmitter(open(dir), HELLO_SCHEMA, { discover: false })
  await emitter.ready()
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < n; i += IN_FLIGHT) {
    const batch: Promise<void>[] = []
    for (let j = i; j < Math.min(n, i + IN_FLIGHT); j++) batch.push(emitter.emit('Hello', helloMessage(j)))
    await Promise.all(batch)
  }
  const seconds = (performance.now() - start) / 1000
  const { user, system } = process.cpuUsage(cpu)
  await emitter.close()
  printJson({ emitsPerSecond: Math.round(n / seconds), emitCpuUsPerEvent: Math.round(((user + system) / n) * 100) / 100, peakRssMb: peakRssMb() })
}

async function reopen(dir: string): Promise<void> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  const emitter = HyperEmitter(open(dir), HELLO_SCHEMA, { discover: false, reconnectKnown: false })
  await emitter.ready()
  const ms = performance.now() - start
  const { user, system } = process.cpuUsage(cpu)
  const length = (emitter as unknown as { log: { length: number } }).log.length
  await emitter.close()
  printJson({ reopenMs: Math.round(ms), reopenCpuMs: Math.round((user + system) / 1000), length, peakRssMb: peakRssMb() })
}

/** Runs this script (or another) in a fresh process; its one JSON line. */
function child(script: string, args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 20 * 60_000,
  })
  const line = out.split('\n').find((l) => l.startsWith('{'))
  if (line === undefined) throw new Error(`${script} ${args.join(' ')} printed no result`)
  return JSON.parse(line)
}

function step(n: number): Record<string, unknown> {
  const self = fileURLToPath(import.meta.url)
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-scale-'))
  try {
    const filled = child(self, ['fill', dir, String(n)])
    const reopened = child(self, ['reopen', dir])
    if (reopened.length !== n) throw new Error(`reopened ${reopened.length} of ${n} events`)
    const catchup = child('bench/replication.ts', ['cold', 'tcp', 'classic', String(n)])
    return {
      bench: 'scale',
      db: 'classic',
      events: n,
      emitsPerSecond: filled.emitsPerSecond,
      emitCpuUsPerEvent: filled.emitCpuUsPerEvent,
      emitPeakRssMb: filled.peakRssMb,
      reopenMs: reopened.reopenMs,
      reopenCpuMs: reopened.reopenCpuMs,
      reopenPeakRssMb: reopened.peakRssMb,
      catchupEventsPerSecond: catchup.eventsPerSecond,
      catchupCpuUsPerEvent: Math.round((catchup.receiverCpuUsPerEvent + catchup.hubCpuUsPerEvent) * 100) / 100,
      catchupReceiverPeakRssMb: catchup.peakRssMb,
      catchupSenderPeakRssMb: catchup.hubPeakRssMb,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'fill') return fill(args[0], Number(args[1]))
  if (mode === 'reopen') return reopen(args[0])
  const sizes = mode === undefined ? SIZES : [mode, ...args].map(Number)
  const steps = sizes.map((n) => {
    const result = step(n)
    printJson(result)
    return result
  })
  const at = (n: number) => steps.find((s) => s.events === n)
  const [big, base] = [at(1_000_000), at(100_000)]
  if (big && base) {
    const ratio = (key: string) => Math.round(((big[key] as number) / (base[key] as number)) * 1000) / 1000
    const inverse = (key: string) => Math.round(((base[key] as number) / (big[key] as number)) * 1000) / 1000
    printJson({
      bench: 'scale',
      scenario: 'curve',
      emitRate1MOver100k: ratio('emitsPerSecond'),
      catchupRate1MOver100k: ratio('catchupEventsPerSecond'),
      // The same in CPU time (both processes, all threads): 100k's CPU per event over 1M's, so
      // above 1 means cheaper at 1M. Waiting for a core costs no CPU, so load moves it far less.
      emitCpuRate1MOver100k: inverse('emitCpuUsPerEvent'),
      catchupCpuRate1MOver100k: inverse('catchupCpuUsPerEvent'),
      reopenMs1M: big.reopenMs,
      catchupPeakRssMb1M: Math.max(big.catchupReceiverPeakRssMb as number, big.catchupSenderPeakRssMb as number),
    })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
