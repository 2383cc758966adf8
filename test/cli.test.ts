// The hypem binary, spawned as real processes (through tsx, so no build is
// needed), walking through the seed README's CLI session: a REPL hub, a REPL
// peer, an NDJSON exporter that stops and resumes, NDJSON in, bad input.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { EXAMPLE_SCHEMA } from '../src/node/cli/example-schema.js'

const ROOT = resolve(__dirname, '..')
const CLI = join(ROOT, 'src/cli.ts')
/** Generous: process start-up through tsx takes seconds on a busy 2-core machine. */
const WAIT = 20_000

const dirs: string[] = []
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hypem-test-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
/** The schema the README's walk-through uses: the one `hypem --example-schema` prints. */
const SCHEMA = join(tempDir(), 'messages.proto')
writeFileSync(SCHEMA, EXAMPLE_SCHEMA)

/** A spawned hypem: its output so far, and waits on it. */
class Hypem {
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private readonly waiters = new Set<() => void>()

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk
      this.wake()
    })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
      this.wake()
    })
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  }

  /** Resolves with the first match of `pattern` in the stream's output, or rejects after `timeout`. */
  waitFor(stream: 'stdout' | 'stderr', pattern: RegExp, timeout = WAIT): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this[stream].match(pattern)
        if (!match) return false
        done()
        resolve(match)
        return true
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no ${pattern} on ${stream} within ${timeout} ms\n--- stdout:\n${this.stdout}\n--- stderr:\n${this.stderr}`))
      }, timeout)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      if (!check()) this.waiters.add(check)
    })
  }

  /** Type a line (REPL) or write an NDJSON line. */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`)
  }

  /** Exit status within `timeout`, or a rejection. */
  async exit(timeout = WAIT): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no exit within ${timeout} ms\n--- stdout:\n${this.stdout}\n--- stderr:\n${this.stderr}`)), timeout)
    })
    try {
      return await Promise.race([this.exited, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The lines of stdout that are printed events (REPL mode). */
  eventLines(): string[] {
    return this.stdout.split('\n').filter((line) => /^(Hello|Blob|EventPeer) \{/.test(line))
  }

  /** Parsed NDJSON lines of stdout (--no-repl). */
  ndjson(): Array<{ name: string; payload: Record<string, unknown> }> {
    return this.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line))
  }

  private wake(): void {
    for (const check of [...this.waiters]) check()
  }
}

const children = new Set<Hypem>()

function hypem(args: string[], stdin: 'pipe' | 'ignore' = 'pipe'): Hypem {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: ROOT,
    stdio: [stdin, 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  })
  const proc = new Hypem(child)
  children.add(proc)
  return proc
}

afterEach(async () => {
  for (const proc of children) {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL')
      await proc.exited
    }
  }
  children.clear()
})

/** A REPL hub on a free port of 127.0.0.1; resolves once it prints `listening on PORT`. */
async function startHub(): Promise<{ hub: Hypem; port: number }> {
  const hub = hypem(['--port', '0', '--host', '127.0.0.1', SCHEMA])
  const [, port] = await hub.waitFor('stdout', /^listening on (\d+)$/m)
  return { hub, port: Number(port) }
}

const hello = (from: string, message = '') => `Hello { from: '${from}', message: '${message}' }`
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
const line = (text: string) => new RegExp(`^${escape(text)}$`, 'm')

describe('hypem REPL', () => {
  it('hub and peer: events typed in one REPL print in the other, and a REPL on a --db resumes where it stopped', async () => {
    const { hub, port } = await startHub()
    // `listening on` first, then our own EventPeer (as in the seed).
    await hub.waitFor('stdout', new RegExp(`^EventPeer \\{ id: '[0-9a-f]+', addresses: \\[ \\{ ip: '127\\.0\\.0\\.1', port: ${port}, `, 'm'))
    expect(hub.stdout.indexOf('listening on')).toBeLessThan(hub.stdout.indexOf('EventPeer {'))
    hub.send("hyper.emit('Hello', { from: 'Matteo' })")
    await hub.waitFor('stdout', line(hello('Matteo')))
    // A refused emit is one coded line, and no line shows a pending promise.
    hub.send("hyper.emit('Hello', {})")
    await hub.waitFor('stderr', /^hypem: HYPEREMITTER_MISSING_FIELD: .*from/m)

    const db = join(tempDir(), 'peer-db')
    const args = ['--db', db, '--target-port', String(port), '--target-host', '127.0.0.1', SCHEMA]
    const peer = hypem(args)
    await peer.waitFor('stdout', line(hello('Matteo')))
    const out = peer.stdout.split('\n')
    expect(out[0]).toBe(`connected to 127.0.0.1 ${port}`)
    expect(peer.eventLines()).toEqual([expect.stringMatching(/^EventPeer \{ id: '[0-9a-f]+'/), hello('Matteo')])

    // Live, both ways.
    hub.send("hyper.emit('Hello', { from: 'hub', message: 'live' })")
    await peer.waitFor('stdout', line(hello('hub', 'live')))
    peer.send("hyper.emit('Hello', { from: 'peer', message: 'hi' })")
    await hub.waitFor('stdout', line(hello('peer', 'hi')))
    await peer.waitFor('stdout', line(hello('peer', 'hi')))

    // End of input closes the REPL cleanly.
    peer.child.stdin!.end()
    expect(await peer.exit()).toEqual({ code: 0, signal: null })
    expect(peer.stderr).toBe('')

    hub.send("hyper.emit('Hello', { from: 'while away' })")
    await hub.waitFor('stdout', line(hello('while away')))
    const again = hypem(args)
    await again.waitFor('stdout', line(hello('while away')))
    // Printed in log order, so by now anything older would have shown: only the new one did.
    expect(again.eventLines()).toEqual([hello('while away')])

    hub.child.kill('SIGINT')
    expect(await hub.exit()).toEqual({ code: 0, signal: null })
    expect(hub.stdout + peer.stdout).not.toMatch(/Promise/)
    again.child.kill('SIGTERM')
    expect(await again.exit()).toEqual({ code: 0, signal: null })
  }, 90_000)
})

describe('hypem --no-repl', () => {
  it('reports bad stdin lines in line order, whether refused by the schema or not JSON', async () => {
    const pipe = hypem(['--no-repl', SCHEMA])
    pipe.send('{"name":"Hello","payload":{}}')
    pipe.send('not json')
    pipe.send('{"name":"Nope","payload":{}}')
    pipe.send('[')
    pipe.send('{"name":"Hello","payload":{"from":"ok"}}')
    pipe.child.stdin!.end()
    expect(await pipe.exit()).toEqual({ code: 0, signal: null })
    expect(pipe.stderr.split('\n').filter(Boolean).map((l) => /^hypem: stdin line (\d+): /.exec(l)?.[1])).toEqual(['1', '2', '3', '4'])
    expect(pipe.ndjson()).toEqual([{ name: 'Hello', payload: { from: 'ok', message: '' } }])
  })

  it('exports NDJSON, resumes after a stop with only the missed events, --from-scratch replays all; stdin lines reach the hub', async () => {
    const { hub, port } = await startHub()
    hub.send("hyper.emit('Hello', { from: 'first' })")
    await hub.waitFor('stdout', line(hello('first')))

    const db = join(tempDir(), 'export-db')
    const args = ['--no-repl', '--db', db, '--target-port', String(port), '--target-host', '127.0.0.1', SCHEMA]
    const exporter = hypem(args)
    await exporter.waitFor('stderr', line(`connected to 127.0.0.1 ${port}`))
    await exporter.waitFor('stdout', /"from":"first"/)

    // NDJSON in: good lines are emitted (and replicate to the hub), bad ones are reported by line number.
    exporter.send('{"name":"Hello","payload":{"from":"stdin"}}')
    exporter.send('this is not json')
    exporter.send('{"name":"Hello","payload":{}}')
    exporter.send('{"name":"Hello","payload":{"from":"x","colour":"red"}}')
    exporter.send('{"name":"Blob","payload":{"data":"AAEC","big":"9007199254740993","ratio":"Infinity"}}')
    await hub.waitFor('stdout', line(hello('stdin')))
    await hub.waitFor('stdout', line('Blob { data: Uint8Array(3) [ 0, 1, 2 ], big: 9007199254740993n, ratio: Infinity }'))
    await exporter.waitFor('stdout', /"name":"Blob"/)
    await exporter.waitFor('stderr', /line 4/)
    expect(exporter.stderr).toMatch(/^hypem: stdin line 2: HYPEREMITTER_INVALID_ARGUMENT: not JSON/m)
    expect(exporter.stderr).toMatch(/^hypem: stdin line 3: HYPEREMITTER_MISSING_FIELD: .*from/m)
    expect(exporter.stderr).toMatch(/^hypem: stdin line 4: HYPEREMITTER_UNKNOWN_FIELD: .*colour/m)

    exporter.child.kill('SIGTERM')
    expect(await exporter.exit()).toEqual({ code: 0, signal: null })
    const before = exporter.ndjson()
    expect(before.map((e) => e.name)).toEqual(['hyperemitter.v1.EventPeer', 'Hello', 'Hello', 'Blob'])
    expect(before.slice(1)).toEqual([
      { name: 'Hello', payload: { from: 'first', message: '' } },
      { name: 'Hello', payload: { from: 'stdin', message: '' } },
      // bytes as base64, 64-bit integers as strings, non-finite floats by name.
      { name: 'Blob', payload: { data: 'AAEC', big: '9007199254740993', ratio: 'Infinity' } },
    ])
    expect(before[0].payload).toMatchObject({ addresses: [{ ip: '127.0.0.1', port }] })

    // Missed while stopped, then resumed: exactly the missed events.
    hub.send("hyper.emit('Hello', { from: 'missed 1' })")
    hub.send("hyper.emit('Hello', { from: 'missed 2' })")
    await hub.waitFor('stdout', line(hello('missed 2')))
    const resumed = hypem(args, 'ignore')
    await resumed.waitFor('stdout', /"from":"missed 2"/)
    // Stdin ended long ago, but a connected exporter keeps running until a signal.
    resumed.child.kill('SIGTERM')
    expect(await resumed.exit()).toEqual({ code: 0, signal: null })
    const missed = [
      { name: 'Hello', payload: { from: 'missed 1', message: '' } },
      { name: 'Hello', payload: { from: 'missed 2', message: '' } },
    ]
    expect(resumed.ndjson()).toEqual(missed)

    // --from-scratch, alone (no peers): the whole log in order, then exit at end of stdin.
    const scratch = hypem(['--no-repl', '--from-scratch', '--db', db, SCHEMA], 'ignore')
    expect(await scratch.exit()).toEqual({ code: 0, signal: null })
    expect(scratch.stderr).toBe('')
    expect(scratch.ndjson()).toEqual([...before, ...missed])

    // ... and it saved its place: nothing is new for the next run.
    const after = hypem(['--no-repl', '--db', db, SCHEMA], 'ignore')
    expect(await after.exit()).toEqual({ code: 0, signal: null })
    expect(after.stdout).toBe('')
  }, 90_000)
})

describe('hypem bad input', () => {
  /** A port that was just free on 127.0.0.1, and a server holding another one. */
  async function ports(): Promise<{ closed: number; busy: number; close: () => void }> {
    const listen = () =>
      new Promise<ReturnType<typeof createServer>>((resolve) => {
        const server = createServer()
        server.listen(0, '127.0.0.1', () => resolve(server))
      })
    const [a, b] = await Promise.all([listen(), listen()])
    const closed = (a.address() as AddressInfo).port
    await new Promise((resolve) => a.close(resolve))
    return { closed, busy: (b.address() as AddressInfo).port, close: () => b.close() }
  }

  it('each fails with one line on stderr naming the problem, a non-zero code and no stack trace', async () => {
    const dir = tempDir()
    const unparsable = join(dir, 'broken.proto')
    writeFileSync(unparsable, 'message Hello { required string from = 1;\n')
    const lockedDb = join(dir, 'locked-db')
    const holder = new ClassicLevel(lockedDb)
    await holder.open()
    const { closed, busy, close } = await ports()
    try {
      const cases: Array<[string[], number, RegExp]> = [
        [[join(dir, 'missing.proto')], 1, /^hypem: cannot read schema file .*missing\.proto: ENOENT/],
        [[unparsable], 1, /^hypem: invalid schema file .*broken\.proto: /],
        [['--frobnicate', SCHEMA], 2, /^hypem: unknown option --frobnicate/],
        [[], 2, /^hypem: missing the schema file/],
        [['--port', '70000', SCHEMA], 2, /^hypem: --port must be a port number/],
        // The schema taken as the port's value: said so, not "missing the schema file".
        [['--port', SCHEMA], 2, /^hypem: --port must be a port number from 0 to 65535, not ".*messages\.proto"/],
        [['--port', String(busy), '--host', '127.0.0.1', SCHEMA], 1, /^hypem: could not listen on .*EADDRINUSE/],
        [['--no-repl', '--target-port', String(closed), '--target-host', '127.0.0.1', SCHEMA], 1, /^hypem: could not connect to tcp:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/],
        [['--target-url', `ws://127.0.0.1:${closed}/`, SCHEMA], 1, /^hypem: could not open ws:\/\/127\.0\.0\.1:\d+\/: .*ECONNREFUSED/],
        [['--db', lockedDb, SCHEMA], 1, /^hypem: cannot open db .*locked-db: .*LEVEL_LOCKED/],
      ]
      // Three at a time: each is a node process starting up through tsx on a shared 2-core machine.
      const runs: Hypem[] = []
      const results: Array<{ code: number | null; signal: NodeJS.Signals | null }> = []
      for (let next = 0; next < cases.length; next += 3) {
        const batch = cases.slice(next, next + 3).map(([args]) => hypem(args, 'ignore'))
        runs.push(...batch)
        results.push(
          ...(await Promise.all(
            batch.map((run, i) => run.exit().catch((err: Error) => Promise.reject(new Error(`hypem ${cases[next + i][0].join(' ')}: ${err.message}`)))),
          )),
        )
      }
      cases.forEach(([args, code, pattern], i) => {
        const { stdout, stderr } = runs[i]
        const context = `hypem ${args.join(' ')}\n${stderr}`
        expect(results[i], context).toEqual({ code, signal: null })
        expect(stderr, context).toMatch(pattern)
        expect(stderr.endsWith('\n') && stderr.indexOf('\n') === stderr.length - 1, context).toBe(true)
        expect(stderr, context).not.toMatch(/^\s+at /m)
        expect(stdout, context).toBe('')
      })
    } finally {
      close()
      await holder.close()
    }
  }, 90_000)

  it('--help prints the usage on stdout and exits 0', async () => {
    const help = hypem(['--help'], 'ignore')
    expect(await help.exit()).toEqual({ code: 0, signal: null })
    expect(help.stdout).toMatch(/^Usage: hypem <schema\.proto>/)
    expect(help.stdout).toMatch(/--from-scratch/)
    expect(help.stderr).toBe('')
  })

  it('--example-schema prints the schema the README walks through, which hypem then accepts', async () => {
    const print = hypem(['--example-schema'], 'ignore')
    expect(await print.exit()).toEqual({ code: 0, signal: null })
    expect(print.stdout).toBe(EXAMPLE_SCHEMA)
    const file = join(tempDir(), 'printed.proto')
    writeFileSync(file, print.stdout)
    const pipe = hypem(['--no-repl', file])
    pipe.send('{"name":"Hello","payload":{"from":"Matteo"}}')
    pipe.child.stdin!.end()
    expect(await pipe.exit()).toEqual({ code: 0, signal: null })
    expect(pipe.stdout).toBe('{"name":"Hello","payload":{"from":"Matteo","message":""}}\n')
  })
})

