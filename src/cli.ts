#!/usr/bin/env node
/**
 * `hypem`: the HyperEmitter command line (package.json "bin"). See
 * src/node/cli/main.ts, or run `hypem --help`.
 *
 * The command line and the schema file are checked before the library is
 * loaded, so mistakes there are reported at once. Exit codes: 0 ok,
 * 1 failure, 2 bad command line.
 */
import { ErrorCodes, isHyperEmitterError } from './core/errors.js'
import { parseCli, readSchema, USAGE } from './node/cli/args.js'
import { EXAMPLE_SCHEMA } from './node/cli/example-schema.js'

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`hypem: ${message.replace(/\s*\n\s*/g, ' ')}\n`)
  process.exit(isHyperEmitterError(err, ErrorCodes.INVALID_ARGUMENT) ? 2 : 1)
}

async function start(argv: string[]): Promise<void> {
  let options
  let schema
  try {
    options = parseCli(argv)
    if (options === 'help' || options === 'example-schema') {
      process.stdout.write(options === 'help' ? USAGE : EXAMPLE_SCHEMA)
      return
    }
    schema = readSchema(options.schema, options.maxSchemaBytes)
  } catch (err) {
    fail(err)
  }
  const { run } = await import('./node/cli/main.js')
  await run(options, schema)
}

start(process.argv.slice(2)).catch(fail)
