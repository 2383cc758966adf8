/**
 * Schemas and codecs: what an event's payload bytes mean.
 *
 * A schema (.proto text, protoc-gen-es descriptors, or nothing) becomes one
 * codec per message; users add custom codecs by name. Events are stored
 * under a canonical name so that short and full names are interchangeable:
 * "Hello" and "chat.Hello" are one event when the schema has one Hello.
 *
 * Naming rules, in lookup order:
 * 1. a name with a custom codec resolves to that codec, under that name;
 * 2. a message's full name ("chat.Hello"; "Hello" when it has no package);
 * 3. a message's short name (the part after the last dot, nested messages
 *    included) when exactly one message has it; when several do, the short
 *    name is ambiguous (AMBIGUOUS_EVENT) and only full names work;
 * 4. anything else has no codec: its payload must already be bytes.
 * Registering a custom codec under a name that resolves to a schema message
 * replaces that message's codec (under its full name, so both names follow).
 *
 * Built in: hyperemitter.v1.EventPeer, which the emitter announces when it
 * listens. Its short name "EventPeer" always means the built-in one: a user
 * message named exactly "EventPeer" (no package) or
 * "hyperemitter.v1.EventPeer" is refused (INVALID_SCHEMA); a user's
 * "other.EventPeer" works under its full name only.
 */
import type { DescFile, DescMessage, Message, MessageShape, Registry } from '@bufbuild/protobuf'
import { EventPeerSchema } from '../../gen/hyperemitter/v1/peer_pb.js'
import { ErrorCodes, HyperEmitterError, isHyperEmitterError } from '../errors.js'
import { decodePlain } from './plain-decode.js'
import { type Encoded, encodePlain, encodePlainShared } from './plain-encode.js'
import { planFor } from './plain-plan.js'

/** Anything with an encode and a decode: a custom codec. */
export interface Codec<T = any> {
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): T
}

/** A codec bound to an event name (`emitter.messages[name]`). */
export interface MessageCodec<T = any> extends Codec<T> {
  /** The message's full name, or the registered name for a custom codec. */
  readonly name: string
  /** The schema message, absent for custom codecs. */
  readonly desc?: DescMessage
}

/**
 * A schema: `.proto` source text (string, or its UTF-8 bytes: a Node Buffer
 * is a Uint8Array), protoc-gen-es descriptors (a GenFile/DescFile, a
 * DescMessage or an array of them, a Registry), or nothing.
 */
export type SchemaSource = string | Uint8Array | DescFile | DescMessage | readonly DescMessage[] | Registry | null | undefined

/** What load() needs of a web ReadableStream (structural: core assumes no DOM types). */
export interface ChunkStream {
  getReader(): { read(): Promise<{ done: boolean; value?: unknown }>; releaseLock(): void }
}

/** A schema's text as a stream of chunks (a Node Readable, a web ReadableStream). */
export type SchemaChunks = AsyncIterable<Uint8Array | string> | ChunkStream

/**
 * Turns `.proto` text into its file's descriptor. The entries that accept
 * text schemas hand theirs over (useProtoParser); hyperemitter/lean does not,
 * so apps built on generated descriptors never ship the parser.
 */
export type ProtoParser = (text: string) => DescFile
let protoParser: ProtoParser | undefined

/** Accept `.proto` text schemas from now on, parsed by `parser` (undefined: refuse them again). */
export function useProtoParser(parser: ProtoParser | undefined): void {
  protoParser = parser
}

function parseText(text: string): DescFile {
  if (protoParser === undefined) {
    throw schemaError('this entry (hyperemitter/lean) takes generated descriptors only: import "hyperemitter" for .proto text schemas')
  }
  return protoParser(text)
}

/** The built-in event the emitter announces itself with. */
export const EVENT_PEER = 'hyperemitter.v1.EventPeer'
const EVENT_PEER_SHORT = 'EventPeer'

interface Entry {
  /** The canonical name events are stored under. */
  canonical: string
  codec: MessageCodec
}

/** Holds the codecs; the emitter exposes `codecs.messages` as `emitter.messages`. */
export class Codecs {
  /**
   * Codecs by full name, and by short name when unambiguous. A null-prototype
   * object, so a message named "constructor" or "toString" is just a key.
   */
  readonly messages: Record<string, MessageCodec> = Object.create(null)

