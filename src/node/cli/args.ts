import { closeSync, openSync, readSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ErrorCodes, HyperEmitterError } from '../../core/errors.js'

export interface CliOptions {
  schema: string
  db?: string
  port?: number
  host?: string
  targetHost?: string
  targetPort?: number
  targetUrl?: string
  repl: boolean
  fromScratch: boolean
  /** Largest schema file read (its parse time grows faster than its size). */
  maxSchemaBytes: number
  /** Largest NDJSON line read on stdin; longer ones are reported and skipped. */
  maxLineBytes: number
}

/** Default --max-schema-bytes: 256 KiB, far above real schemas, parsed in a second or two at worst. */
export const DEFAULT_MAX_SCHEMA_BYTES = 256 * 1024
/** Default --max-line-bytes: 8 MiB, room for an event of the default maxEventSize written as JSON. */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024

export const USAGE = `Usage: hypem <schema.proto> [options]

A HyperEmitter on the command line: a REPL with \`hyper\` (the emitter) in
scope that prints every event, or (--no-repl) an NDJSON pipe.

Options:
  --schema FILE       the .proto schema (instead of the positional argument)
  --db PATH           a LevelDB (classic-level) directory, created if missing;
                      default: an in-memory db, gone on exit
  --port PORT         accept peers on PORT (TCP and WebSocket; 0: any free port)
  --host HOST         the interface to listen on (default: all)
  --target-port PORT  connect to a peer over TCP
  --target-host HOST  the peer's host (default: localhost)
  --target-url URL    connect to a peer over WebSocket (ws://… or wss://…)
  --no-repl           NDJSON: emit the {"name":…,"payload":{…}} lines read on
                      stdin; write every event as one such line on stdout
  --from-scratch      print the whole log, not only the events not shown yet
  --max-schema-bytes N  refuse a larger schema file (default 262144)
  --max-line-bytes N  report and skip longer NDJSON lines (default 8388608)
  --example-schema    print an example schema (messages Hello and Blob) and exit:
                      hypem --example-schema > messages.proto
  -h, --help          show this help

A REPL or an NDJSON stream on a --db starts where it stopped last time.
With --no-repl, when stdin ends, hypem keeps running if it listens or is
connected (stop it with SIGINT/SIGTERM), and otherwise exits once every
event is written. Exit codes: 0 ok, 1 failure, 2 bad command line.
`

/** What a command line asks for: options, or one of the texts to print. Throws INVALID_ARGUMENT. */
export function parseCli(argv: string[]): CliOptions | 'help' | 'example-schema' {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        schema: { type: 'string' },
        db: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        'target-host': { type: 'string' },
        'target-port': { type: 'string' },
        'target-url': { type: 'string' },
        'no-repl': { type: 'boolean' },
        'from-scratch': { type: 'boolean' },
        'example-schema': { type: 'boolean' },
        'max-schema-bytes': { type: 'string' },
        'max-line-bytes': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    throw usage(describeParseError(err))
  }
  const { values, positionals } = parsed
  if (values.help) return 'help'
  if (values['example-schema']) return 'example-schema'
  // Values first: `--port messages.proto` took the schema as its value, and
  // should say so rather than that the schema is missing.
  const port = values.port === undefined ? undefined : parsePort('--port', values.port, 0)
  const targetPort = values['target-port'] === undefined ? undefined : parsePort('--target-port', values['target-port'], 1)
  if (positionals.length > 1) throw usage(`one schema file, not ${positionals.length}: ${positionals.join(' ')}`)
  const schema = values.schema ?? positionals[0]
  if (values.schema !== undefined && positionals[0] !== undefined && positionals[0] !== values.schema) {
    throw usage(`two schema files: ${positionals[0]} and --schema ${values.schema}`)
  }
  if (schema === undefined || schema === '') throw usage('missing the schema file (hypem <schema.proto>)')
  if (values['target-host'] !== undefined && values['target-port'] === undefined) {
    throw usage('--target-host needs --target-port')
  }
  if (values.host !== undefined && values.port === undefined) throw usage('--host needs --port')
  const targetUrl = values['target-url']
  if (targetUrl !== undefined && !/^wss?:\/\/[^/]/.test(targetUrl)) {
    throw usage(`--target-url must be a ws:// or wss:// URL, not ${targetUrl}`)
  }
  if (values.db === '') throw usage('--db needs a directory')
  return {
    schema,
    db: values.db,
    port,
    host: values.host,
    targetHost: values['target-host'],
    targetPort,
    targetUrl,
    repl: !values['no-repl'],
    fromScratch: values['from-scratch'] ?? false,
    maxSchemaBytes: parseBytes('--max-schema-bytes', values['max-schema-bytes'], DEFAULT_MAX_SCHEMA_BYTES),
    maxLineBytes: parseBytes('--max-line-bytes', values['max-line-bytes'], DEFAULT_MAX_LINE_BYTES),
  }
}

function parseBytes(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = /^\d{1,15}$/.test(value) ? Number(value) : NaN
  if (!(n >= 1)) throw usage(`${flag} must be a positive number of bytes, not ${JSON.stringify(value)}`)
  return n
}

function parsePort(flag: string, value: string, min: number): number {
  const port = /^\d{1,5}$/.test(value) ? Number(value) : NaN
  if (!(port >= min && port <= 65535)) throw usage(`${flag} must be a port number from ${min} to 65535, not ${JSON.stringify(value)}`)
  return port
}

function describeParseError(err: unknown): string {
  const e = err as { code?: string; message?: string }
  const option = /'(-[^' ]+)/.exec(e.message ?? '')?.[1]
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? ''}`.trim()
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (option && /argument missing|ambiguous/.test(e.message ?? '')) return `option ${option} needs a value`
      if (option && /does not take an argument/.test(e.message ?? '')) return `option ${option} takes no value`
      return (e.message ?? 'bad option value').split('\n')[0]
    default:
      return (e.message ?? String(err)).split('\n')[0]
  }
}

function usage(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${message} (see hypem --help)`)
}

/**
 * The schema file's bytes. Throws INVALID_SCHEMA naming the file and the
 * system error, or the limit when it is over `maxBytes` (read no further).
 */
export function readSchema(path: string, maxBytes: number = DEFAULT_MAX_SCHEMA_BYTES): Uint8Array {
  let fd: number | undefined
  try {
    fd = openSync(path, 'r')
    // Read in pieces until the end (a pipe reports no size), never more than one byte past the limit.
    const pieces: Buffer[] = []
    let total = 0
    for (;;) {
      const piece = Buffer.alloc(Math.min(64 * 1024, maxBytes + 1 - total))
      const n = readSync(fd, piece, 0, piece.length, null)
      if (n === 0) break
      pieces.push(piece.subarray(0, n))
      total += n
      if (total > maxBytes) {
        throw new HyperEmitterError(ErrorCodes.INVALID_SCHEMA, `schema file ${path} is over --max-schema-bytes (${maxBytes} bytes)`, {
          details: { maxSchemaBytes: maxBytes },
        })
      }
    }
    return Buffer.concat(pieces, total)
  } catch (err) {
    if (err instanceof HyperEmitterError) throw err
    throw new HyperEmitterError(ErrorCodes.INVALID_SCHEMA, `cannot read schema file ${path}: ${describeSystemError(err)}`)
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}

/** "ENOENT: no such file or directory, open 'x'" -> "ENOENT: no such file or directory". */
export function describeSystemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code === 'string') {
    const text = /^[A-Z]+: ([^,]+)/.exec(e.message)?.[1]
    return text ? `${e.code}: ${text}` : e.code
  }
  return err instanceof Error ? err.message : String(err)
}
