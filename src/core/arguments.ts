/**
 * The constructor's positional arguments, checked: `(db, schema, opts)` or
 * `(opts)`. A value in the wrong place (a schema where the db goes, options
 * where the schema goes, a callback anywhere) is refused with
 * INVALID_ARGUMENT saying what belongs there, never silently dropped.
 */
import { ErrorCodes, HyperEmitterError } from './errors.js'
import type { DbInput } from './types.js'

/** The arguments as one options object, `db` and `schema` included; the emitter checks each option's value. */
export interface ParsedArguments {
  db?: DbInput
  schema?: unknown
  [option: string]: unknown
}

const USAGE = 'HyperEmitter(db, schema, [opts]) or HyperEmitter({ db, schema, ...opts })'

function isDb(value: unknown): value is DbInput {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as DbInput).batch === 'function' &&
    typeof (value as DbInput).sublevel === 'function'
  )
}

/** A schema stream: a Node Readable or any async iterable of chunks. */
export function isStream(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    !(value instanceof Uint8Array) &&
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'
  )
}

/** A web ReadableStream, structurally (the core assumes no DOM types). */
function isReadable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { getReader?: unknown }).getReader === 'function'
}

/** protoc-gen-es descriptors and registries carry a `kind`. */
function isDescriptor(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0 && value.every(isDescriptor)
  const kind = typeof value === 'object' && value !== null ? (value as { kind?: unknown }).kind : undefined
  return kind === 'message' || kind === 'file' || kind === 'registry'
}

/** Something that can only be a schema: .proto text or bytes, a stream of them, or descriptors. */
function isSchemaLike(value: unknown): boolean {
  return typeof value === 'string' || value instanceof Uint8Array || isStream(value) || isReadable(value) || isDescriptor(value)
}

/** A plain object that is none of the above: an options object. */
function isPlainOptions(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return (proto === Object.prototype || proto === null) && !isSchemaLike(value) && !isDb(value)
}

/** What a value is, for an error message: "a string", "a Uint8Array", "a function"... */
function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name
    return name && name !== 'Object' ? `a ${name}` : 'an object'
  }
  return `a ${typeof value} (${String(value).slice(0, 40)})`
}

function invalid(message: string): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${message}; use ${USAGE}`)
}

/** Normalize the seed's `(db, schema, opts)` and the `(opts)` forms; throws INVALID_ARGUMENT for a misplaced argument. */
export function parseArguments(args: unknown[]): ParsedArguments {
  if (args.length > 3) throw invalid(`HyperEmitter takes at most 3 arguments, got ${args.length}`)
  const [first, schema, opts] = args
  if (typeof first === 'function' || typeof schema === 'function' || typeof opts === 'function') {
    throw invalid('HyperEmitter takes no callback (use emitter.ready(cb) or await emitter.ready())')
  }
  if (args.length === 1 && isPlainOptions(first)) return { ...(first as ParsedArguments) }
  if (first !== undefined && first !== null && !isDb(first)) {
    const what = isSchemaLike(first) ? `${describeValue(first)}, which looks like a schema` : describeValue(first)
    throw invalid(`the first argument must be an abstract-level db (memory-level, classic-level, browser-level) or null, not ${what}`)
  }
  if (isPlainOptions(schema)) {
    throw invalid(`the second argument is the schema (.proto text or bytes, a stream, or generated descriptors), not an options object; pass null to give none`)
  }
  if (isDb(schema)) throw invalid('the second argument is the schema, not a db')
  if (opts !== undefined && opts !== null && !isPlainOptions(opts)) {
    throw invalid(`the third argument must be an options object, not ${describeValue(opts)}`)
  }
  return { ...(opts as ParsedArguments | undefined), db: (first ?? undefined) as DbInput | undefined, schema }
}

/** `method(host, port)` given for `method(port, host)`: throws INVALID_ARGUMENT naming the call to make instead. */
export function checkPortFirst(method: string, port: unknown, host: unknown): void {
  if (typeof port === 'string' && typeof host === 'number' && !/^[a-z]+:\/\//i.test(port)) {
    throw new HyperEmitterError(
      ErrorCodes.INVALID_ARGUMENT,
      `${method}(port, host): the port comes first; call ${method}(${host}, ${JSON.stringify(port)})`,
    )
  }
}

/** A function among the arguments before the last one given: throws INVALID_ARGUMENT (`signature` shows the order). */
export function checkCallbackLast(signature: string, args: unknown[]): void {
  const given = args.filter((a) => a !== undefined)
  if (given.slice(0, -1).some((a) => typeof a === 'function')) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${signature}: the callback goes last`)
  }
}