  private readonly schema = new Map<string, MessageCodec>()
  /** short name -> full name, or null when several messages share it. */
  private readonly shorts = new Map<string, string | null>()
  private readonly custom = new Map<string, MessageCodec>()
  /** Positive lookups only: names without a codec (any string a peer sends) must not grow it. */
  private readonly cache = new Map<string, Entry>()
  /** What encodeShared() returns, reused. */
  private readonly shared: Encoded = { bytes: new Uint8Array(0), length: 0 }

  /** Codecs for `descs` (plus the built-in EventPeer); throws INVALID_SCHEMA on conflicting names. */
  constructor(descs: Iterable<DescMessage> = []) {
    this.add(EventPeerSchema)
    for (const desc of descs) {
      if (desc.typeName === EVENT_PEER) {
        if (desc === EventPeerSchema) continue
        throw schemaError(`${EVENT_PEER} is built in and cannot be redefined`)
      }
      if (desc.typeName === EVENT_PEER_SHORT) {
        throw schemaError(`a message named ${EVENT_PEER_SHORT} needs a package: the name is taken by the built-in ${EVENT_PEER}`)
      }
      const existing = this.schema.get(desc.typeName)
      if (existing) {
        if (existing.desc === desc) continue
        throw schemaError(`message ${desc.typeName} is defined twice`)
      }
      this.add(desc)
    }
    this.rebuild()
  }

  /**
   * Codecs from any schema source, including a stream of .proto text chunks
   * (concatenated, then parsed). Rejects with INVALID_SCHEMA.
   */
  static async load(source: SchemaSource | SchemaChunks): Promise<Codecs> {
    if (isChunks(source)) return Codecs.fromSync(await readChunks(source))
    return Codecs.fromSync(source)
  }

