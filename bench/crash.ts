// History right after a crash (issue 17): a writer on classic-level emits
// bursts of 50 until it is killed with SIGKILL, for a few rounds; then the
// whole log is read with events({ from: 'beginning' }) in a fresh process
// right after the last kill, and again in another fresh process once that
// one has closed (the quiet read). Reports each read's time and its longest
// pause between two events; targets: the crash read at most 1.5x the quiet
// one, no pause over 250 ms.
// Run: npx tsx bench/crash.ts [N]          (default 120000 events in 3 rounds)
//      npx tsx bench/crash.ts writer <dir> | read <dir>
import { spawn } from 'node:child_process'
import { PerformanceObserver } from 'node:perf_hooks'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import { HyperEmitter } from '../src/index.js'
import { HELLO_SCHEMA, helloMessage, peakRssMb, printJson } from './common.js'

const BURST = 50
const ROUNDS = 3
/** The writer reports its count this often (in events). */
const REPORT_EVERY = 1000
/** A round that makes no progress for this long fails the bench. */
const STALL_MS = 120_000

function emitter(dir: string) {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' })
  return HyperEmitter(db, HELLO_SCHEMA, { discover: false, reconnectKnown: false })
}

/** Emits bursts of 50 forever, printing the count; the parent kills it. */
async function writer(dir: string): Promise<void> {
  const e = emitter(dir)
  await e.ready()
  for (let i = 0; ; i += BURST) {
    const burst: Promise<void>[] = []
    for (let j = 0; j < BURST; j++) burst.push(e.emit('Hello', helloMessage(i + j)))
    await Promise.all(burst)
    if ((i + BURST) % REPORT_EVERY === 0) process.stdout.write(`${i + BURST}\n`)
  }
}

/** A pause this long between two events is listed with when it happened. */
const LISTED_PAUSE_MS = 50

/**
 * LevelDB's own log (the LOG file in the db's directory) from `since` on,
 * each line as [ms after `origin` (a Date.now()), text]: what LevelDB did
 * (recovery, flushes, compactions) beside the pauses a read saw.
 */
function leveldbActivity(dir: string, since: number, origin: number): Array<[number, string]> {
  const file = join(dir, 'LOG')
  if (!existsSync(file)) return []
  const out: Array<[number, string]> = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    // 2026/12/08-03:24:55.389407 7f6e69fbd6c0 Recovering log #238 (local time)
    const m = /^(\d{4})\/(\d\d)\/(\d\d)-(\d\d):(\d\d):(\d\d)\.(\d{6}) \S+ (.*)$/.exec(line)
    if (m === null) continue
    const at = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], Math.floor(+m[7] / 1000)).getTime()
    if (at >= since) out.push([at - origin, m[8].slice(0, 80)])
  }
  return out
}

/** Reads the whole log from the beginning: open time, read time, longest pause between two events. */
async function read(dir: string): Promise<void> {
  const wallStart = Date.now()
  const start = performance.now()
  const e = emitter(dir)
  await e.ready()
  const opened = performance.now()
  // Process-wide: LevelDB's compaction thread counts too, main-thread work alone would not show it.
  const cpu = process.cpuUsage()
  // Off-CPU time: page faults that went to disk, blocks read, and how often the process waited or was preempted.
  const usage = process.resourceUsage()
  // GC pauses, to tell them from waits on the db or the OS.
  let gcMs = 0
  let maxGcMs = 0
  const gc = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gcMs += entry.duration
      maxGcMs = Math.max(maxGcMs, entry.duration)
    }
  })
  gc.observe({ entryTypes: ['gc'] })
  const length = (e as unknown as { log: { length: number } }).log.length
  let count = 0
  let last = opened
  let maxGapMs = 0
  // [ms after the read began, pause ms] of each pause over LISTED_PAUSE_MS.
  const pauses: Array<[number, number]> = []
  if (length > 0) {
    for await (const _event of e.events({ from: 'beginning' })) {
      const now = performance.now()
      const gap = now - last
      if (gap > LISTED_PAUSE_MS) pauses.push([round(last - opened), round(gap)])
      maxGapMs = Math.max(maxGapMs, gap)
      last = now
      if (++count === length) break
    }
  }
  const done = performance.now()
  const { user, system } = process.cpuUsage(cpu)
  const after = process.resourceUsage()
  gc.disconnect()
  await e.close()
  printJson({
    events: count,
    openMs: round(opened - start),
    readMs: round(done - opened),
    readCpuMs: round((user + system) / 1000),
    maxGapMs: round(maxGapMs),
    gcMs: round(gcMs),
    maxGcMs: round(maxGcMs),
    peakRssMb: peakRssMb(),
    majorFaults: after.majorPageFault - usage.majorPageFault,
    fsReadBlocks: after.fsRead - usage.fsRead,
    waits: after.voluntaryContextSwitches - usage.voluntaryContextSwitches,
    preempted: after.involuntaryContextSwitches - usage.involuntaryContextSwitches,
    pauses: pauses.sort((a, b) => b[1] - a[1]).slice(0, 10),
    // LevelDB's own log lines since this process opened the db, ms from the read's start (negative: during open).
    leveldb: leveldbActivity(dir, wallStart - 1000, wallStart + Math.round(opened - start)).slice(0, 40),
  })
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}

