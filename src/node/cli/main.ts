/**
 * The `hypem` command: a HyperEmitter as a REPL or an NDJSON pipe.
 *
 * Output rules: in REPL mode events and notices (`listening on …`,
 * `connected to …`) go to stdout, as the seed shows them; with --no-repl only
 * events go to stdout and everything else to stderr. Every failure is one
 * `hypem: …` line on stderr, never a stack trace.
 */
import readline from 'node:readline'
import type { REPLEval, REPLServer } from 'node:repl'
import { inspect, types } from 'node:util'
import type { DescFile } from '@bufbuild/protobuf'
import { registryFromProto } from '../../core/codec/proto-parse.js'
import { ErrorCodes, HyperEmitterError } from '../../core/errors.js'
import type { ReplicationOptions } from '../../sync/replicated.js'
import { describeSystemError, type CliOptions } from './args.js'
import { openLevelDb, type LevelDb } from './db.js'
import { CliEmitter, type CliEvent, type Follower } from './emitter.js'
import { eventFromJson, eventToJson } from './json.js'
import { BoundedLines } from './lines.js'

/** Durable consumer names: one per mode, so a REPL and an export on one db keep separate places. */
export const REPL_CONSUMER = 'hypem-repl'
export const NDJSON_CONSUMER = 'hypem-ndjson'

/** In-flight emits from stdin past which reading pauses. */
const MAX_IN_FLIGHT = 1024
const PROGRESS_INTERVAL = 100

/**
 * Runs hypem with parsed options and the schema file's bytes (src/cli.ts
 * parses and reads them first, without loading all this); the process exits
 * when it is done, with code 0 or 1.
 */
export async function run(options: CliOptions, schema: Uint8Array): Promise<void> {
  // Parsed before any signal handler exists: a parse that takes long is then
  // ended by SIGINT/SIGTERM at once, as a process with nothing to clean up.
  let file: DescFile
  try {
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(schema)
    } catch {
      throw new Error('the .proto bytes are not valid UTF-8')
    }
    file = registryFromProto(text).file
  } catch (err) {
    const message = `invalid schema file ${options.schema}: ${describe(err)}`
    process.stderr.write(`hypem: ${message.replace(/\s*\n\s*/g, ' ')}\n`)
    process.exit(1)
  }
  await new Cli(options, file).run()
}

class Cli {
  private db: LevelDb | undefined
  private hyper: CliEmitter | undefined
  private follower: Follower | undefined
  private replServer: REPLServer | undefined
  private input: BoundedLines | undefined
  private readonly screen: Screen
  private stopping: Promise<void> | undefined
  private closing = false
  private interruptDrain: (() => void) | undefined
  private started = false
  /** Listening or connected: then the process lives on after stdin ends. */
  private readonly networked: boolean

  constructor(
    private readonly options: CliOptions,
    private readonly schema: DescFile,
  ) {
    this.networked = options.port !== undefined || options.targetPort !== undefined || options.targetUrl !== undefined
    this.screen = new Screen(options.repl, options.repl && Boolean(process.stdin.isTTY && process.stdout.isTTY))
  }

  async run(): Promise<void> {
    const onSignal = () => void this.stop(0)
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    // A reader that went away (`hypem … | head`) is a normal end.
    process.stdout.on('error', () => void this.stop(0))
    try {
      await this.start()
    } catch (err) {
      // A signal during start-up closes what start() is still using: not a failure.
      if (this.closing) return
      this.screen.error(describe(err))
      await this.stop(1)
    }
  }