  /**
   * Codecs from a non-stream schema source, synchronously. Throws
   * INVALID_SCHEMA (bad or unsupported source), INVALID_ARGUMENT (a stream:
   * use load()).
   */
  static fromSync(source: SchemaSource): Codecs {
    if (source === undefined || source === null) return new Codecs()
    if (typeof source === 'string') return new Codecs(messagesOfFile(parseText(source)))
    if (source instanceof Uint8Array) {
      let text: string
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(source)
      } catch (err) {
        throw schemaError('the .proto bytes are not valid UTF-8', err)
      }
      return new Codecs(messagesOfFile(parseText(text)))
    }
    if (isChunks(source)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'hyperemitter: a schema stream loads asynchronously: use Codecs.load()')
    }
    if (Array.isArray(source)) {
      for (const d of source) {
        if (!isDesc(d, 'message')) throw schemaError(`an array schema must hold message descriptors, got ${describeSource(d)}`)
      }
      return new Codecs(source as readonly DescMessage[])
    }
    if (isDesc(source, 'file')) return new Codecs(messagesOfFile(source as DescFile))
    if (isDesc(source, 'message')) return new Codecs([source as DescMessage])
    if (isDesc(source, 'registry')) {
      const out: DescMessage[] = []
      for (const t of source as Registry) if (t.kind === 'message' && !isMapEntry(t)) out.push(t)
      return new Codecs(out)
    }
    throw schemaError(`unsupported schema source: ${describeSource(source)}`)
  }

  /** The codec for `name`. Throws UNKNOWN_EVENT or AMBIGUOUS_EVENT. */
  resolve(name: string): MessageCodec {
    const e = this.lookup(name)
    if (!e) throw unknownEvent(name)
    return e.codec
  }

  /** True when `name` resolves to a codec (false for ambiguous short names). */
  has(name: string): boolean {
    try {
      return this.lookup(name) !== null
    } catch {
      return false
    }
  }

  /**
   * The name events are stored under: a schema message's full name (given
   * its full or unambiguous short name), otherwise `name` itself. Throws
   * AMBIGUOUS_EVENT.
   */
  canonicalName(name: string): string {
    return this.lookup(name)?.canonical ?? name
  }

  /**
   * Use `codec` (any `{ encode, decode }`) for `name`, replacing any previous
   * codec, schema message included. Throws INVALID_ARGUMENT (bad name or
   * codec, or the built-in EventPeer).
   */
  register(name: string, codec: Codec): void {
    if (typeof name !== 'string' || name === '') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'hyperemitter: a codec needs a non-empty string name')
    }
    if (codec === null || (typeof codec !== 'object' && typeof codec !== 'function') || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `hyperemitter: the codec for ${name} must have encode and decode methods`, { details: { event: name } })
    }
    let canonical = name
    try {
      const e = this.lookup(name)
      if (e) canonical = e.canonical
    } catch {
      // An ambiguous short name: the custom codec claims it as its own name.
    }
    if (canonical === EVENT_PEER) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `hyperemitter: ${EVENT_PEER} is built in: its codec cannot be replaced`, { details: { event: name } })
    }
    this.custom.set(canonical, customCodec(canonical, codec))
    this.rebuild()
  }

  /**
   * Validate and encode `value` as event `name`. A name without a codec takes
   * only a Uint8Array, passed through. Throws UNKNOWN_EVENT, AMBIGUOUS_EVENT,
   * INVALID_ARGUMENT (not an object), MISSING_FIELD, UNKNOWN_FIELD,
   * INVALID_FIELD (details: { event, field }), CODEC_FAILED (a custom codec
   * threw or returned something other than a Uint8Array).
   */
  encode(name: string, value: unknown): Uint8Array {
    const e = this.lookup(name)
    if (e) {
      const desc = e.codec.desc
      return desc ? encodeSchema(desc, value, name) : e.codec.encode(value)
    }
    if (value instanceof Uint8Array) return value
    throw unknownEvent(name)
  }

  /**
   * encode(), into a buffer the next encode may reuse: for a caller that
   * copies the bytes on at once. Same checks and errors as encode().
   */
  encodeShared(name: string, value: unknown): Encoded {
    const desc = this.lookup(name)?.codec.desc
    if (desc) return encodeSchema(desc, value, name, this.shared)
    const bytes = this.encode(name, value)
    this.shared.bytes = bytes
    this.shared.length = bytes.length
    return this.shared
  }

  /**
   * Decode event `name`'s payload: a plain object for schema messages,
   * whatever a custom codec returns, the bytes themselves for names without
   * a codec. Throws CODEC_FAILED (malformed bytes, custom codec threw),
   * AMBIGUOUS_EVENT.
   */
  decode(name: string, bytes: Uint8Array): unknown {
    const e = this.lookup(name)
    return e ? e.codec.decode(bytes) : bytes
  }

  private add(desc: DescMessage): void {
    try {
      // Built now, so a descriptor problem surfaces at load, not at first emit.
      planFor(desc)
    } catch (err) {
      throw schemaError(`message ${desc.typeName}: ${(err as Error)?.message ?? String(err)}`, err)
    }
    this.schema.set(desc.typeName, schemaCodec(desc))
    const short = desc.name
    if (desc.typeName !== EVENT_PEER && short === EVENT_PEER_SHORT) return
    const seen = this.shorts.get(short)
    this.shorts.set(short, seen === undefined ? desc.typeName : seen === desc.typeName ? seen : null)
  }

  /** null: no codec. Throws AMBIGUOUS_EVENT. */
  private lookup(name: string): Entry | null {
    const hit = this.cache.get(name)
    if (hit !== undefined) return hit
    let entry: Entry | null = null
    const custom = this.custom.get(name)
    if (custom) {
      entry = { canonical: name, codec: custom }
    } else {
      let full: string | null | undefined = this.schema.has(name) ? name : this.shorts.get(name)
      if (full === null) {
        const candidates = [...this.schema.keys()].filter((n) => n.endsWith(`.${name}`))
        throw new HyperEmitterError(
          ErrorCodes.AMBIGUOUS_EVENT,
          `hyperemitter: event name ${name} is ambiguous: use one of ${candidates.join(', ')}`,
          { details: { event: name, candidates } },
        )
      }
      if (full !== undefined) entry = { canonical: full, codec: this.custom.get(full) ?? this.schema.get(full)! }
    }
    if (entry) this.cache.set(name, entry)
    return entry
  }

  private rebuild(): void {
    this.cache.clear()
    const m = this.messages
    for (const k of Object.keys(m)) delete m[k]
    // Short names first: a full name that equals another message's short
    // name wins, as it does in lookup().
    for (const [short, full] of this.shorts) if (full !== null) m[short] = this.custom.get(full) ?? this.schema.get(full)!
    for (const [full, codec] of this.schema) m[full] = this.custom.get(full) ?? codec
    for (const [name, codec] of this.custom) m[name] = codec
  }
}

function schemaCodec(desc: DescMessage): MessageCodec {
  const name = desc.typeName
  return {
    name,
    desc,
    encode: (value: unknown) => encodeSchema(desc, value, name),
    decode: (bytes: Uint8Array) => decodeSchema(desc, bytes, name),
  }
}