/** One writer process, killed with SIGKILL once it has reported `events` more events. */
function writeRound(self: string, dir: string, events: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', self, 'writer', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    let stall = setTimeout(() => child.kill('SIGKILL'), STALL_MS)
    let killed = false
    createInterface({ input: child.stdout! }).on('line', (line) => {
      clearTimeout(stall)
      stall = setTimeout(() => child.kill('SIGKILL'), STALL_MS)
      if (!killed && Number(line) >= events) {
        killed = true
        child.kill('SIGKILL')
      }
    })
    child.once('exit', () => {
      clearTimeout(stall)
      if (killed) resolve()
      else reject(new Error('the writer stopped before it was killed'))
    })
  })
}

function readProcess(self: string, dir: string): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', self, 'read', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (code !== 0 || line === undefined) reject(new Error(`the reader failed (exit ${code})`))
      else resolve(JSON.parse(line))
    })
  })
}

async function main(): Promise<void> {
  const [mode, arg] = process.argv.slice(2)
  if (mode === 'writer') return writer(arg)
  if (mode === 'read') return read(arg)
  const n = Number(mode ?? process.env.BENCH_CRASH_N ?? 120_000)
  const self = fileURLToPath(import.meta.url)
  const dir = mkdtempSync(join(tmpdir(), 'hyperemitter-crash-'))
  try {
    for (let r = 0; r < ROUNDS; r++) await writeRound(self, dir, Math.ceil(n / ROUNDS))
    const crash = await readProcess(self, dir)
    const quiet = await readProcess(self, dir)
    printJson({
      bench: 'crash',
      scenario: 'read-after-sigkill',
      db: 'classic',
      events: crash.events,
      readMs: crash.readMs,
      openMs: crash.openMs,
      maxGapMs: crash.maxGapMs,
      readCpuMs: crash.readCpuMs,
      gcMs: crash.gcMs,
      maxGcMs: crash.maxGcMs,
      quietReadMs: quiet.readMs,
      quietReadCpuMs: quiet.readCpuMs,
      quietOpenMs: quiet.openMs,
      quietMaxGapMs: quiet.maxGapMs,
      ofQuiet: Math.round((crash.readMs / quiet.readMs) * 100) / 100,
      peakRssMb: crash.peakRssMb,
      // With BENCH_CRASH_DETAIL=1: each read's longest pauses [at ms, ms] and LevelDB's log lines [at ms, text] beside them.
      // Off-CPU causes of each read: page faults that read the disk, blocks read, waits, preemptions (crash, quiet).
      majorFaults: [crash.majorFaults, quiet.majorFaults],
      fsReadBlocks: [crash.fsReadBlocks, quiet.fsReadBlocks],
      waits: [crash.waits, quiet.waits],
      preempted: [crash.preempted, quiet.preempted],
      ...(process.env.BENCH_CRASH_DETAIL ? { crashDetail: { pauses: crash.pauses, leveldb: crash.leveldb }, quietDetail: { pauses: quiet.pauses, leveldb: quiet.leveldb } } : {}),
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