  private async start(): Promise<void> {
    const { options, schema } = this
    if (options.db !== undefined) {
      try {
        this.db = await openLevelDb(options.db)
      } catch (err) {
        if (isCode(err, ErrorCodes.NOT_SUPPORTED)) throw err
        throw new HyperEmitterError(ErrorCodes.STORAGE_FAILED, `cannot open db ${options.db}: ${describeDbError(err)}`)
      }
    }
    let hyper: CliEmitter
    try {
      // Only the flags say where to go (so an unreachable target fails now,
      // even when the db remembers it), plus peers announced while running.
      const replication: ReplicationOptions = { discover: this.networked, reconnectKnown: false }
      hyper = new CliEmitter(this.db ?? null, schema, replication)
    } catch (err) {
      throw new HyperEmitterError(ErrorCodes.INVALID_SCHEMA, `invalid schema file ${options.schema}: ${describe(err)}`)
    }
    this.hyper = hyper
    this.watchStatus(hyper)
    await hyper.ready()

    const consumer = options.repl ? REPL_CONSUMER : NDJSON_CONSUMER
    if (options.fromScratch) await hyper.resetConsumer(consumer)
    // A REPL seen for the first time on this db starts now (before any peer
    // is reached, so catch-ups and our own EventPeer still show); an export
    // starts at the beginning of the log.
    const from = options.fromScratch || !options.repl ? 0 : hyper.length
    // The REPL holds events back until the notices are out, so `listening on`
    // comes before our own EventPeer, as in the seed.
    let release!: () => void
    const started = new Promise<void>((resolve) => (release = resolve))
    this.follower = await hyper.follow({ consumer, from }, options.repl ? (e) => started.then(() => this.printEvent(e)) : (e) => this.writeEvent(e))

    if (options.port !== undefined) {
      const address = await hyper.listen(options.port, options.host)
      this.screen.notice(`listening on ${address.port}`)
    }
    if (options.targetPort !== undefined) {
      const host = options.targetHost ?? 'localhost'
      await hyper.connect(options.targetPort, host)
      this.screen.notice(`connected to ${host} ${options.targetPort}`)
    }
    if (options.targetUrl !== undefined) {
      await hyper.connect(options.targetUrl)
      this.screen.notice(`connected to ${options.targetUrl}`)
    }
    // The REPL module loads only in REPL mode; before the held events are released.
    const repl = options.repl ? (await import('node:repl')).default : undefined
    this.started = true
    release()
    if (repl) this.startRepl(hyper, repl)
    else this.readInput(hyper)
  }

  private startRepl(hyper: CliEmitter, repl: typeof import('node:repl')): void {
    const terminal = this.screen.terminal
    const server = repl.start({
      prompt: terminal ? 'hypem> ' : '',
      input: process.stdin,
      output: process.stdout,
      terminal,
      useColors: terminal,
      ignoreUndefined: true,
      writer: (value) => this.screen.result(value),
    })
    server.context.hyper = hyper
    // `hyper.emit(…)` returns a promise: show what it settles to (nothing, or
    // a one-line error), not `Promise { <pending> }`.
    const evaluate = server.eval
    ;(server as { eval: REPLEval }).eval = (code, context, file, cb) =>
      evaluate.call(server, code, context, file, (err, value) => {
        if (err || !types.isPromise(value)) return cb(err, value)
        value.then(
          (settled) => cb(null, settled),
          (failure) => {
            this.screen.error(describeCoded(failure))
            cb(null, undefined)
          },
        )
      })
    this.replServer = server
    this.screen.repl = server
    // `hyper.emit(…)` typed without await and refused: report it, do not die.
    process.on('unhandledRejection', (err) => this.screen.error(`uncaught: ${describe(err)}`))
    server.on('exit', () => void this.stop(0, true))
  }