describe('hypem bounds', () => {
  it('skips an NDJSON line over --max-line-bytes and refuses an event too large for the wire, going on with the next lines', async () => {
    const proc = hypem([SCHEMA, '--no-repl', '--max-line-bytes', String(8 * 1024 * 1024)])
    proc.send(`{"name":"Hello","payload":{"from":"${'x'.repeat(9 * 1024 * 1024)}"}}`)
    proc.send(JSON.stringify({ name: 'Blob', payload: { data: Buffer.alloc(5 * 1024 * 1024).toString('base64') } }))
    proc.send(JSON.stringify({ name: 'Hello', payload: { from: 'after', message: 'both' } }))
    proc.child.stdin!.end()
    await proc.exit()
    expect(proc.stderr).toMatch(/stdin line 1: .*over --max-line-bytes \(8388608\)/)
    expect(proc.stderr).toMatch(/stdin line 2: .*HYPEREMITTER_EVENT_TOO_LARGE|stdin line 2: .*maxEventSize/)
    expect(proc.ndjson().filter((e) => e.name === 'Hello')).toEqual([{ name: 'Hello', payload: { from: 'after', message: 'both' } }])
  })

  it('refuses a schema file over --max-schema-bytes, and SIGTERM ends a long schema parse at once', async () => {
    const dir = tempDir()
    let text = 'syntax = "proto3";\npackage big;\nmessage M {\n'
    for (let i = 1; i <= 60_000; i++) text += `  string field_number_${i} = ${i};\n`
    const big = join(dir, 'big.proto')
    writeFileSync(big, `${text}}\n`)
    const refused = hypem([big, '--no-repl'], 'ignore')
    expect(await refused.exit()).toEqual({ code: 1, signal: null })
    expect(refused.stderr).toMatch(/over --max-schema-bytes \(262144 bytes\)/)

    const parsing = hypem([big, '--no-repl', '--max-schema-bytes', String(8 * 1024 * 1024)], 'ignore')
    // Start-up through tsx takes a second or two; the parse of 60k fields far longer.
    await new Promise((r) => setTimeout(r, 4000))
    const sent = Date.now()
    parsing.child.kill('SIGTERM')
    expect(await parsing.exit(5000)).toEqual({ code: null, signal: 'SIGTERM' })
    expect(Date.now() - sent).toBeLessThan(2000)
  })
})