/** A schema message's bytes: a copy of its own, or with `into`, the encoder's shared buffer (see encodePlainShared). */
function encodeSchema(desc: DescMessage, value: unknown, event: string): Uint8Array
function encodeSchema(desc: DescMessage, value: unknown, event: string, into: Encoded): Encoded
function encodeSchema(desc: DescMessage, value: unknown, event: string, into?: Encoded): Uint8Array | Encoded {
  try {
    return into === undefined ? encodePlain(planFor(desc), value, event) : encodePlainShared(planFor(desc), value, event, into)
  } catch (err) {
    if (isHyperEmitterError(err)) throw err
    // Only user code (a getter on the value) throws anything else.
    throw new HyperEmitterError(ErrorCodes.CODEC_FAILED, `hyperemitter: encoding event ${event} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err, details: { event } })
  }
}

function decodeSchema(desc: DescMessage, bytes: Uint8Array, event: string): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `hyperemitter: decoding event ${event} needs a Uint8Array`, { details: { event } })
  }
  try {
    return decodePlain(planFor(desc), bytes)
  } catch (err) {
    throw new HyperEmitterError(ErrorCodes.CODEC_FAILED, `hyperemitter: cannot decode event ${event} as ${desc.typeName}: ${(err as Error)?.message ?? String(err)}`, { cause: err, details: { event } })
  }
}

function customCodec(name: string, codec: Codec): MessageCodec {
  return {
    name,
    encode(value: unknown): Uint8Array {
      let out: unknown
      try {
        out = codec.encode(value)
      } catch (err) {
        throw new HyperEmitterError(ErrorCodes.CODEC_FAILED, `hyperemitter: the codec for ${name} failed to encode: ${(err as Error)?.message ?? String(err)}`, { cause: err, details: { event: name } })
      }
      if (!(out instanceof Uint8Array)) {
        throw new HyperEmitterError(ErrorCodes.CODEC_FAILED, `hyperemitter: the codec for ${name} returned ${describeSource(out)}, not a Uint8Array`, { details: { event: name } })
      }
      return out
    },
    decode(bytes: Uint8Array): unknown {
      try {
        return codec.decode(bytes)
      } catch (err) {
        throw new HyperEmitterError(ErrorCodes.CODEC_FAILED, `hyperemitter: the codec for ${name} failed to decode: ${(err as Error)?.message ?? String(err)}`, { cause: err, details: { event: name } })
      }
    },
  }
}

/** Every message of a file, nested ones included, map entries excluded. */
function messagesOfFile(file: DescFile): DescMessage[] {
  const out: DescMessage[] = []
  const walk = (m: DescMessage): void => {
    if (isMapEntry(m)) return
    out.push(m)
    for (const n of m.nestedMessages) walk(n)
  }
  for (const m of file.messages) walk(m)
  return out
}

function isMapEntry(m: DescMessage): boolean {
  return m.proto.options?.mapEntry === true
}

function isDesc(v: unknown, kind: string): boolean {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === kind
}

function isChunks(v: unknown): v is SchemaChunks {
  return typeof v === 'object' && v !== null && (
    typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' ||
    typeof (v as ChunkStream).getReader === 'function'
  )
}

async function readChunks(source: SchemaChunks): Promise<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true })
  let text = ''
  const add = (chunk: unknown): void => {
    if (typeof chunk === 'string') text += chunk
    else if (chunk instanceof Uint8Array) text += decoder.decode(chunk, { stream: true })
    else throw schemaError(`a schema stream must yield strings or Uint8Arrays, got ${describeSource(chunk)}`)
  }
  try {
    if (typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
      for await (const chunk of source as AsyncIterable<unknown>) add(chunk)
    } else {
      // Not every browser makes a ReadableStream async-iterable yet.
      const reader = (source as ChunkStream).getReader()
      try {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          add(value)
        }
      } finally {
        reader.releaseLock()
      }
    }
    text += decoder.decode()
  } catch (err) {
    if (isHyperEmitterError(err)) throw err
    throw schemaError(`reading the schema stream failed: ${(err as Error)?.message ?? String(err)}`, err)
  }
  return text
}

function schemaError(message: string, cause?: unknown): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_SCHEMA, `hyperemitter: invalid schema: ${message}`, { cause })
}

function unknownEvent(name: string): HyperEmitterError {
  return new HyperEmitterError(
    ErrorCodes.UNKNOWN_EVENT,
    `hyperemitter: unknown event ${name}: no schema message and no codec (register one, or emit a Uint8Array)`,
    { details: { event: name } },
  )
}

function describeSource(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'object') return (v as { kind?: unknown }).kind ? `a ${String((v as { kind: unknown }).kind)} descriptor` : 'an object'
  return typeof v
}

// ---------------------------------------------------------------------------
// Types for the emitter's typed API, derived from protoc-gen-es schemas.
// They describe what decode() returns: .proto field names, oneofs
// flattened, no $typeName. The .proto names are recovered from protobuf-es'
// camelCase property names, which is exact for lower_snake_case field names
// (the protobuf style guide) and single words; a field declared in
// camelCase in its .proto would be typed under a snake_case name.

type Simplify<T> = { [K in keyof T]: T[K] } & {}
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never
type IsUnion<T> = [T] extends [UnionToIntersection<T>] ? false : true

/** protobuf-es localName -> .proto field name ("userName" -> "user_name", "constructor$" -> "constructor"). */
export type ProtoFieldName<K extends string> = K extends `${infer N}$` ? N : SnakeCase<K>
type SnakeCase<S extends string> = S extends `${infer C}${infer R}`
  ? `${C extends Lowercase<C> ? C : `_${Lowercase<C>}`}${SnakeCase<R>}`
  : S

type IsOneof<V> = [V] extends [{ case: string | undefined }] ? ([V] extends [Message] ? false : true) : false

type PlainValue<V> = V extends Uint8Array
  ? Uint8Array
  : V extends Message
    ? PlainMessage<V>
    : V extends readonly (infer E)[]
      ? PlainValue<E>[]
      : V extends object
        ? { [key: string]: PlainValue<V[keyof V]> }
        : V

type FlatOneof<O> = {
  [C in O as C extends { case: infer N extends string } ? ProtoFieldName<N> : never]?: C extends { value: infer V } ? PlainValue<V> : never
}
// -? so that optional keys ($unknown) add no `undefined` to the union.
type OneofParts<M> = { [K in keyof M]-?: IsOneof<M[K]> extends true ? FlatOneof<M[K]> : never }[keyof M]

type PlainMessage<M> = Simplify<
  {
    [K in keyof M as K extends `$${string}` ? never : IsOneof<M[K]> extends true ? never : ProtoFieldName<K & string>]: PlainValue<M[K]>
  } & UnionToIntersection<OneofParts<M>>
>

/** What decode() returns for a protoc-gen-es message schema: its shape with .proto names, oneofs flattened, no $typeName. */
export type PlainOf<Desc extends DescMessage> = PlainMessage<MessageShape<Desc>>

/** What encode() accepts for a plain shape `T`: every field optional, 64-bit integers also as number or string. */
export type PlainInput<T> = T extends Uint8Array
  ? T
  : T extends bigint
    ? bigint | number | string
    : T extends readonly (infer E)[]
      ? PlainInput<E>[]
      : T extends object
        ? { [K in keyof T]?: PlainInput<T[K]> }
        : T

/** What encode() accepts for a protoc-gen-es message schema. */
export type InputOf<Desc extends DescMessage> = PlainInput<PlainOf<Desc>>

type TypeNameOf<D> = D extends DescMessage ? (MessageShape<D> extends { $typeName: infer N extends string } ? N : never) : never
type ShortName<N extends string> = N extends `${string}.${infer R}` ? ShortName<R> : N
type FullNamesWithShort<S extends string, All> = All extends unknown ? (ShortName<TypeNameOf<All>> extends S ? TypeNameOf<All> : never) : never
/** The short key for D, or never when it equals its full name, a full name, "EventPeer", or another message's short name. */
type ShortKey<D, All> = TypeNameOf<D> extends infer N extends string
  ? ShortName<N> extends infer S extends string
    ? [S] extends [N]
      ? never
      : [S] extends [TypeNameOf<All> | typeof EVENT_PEER_SHORT]
        ? never
        : IsUnion<FullNamesWithShort<S, All>> extends true
          ? never
          : S
    : never
  : never

type BuiltinEvents = {
  'hyperemitter.v1.EventPeer': PlainOf<typeof EventPeerSchema>
  EventPeer: PlainOf<typeof EventPeerSchema>
}

/**
 * Event name -> plain payload for the given protoc-gen-es message schemas:
 * each under its full name, and under its short name unless that is
 * ambiguous; plus the built-in EventPeer.
 */
export type EventMapOf<T extends readonly DescMessage[]> = Simplify<
  { [D in T[number] as TypeNameOf<D>]: PlainOf<D> } & { [D in T[number] as ShortKey<D, T[number]>]: PlainOf<D> } & BuiltinEvents
>