  /** NDJSON in: each line is emitted in order; a bad line is reported and skipped. */
  private readInput(hyper: CliEmitter): void {
    const input = new BoundedLines(process.stdin, this.options.maxLineBytes)
    this.input = input
    const descOf = (name: string) => hyper.messages[name]?.desc
    let lineNo = 0
    let inFlight = 0
    let paused = false
    // Each line's failure is reported after the lines before it: a refused
    // emit is known later than a line that is not JSON.
    let reported = Promise.resolve()
    const report = (n: number, failure: Promise<unknown>) => {
      reported = reported
        .then(() => failure)
        .then((err) => {
          if (err !== undefined && !isCode(err, ErrorCodes.CLOSED)) this.screen.error(`stdin line ${n}: ${describeCoded(err)}`)
        })
    }
    input.on('line', (line) => {
      const n = ++lineNo
      if (line.trim() === '' || this.closing) return
      let event
      try {
        event = eventFromJson(line, descOf)
      } catch (err) {
        report(n, Promise.resolve(err))
        return
      }
      inFlight++
      const failure = hyper.emit(event.name, event.payload).then(noop, (err: unknown) => err)
      report(n, failure)
      void failure.finally(() => {
        inFlight--
        if (paused && inFlight < MAX_IN_FLIGHT / 2) {
          paused = false
          input.resume()
        }
      })
      if (inFlight >= MAX_IN_FLIGHT && !paused) {
        paused = true
        input.pause()
      }
    })
    input.on('overlong', (bytes) => {
      const n = ++lineNo
      report(n, Promise.resolve(new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, `line of ${bytes} bytes is over --max-line-bytes (${this.options.maxLineBytes}); skipped`)))
    })
    input.on('close', () => {
      // Stdin ended: a pipe member (listening or connected) goes on relaying
      // and exporting until a signal; alone, there is nothing left to do once
      // every event is written.
      if (!this.networked) void this.stop(0, true)
    })
  }

  private printEvent(e: CliEvent): void {
    if (e.error !== undefined) {
      this.screen.error(`cannot decode event ${e.change} (${e.name}): ${describeCoded(e.error)}`)
      return
    }
    const payload = e.payload
    const short = e.name.slice(e.name.lastIndexOf('.') + 1)
    const text = this.screen.inspect(payload)
    // Schema messages are instances of a class named after the message, which inspect prints.
    const named = typeof payload === 'object' && payload !== null && payload.constructor?.name === short
    this.screen.event(named ? text : `${e.name} ${text}`)
  }

  /** NDJSON out: the event counts as handled (position saved) once its line is written. */
  private writeEvent(e: CliEvent): void | Promise<void> {
    if (e.error !== undefined) {
      this.screen.error(`cannot decode event ${e.change} (${e.name}): ${describeCoded(e.error)}`)
      return
    }
    this.screen.clearProgress()
    const line = `${eventToJson(e.name, e.payload)}\n`
    // A failed write never resolves: the event stays unacknowledged, and stop() follows.
    return new Promise((resolve) => process.stdout.write(line, (err) => err || resolve()))
  }

  private watchStatus(hyper: CliEmitter): void {
    const { screen } = this
    let lastProgress = 0
    hyper.status.on('error', (err: Error) => {
      // Before start-up finished, failures surface through the awaited calls.
      if (this.started && !this.closing) screen.error(describeCoded(err))
    })
    hyper.status.on('peer:progress', (p: { address?: string; id?: string; received: number }) => {
      if (!screen.progressShown && p.received < 1000) return
      const now = Date.now()
      if (now - lastProgress < PROGRESS_INTERVAL) return
      lastProgress = now
      screen.progress(`catching up with ${p.address ?? p.id ?? 'a peer'}: ${p.received} events received`)
    })
    hyper.status.on('peer:synced', (p: { address?: string; id?: string; nodesReceived?: number }) => {
      if (!screen.progressShown) return
      screen.clearProgress()
      screen.notice(`caught up with ${p.address ?? p.id ?? 'a peer'}: ${p.nodesReceived ?? 0} events received`)
    })
    hyper.status.on('peer:reconnecting', (p: { address?: string; attempt: number; delay: number }) => {
      if (!this.closing) screen.notice(`reconnecting to ${p.address} in ${p.delay} ms (attempt ${p.attempt})`)
    })
    hyper.status.on('peer:error', (p: { address?: string; id?: string; error: unknown }) => {
      if (!this.closing) screen.error(`peer ${p.address ?? p.id ?? ''}: ${describeCoded(p.error)}`)
    })
    hyper.status.on('peer:disconnected', (p: { address?: string; direction: string; error?: unknown }) => {
      if (!this.closing && p.direction === 'outgoing' && p.error === undefined) screen.notice(`disconnected from ${p.address}`)
    })
    hyper.status.on('close', () => void this.stop(0))
  }

  /**
   * Close everything and exit with `code`. With `drain`, first let pending
   * emits land and print every event already in the log (however long that
   * takes: it is an export's job; a signal cuts it short).
   */
  stop(code: number, drain = false): Promise<void> {
    if (this.stopping) {
      // A signal (or a closed stdout) during a drain: stop waiting, close now.
      this.interruptDrain?.()
      return this.stopping
    }
    // Set before shutdown() runs: closing emits peer events synchronously.
    this.closing = true
    this.stopping = this.shutdown(code, drain)
    return this.stopping
  }

  private async shutdown(code: number, drain: boolean): Promise<void> {
    const { hyper, follower } = this
    try {
      if (drain && hyper && follower && !hyper.closed) {
        await new Promise<void>((resolve) => {
          this.interruptDrain = resolve
          void hyper.settled().then(() => follower.reached(hyper.length)).then(resolve)
        })
      }
      this.input?.close()
      if (this.replServer) {
        this.screen.repl = undefined
        this.replServer.close()
      }
      // Closing saves every consumer position, then the log; the db is ours to close.
      await hyper?.close()
      await this.db?.close()
    } catch (err) {
      this.screen.error(describe(err))
      code = code || 1
    }
    this.screen.clearProgress()
    // Let stdout and stderr drain before exiting (a pipe may still hold lines).
    await new Promise<void>((resolve) => process.stdout.write('', () => resolve()))
    await new Promise<void>((resolve) => process.stderr.write('', () => resolve()))
    process.exit(code)
  }
}

/**
 * Where lines go, so that event lines and notices never garble the REPL's
 * prompt line or a progress line on a terminal.
 */
class Screen {
  repl: REPLServer | undefined
  progressShown = false

  constructor(
    /** REPL mode: notices go to stdout. */
    private readonly replMode: boolean,
    /** A REPL on a terminal: redraw the prompt around every line. */
    readonly terminal: boolean,
  ) {}

  /** An event line: stdout. */
  event(text: string): void {
    this.write(process.stdout, text)
  }

  /** A notice: stdout in REPL mode (as the seed), else stderr. */
  notice(text: string): void {
    this.write(this.replMode ? process.stdout : process.stderr, text)
  }

  /** A failure: one line on stderr. */
  error(text: string): void {
    this.write(process.stderr, `hypem: ${oneLine(text)}`)
  }

  inspect(value: unknown): string {
    return inspect(value, { colors: this.terminal, depth: 8, breakLength: this.terminal ? process.stdout.columns || 80 : Infinity })
  }

  /** A REPL result, as Node's REPL shows it. */
  result(value: unknown): string {
    return inspect(value, { colors: this.terminal, showProxy: true })
  }

  /** A transient line on stderr, only when it is a terminal. */
  progress(text: string): void {
    if (!process.stderr.isTTY) return
    readline.clearLine(process.stderr, 0)
    readline.cursorTo(process.stderr, 0)
    process.stderr.write(text.slice(0, (process.stderr.columns || 80) - 1))
    this.progressShown = true
  }

  clearProgress(): void {
    if (!this.progressShown) return
    this.progressShown = false
    readline.clearLine(process.stderr, 0)
    readline.cursorTo(process.stderr, 0)
    if (this.terminal) this.repl?.displayPrompt(true)
  }

  private write(stream: NodeJS.WriteStream, text: string): void {
    if (this.progressShown) {
      this.progressShown = false
      readline.clearLine(process.stderr, 0)
      readline.cursorTo(process.stderr, 0)
    }
    const redraw = this.terminal && this.repl !== undefined
    if (redraw) {
      // Clear the prompt line (and what is typed on it), print, then redraw both.
      readline.clearLine(process.stdout, 0)
      readline.cursorTo(process.stdout, 0)
    }
    stream.write(`${text}\n`)
    if (redraw) this.repl!.displayPrompt(true)
  }
}

function noop(): void {}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

/** An error as one readable phrase: its message, without the library's prefix. */
function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return oneLine(message.replace(/^hyperemitter: /, ''))
}

/** `CODE: message` for errors that carry a code. */
function describeCoded(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  return typeof code === 'string' ? `${code}: ${describe(err)}` : describe(err)
}

function describeDbError(err: unknown): string {
  let e = err as { code?: string; message?: string; cause?: unknown } | undefined
  // Level wraps the real reason (LEVEL_LOCKED, an IO error) in a cause.
  while (e && typeof e === 'object' && e.cause && typeof e.cause === 'object') e = e.cause as typeof e
  if (e?.code === 'LEVEL_LOCKED') return 'it is in use by another process (LEVEL_LOCKED)'
  if (typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code)) return describeSystemError(e)
  return describe(e ?? err)
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
