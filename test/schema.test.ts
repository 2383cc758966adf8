import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { inspect } from 'node:util'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  create,
  createFileRegistry,
  createRegistry,
  fromBinary,
  toBinary,
  toJson,
  type DescMessage,
} from '@bufbuild/protobuf'
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt'
import { Codecs, EVENT_PEER } from '../src/core/codec/schema.js'
import { parseProto, registryFromProto } from '../src/core/codec/proto-parse.js'
import { ErrorCodes, HyperEmitterError, type ErrorCode } from '../src/core/errors.js'
import { AddressSchema, EventPeerSchema, file_hyperemitter_v1_peer } from '../src/gen/hyperemitter/v1/peer_pb.js'
import { file_hyperemitter_v1_log, EventSchema } from '../src/gen/hyperemitter/v1/log_pb.js'
import { HandshakeSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'

const fixture = (p: string) => fileURLToPath(new URL(`./fixtures/${p}`, import.meta.url))
const SEED = readFileSync(fixture('messages.proto')) // a Buffer, as the seed passed it
const FIXTURES = readFileSync(fixture('proto/test/v1/fixtures.proto'), 'utf8')
const LEGACY = readFileSync(fixture('proto/test/v1/legacy.proto'), 'utf8')

/** Run `fn`, expecting a HyperEmitterError with `code`; returns it. */
function thrown(code: ErrorCode, fn: () => unknown): HyperEmitterError {
  let err: unknown
  try {
    fn()
  } catch (e) {
    err = e
  }
  expect(err, `expected ${code}`).toBeInstanceOf(HyperEmitterError)
  expect((err as HyperEmitterError).code).toBe(code)
  return err as HyperEmitterError
}

async function rejected(code: ErrorCode, p: Promise<unknown>): Promise<HyperEmitterError> {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err, `expected ${code}`).toBeInstanceOf(HyperEmitterError)
  expect((err as HyperEmitterError).code).toBe(code)
  return err as HyperEmitterError
}

/** No `$typeName` / `$unknown` anywhere in a decoded value; only own enumerable data properties. */
function assertPlain(v: unknown, path = 'value'): void {
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return
  if (Array.isArray(v)) return v.forEach((x, i) => assertPlain(x, `${path}[${i}]`))
  for (const k of Reflect.ownKeys(v)) {
    expect(k === '$typeName' || k === '$unknown', `${path} has key ${String(k)}`).toBe(false)
    const d = Object.getOwnPropertyDescriptor(v, k)!
    expect(d.enumerable && 'value' in d, `${path}.${String(k)} is an own enumerable data property`).toBe(true)
    assertPlain(d.value, `${path}.${String(k)}`)
  }
}

describe('the seed fixture (proto2, no syntax line)', () => {
  const codecs = Codecs.fromSync(SEED)

  it('decodes Hello exactly as the seed printed it', () => {
    const bytes = codecs.encode('Hello', { from: 'Matteo' })
    const hello = codecs.decode('Hello', bytes)
    expect(Object.keys(hello as object)).toEqual(['from', 'message'])
    expect(hello).toEqual({ from: 'Matteo', message: '' })
    expect(inspect(hello)).toBe("Hello { from: 'Matteo', message: '' }")
    expect((hello as object).constructor.name).toBe('Hello')
  })

  it('prints the built-in EventPeer like the seed (nested messages are plain objects)', () => {
    const peer = codecs.decode('EventPeer', codecs.encode('EventPeer', { id: '123', addresses: [{ ip: 'localhost', port: 1234 }] }))
    expect(inspect(peer, { breakLength: Infinity })).toBe("EventPeer { id: '123', addresses: [ { ip: 'localhost', port: 1234, url: '' } ] }")
    expect(Object.getPrototypeOf((peer as { addresses: object[] }).addresses[0])).toBe(Object.prototype)
    assertPlain(peer)
  })

  it('knows the seed events by name and keeps their names canonical', () => {
    expect(Object.keys(codecs.messages).sort()).toEqual(['EventPeer', 'Hello', 'hyperemitter.v1.EventPeer', 'userAdded', 'userRemoved'])
    for (const n of ['Hello', 'userAdded', 'userRemoved']) expect(codecs.canonicalName(n)).toBe(n)
    expect(codecs.canonicalName('EventPeer')).toBe(EVENT_PEER)
    expect(codecs.decode('userAdded', codecs.encode('userAdded', { id: 1, username: 'user' }))).toEqual({ id: 1, username: 'user' })
    expect(codecs.decode('userRemoved', codecs.encode('userRemoved', { id: 1 }))).toEqual({ id: 1 })
    const hello = codecs.messages.Hello
    expect(hello.name).toBe('Hello')
    // The seed detached encode/decode from the message object.
    const { encode, decode } = hello
    expect(decode(encode({ from: 'a', message: 'b' }))).toEqual({ from: 'a', message: 'b' })
  })

  it('enforces proto2 required fields', () => {
    const err = thrown(ErrorCodes.MISSING_FIELD, () => codecs.encode('Hello', { message: 'no sender' }))
    expect(err.details).toEqual({ event: 'Hello', field: 'from' })
    thrown(ErrorCodes.MISSING_FIELD, () => codecs.encode('Hello', { from: null }))
  })
})

describe('runtime .proto parsing matches protoc (buf)', () => {
  // buf ships inside the @bufbuild/buf dev dependency and builds offline.
  const bin = fileURLToPath(new URL('../node_modules/.bin/buf', import.meta.url))
  const set = fromBinary(FileDescriptorSetSchema, execFileSync(bin, [
    'build', fixture(''),
    // Only these files: others share test/fixtures and may clash (two Hellos).
    '--path', fixture('messages.proto'), '--path', fixture('proto/test/v1'),
    '-o', '-',
  ]))

  /** protocol-buffers-schema loses how fields and nested types interleave: compare nested types by name. */
  function normalized(file: FileDescriptorProto): unknown {
    const json = toJson(FileDescriptorProtoSchema, file) as Record<string, unknown>
    delete json.name
    delete json.sourceCodeInfo
    type Msg = { name: string; nestedType?: Msg[] }
    const sortNested = (m: Msg): void => {
      m.nestedType?.sort((a, b) => a.name.localeCompare(b.name))
      m.nestedType?.forEach(sortNested)
    }
    ;(json.messageType as Msg[] | undefined)?.forEach(sortNested)
    return json
  }

  it.each([
    ['messages.proto', SEED.toString('utf8')],
    ['proto/test/v1/fixtures.proto', FIXTURES],
    ['proto/test/v1/legacy.proto', LEGACY],
  ])('%s', (name, text) => {
    const want = set.file.find((f) => f.name === name)!
    expect(want).toBeDefined()
    expect(normalized(parseProto(text).file)).toEqual(normalized(want))
  })
})

describe('schema sources', () => {
  const hello = { from: 'Matteo', message: 'hi' }
  const check = (c: Codecs, name = 'test.v1.Hello') => expect(c.decode(name, c.encode(name, hello))).toEqual(hello)

  it('takes .proto text as a string and as bytes', () => {
    check(Codecs.fromSync(FIXTURES))
    check(Codecs.fromSync(new TextEncoder().encode(FIXTURES)))
    check(Codecs.fromSync(Buffer.from(FIXTURES)))
  })

  it('takes a stream of chunks, split anywhere (even inside a UTF-8 character)', async () => {
    const text = `${FIXTURES}\n// caf\u00e9 \u{1f600}\n`
    const bytes = new TextEncoder().encode(text)
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7)
    }
    check(await Codecs.load(chunks()))
    check(await Codecs.load(Readable.from([Buffer.from(text.slice(0, 100)), text.slice(100)])))
    const web = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(bytes.subarray(0, 10))
        ctl.enqueue(bytes.subarray(10))
        ctl.close()
      },
    })
    // Hide async iteration: some browsers' ReadableStreams lack it.
    check(await Codecs.load({ getReader: () => web.getReader() } as unknown as ReadableStream))
    check(await Codecs.load(FIXTURES))
  })

  it('refuses streams synchronously, bad chunks and failing streams', async () => {
    async function* chunks() {
      yield FIXTURES
    }
    thrown(ErrorCodes.INVALID_ARGUMENT, () => Codecs.fromSync(chunks() as never))
    async function* numbers() {
      yield 42
    }
    await rejected(ErrorCodes.INVALID_SCHEMA, Codecs.load(numbers() as never))
    async function* failing() {
      yield 'message A {'
      throw new Error('disk on fire')
    }
    const err = await rejected(ErrorCodes.INVALID_SCHEMA, Codecs.load(failing()))
    expect((err.cause as Error).message).toBe('disk on fire')
    await rejected(ErrorCodes.INVALID_SCHEMA, Codecs.load(Readable.from([Buffer.from([0xff, 0xfe])])))
  })

  it('takes generated descriptors: a GenFile, messages, registries', () => {
    const peer = { id: 'x', addresses: [{ ip: 'h', port: 1, url: '' }] }
    const fromFile = Codecs.fromSync(file_hyperemitter_v1_log)
    expect(fromFile.canonicalName('Event')).toBe('hyperemitter.v1.Event')
    expect(fromFile.decode('Event', fromFile.encode('Event', { name: 'n', payload: new Uint8Array([1]) }))).toEqual({ name: 'n', payload: new Uint8Array([1]) })
    expect(fromFile.has('Node')).toBe(true)

    const fromArray = Codecs.fromSync([AddressSchema, HandshakeSchema])
    expect(fromArray.decode('Address', fromArray.encode('Address', { ip: 'a', port: 2 }))).toEqual({ ip: 'a', port: 2, url: '' })
    expect(fromArray.has('hyperemitter.v1.Handshake')).toBe(true)
    expect(fromArray.has('Frame')).toBe(false) // only the messages given
    expect(Codecs.fromSync(EventSchema).has('Event')).toBe(true)

    const reg = createRegistry(file_hyperemitter_v1_peer, file_hyperemitter_v1_log)
    const fromRegistry = Codecs.fromSync(reg)
    expect(fromRegistry.decode('EventPeer', fromRegistry.encode('EventPeer', peer))).toEqual(peer)
    expect(fromRegistry.has('KnownPeer') && fromRegistry.has('Node')).toBe(true)
    const fileReg = registryFromProto(FIXTURES).registry
    check(Codecs.fromSync(fileReg))
    // The same built-in descriptor given again is no conflict.
    expect(Codecs.fromSync([EventPeerSchema]).resolve('EventPeer').desc).toBe(EventPeerSchema)
  })

  it('takes nothing: only the built-in EventPeer, codecs come later', async () => {
    for (const c of [Codecs.fromSync(undefined), Codecs.fromSync(null), await Codecs.load(undefined), new Codecs()]) {
      expect(Object.keys(c.messages).sort()).toEqual(['EventPeer', EVENT_PEER])
    }
  })

  it('refuses what is not a schema', () => {
    for (const bad of [42, {}, { kind: 'enum' }, [1, 2], [AddressSchema, 'x'], true]) {
      thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync(bad as never))
    }
    thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync(new Uint8Array([0xc3, 0x28])))
  })
})

describe('.proto parsing errors', () => {
  it('wraps parser errors as INVALID_SCHEMA with the cause', () => {
    const err = thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync('message Broken { string a = ; }'))
    expect(err.cause).toBeInstanceOf(Error)
    expect(err.message).toContain((err.cause as Error).message)
  })

  it('names an import it cannot resolve; well-known types resolve', () => {
    const err = thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync('syntax = "proto3"; import "other/thing.proto"; message A { int32 x = 1; }'))
    expect(err.message).toContain('other/thing.proto')
    const c = Codecs.fromSync('syntax = "proto3"; import "google/protobuf/duration.proto"; message T { google.protobuf.Duration d = 1; }')
    expect(c.decode('T', c.encode('T', { d: { seconds: 3n, nanos: 5 } }))).toEqual({ d: { seconds: 3n, nanos: 5 } })
  })

  it.each([
    ['an unknown type', 'message A { optional Nope x = 1; }', 'Nope'],
    ['a duplicate field number', 'message A { optional int32 x = 1; optional int32 y = 1; }', 'used twice'],
    ['a reserved field number', 'message A { optional int32 x = 19001; }', '19001'],
    ['required in proto3', 'syntax = "proto3"; message A { required int32 x = 1; }', 'proto3'],
    ['defaults in proto3', 'syntax = "proto3"; message A { int32 x = 1 [default = 2]; }', 'proto3'],
    ['a non-zero first proto3 enum value', 'syntax = "proto3"; enum E { A = 1; }', 'zero'],
    ['a bad default', 'message A { optional int32 x = 1 [default = "nope"]; }', 'default'],
    ['a bad string escape', 'message A { optional string x = 1 [default = "\\q"]; }', 'default'],
    ['an out-of-range default', 'message A { optional int32 x = 1 [default = 3000000000]; }', 'default'],
    ['an enum default that is no value', 'enum E { A = 1; } message M { optional E e = 1 [default = B]; }', ''],
    ['a float map key', 'syntax = "proto3"; message A { map<double, int32> m = 1; }', 'map key'],
    ['a type defined twice', 'message A {} message A {}', 'twice'],
    ['edition files', 'edition = "2023"; message A {}', ''],
    // The parser alone would loop forever on these two.
    ['an unterminated reserved statement', 'message A { reserved 1 }', 'reserved'],
    ['an unterminated reserved enum value', 'enum E { A = 0; reserved 1, 2', 'reserved'],
  ])('refuses %s', (_what, text, mention) => {
    const err = thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync(text))
    expect(err.message).toContain(mention)
  })
})

describe('proto2 features', () => {
  const c = Codecs.fromSync(LEGACY)
  const S = 'test.legacy.Settings'

  it('fills declared defaults (and zero values) on decode', () => {
    const s = c.decode(S, c.encode('Settings', { name: 'n' })) as Record<string, unknown>
    expect(s).toEqual({
      name: 'n',
      retries: 3,
      greeting: 'hi "there"\n',
      level: 2,
      enabled: true,
      ratio: -1.5,
      big: -16n,
      blob: new Uint8Array([0x61, 1, 0x62]),
      plain_list: [],
      packed_list: [],
      nan_value: NaN,
      id: '0',
    })
    expect('owner' in s).toBe(false)
    // Set fields are written even when equal to the default (explicit presence).
    expect(c.encode(S, { name: 'n', retries: 3 }).length).toBeGreaterThan(c.encode(S, { name: 'n' }).length)
    expect(c.decode(S, c.encode(S, { name: 'n', retries: 0 }))).toMatchObject({ retries: 0 })
  })

  it('checks required fields of nested messages, with the path', () => {
    const err = thrown(ErrorCodes.MISSING_FIELD, () => c.encode('Settings', { name: 'n', owner: { label: 'x' } }))
    expect(err.details).toEqual({ event: 'Settings', field: 'owner.id' })
    expect(c.decode(S, c.encode(S, { name: 'n', owner: { id: 'o' } }))).toMatchObject({ owner: { id: 'o', label: '' } })
  })

  it('packs repeated fields only when asked', () => {
    const plain = c.encode(S, { name: '', plain_list: [1, 2] })
    const packed = c.encode(S, { name: '', packed_list: [1, 2] })
    expect([...plain.subarray(2)]).toEqual([9 << 3, 1, 9 << 3, 2])
    expect([...packed.subarray(2)]).toEqual([(10 << 3) | 2, 2, 1, 2])
    // Decoders take either form.
    const swapped = new Uint8Array([10, 0, (9 << 3) | 2, 2, 1, 2, 10 << 3, 7])
    expect(c.decode(S, swapped)).toMatchObject({ plain_list: [1, 2], packed_list: [7] })
  })

  it('takes enums by number or name; closed enums refuse other numbers', () => {
    expect(c.decode(S, c.encode(S, { name: '', level: 'LOW' }))).toMatchObject({ level: 1 })
    expect(c.decode(S, c.encode(S, { name: '', level: 2 }))).toMatchObject({ level: 2 })
    const err = thrown(ErrorCodes.INVALID_FIELD, () => c.encode(S, { name: '', level: 7 }))
    expect(err.details).toEqual({ event: S, field: 'level' })
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(S, { name: '', level: 'MEDIUM' }))
    // An unknown number on the wire is dropped, leaving the default.
    expect(c.decode(S, new Uint8Array([10, 0, 4 << 3, 9]))).toMatchObject({ level: 2 })
  })

  it('honours jstype = JS_STRING and takes 64-bit input as bigint, number or string', () => {
    for (const id of [18446744073709551615n, '18446744073709551615']) {
      expect(c.decode(S, c.encode(S, { name: '', id }))).toMatchObject({ id: '18446744073709551615' })
    }
    expect(c.decode(S, c.encode(S, { name: '', id: 5, big: '-9223372036854775808' }))).toMatchObject({ id: '5', big: -9223372036854775808n })
  })
})

describe('proto3, packages, nesting, oneofs, maps', () => {
  const c = Codecs.fromSync(FIXTURES)
  const K = 'test.v1.Kitchen'

  it('writes nothing for zero values, and fills every field on decode', () => {
    expect(c.encode(K, {}).length).toBe(0)
    expect(c.encode(K, { a_string: '', an_int64: 0, colors: [], counts: {} }).length).toBe(0)
    const k = c.decode(K, new Uint8Array()) as Record<string, unknown>
    expect(Object.keys(k)).toEqual([
      'a_double', 'a_float', 'an_int32', 'an_int64', 'a_uint32', 'a_uint64', 'a_sint32', 'a_sint64',
      'a_fixed32', 'a_fixed64', 'a_sfixed32', 'a_sfixed64', 'a_bool', 'a_string', 'a_bytes', 'color',
      'ints', 'strings', 'inners', 'colors', 'counts', 'by_id', 'maybe', 'big_list', 'flags',
    ])
    expect(k).toMatchObject({ a_double: 0, an_int64: 0n, a_bool: false, a_string: '', a_bytes: new Uint8Array(), color: 0, ints: [], counts: {}, maybe: 0 })
    assertPlain(k)
  })

  it('writes a proto3 optional field set to zero (explicit presence)', () => {
    expect([...c.encode(K, { maybe: 0 })]).toEqual([...varint(27 << 3), 0])
  })

  it('flattens oneofs: the set member only; more than one is refused', () => {
    const k = c.decode(K, c.encode(K, { nested: { name: 'n' } })) as Record<string, unknown>
    expect(k.nested).toEqual({ name: 'n', mood: 0 })
    expect('text' in k || 'number' in k).toBe(false)
    expect(c.decode(K, c.encode(K, { number: 0 }))).toMatchObject({ number: 0 })
    const err = thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { text: 'a', number: 2 }))
    expect(err.details).toEqual({ event: K, field: 'number' })
    // protobuf-es' { case, value } form is accepted too.
    expect(c.decode(K, c.encode(K, { choice: { case: 'text', value: 'hi' } }))).toMatchObject({ text: 'hi' })
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { choice: { case: 'nope', value: 1 } }))
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { choice: { case: 'text', value: 'a' }, text: 'b' }))
    // On the wire the last member wins.
    const both = new Uint8Array([...c.encode(K, { text: 'a' }), ...c.encode(K, { number: 3 })])
    const last = c.decode(K, both) as Record<string, unknown>
    expect(last.number).toBe(3)
    expect('text' in last).toBe(false)
  })

  it('encodes maps from objects or Maps, keys typed by the schema', () => {
    const input = {
      counts: { a: 1n, b: '2' },
      by_id: { 7: { name: 'seven' }, '-1': { mood: 'MOOD_HAPPY' } },
      flags: new Map<unknown, unknown>([[true, 'COLOR_RED'], ['false', 2]]),
    }
    const k = c.decode(K, c.encode(K, input))
    expect(k).toMatchObject({
      counts: { a: 1n, b: 2n },
      by_id: { 7: { name: 'seven', mood: 0 }, '-1': { name: '', mood: 1 } },
      flags: { true: 1, false: 2 },
    })
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { by_id: { x: {} } }))
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { by_id: { 1: 5 } }))
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { flags: { maybe: 1 } }))
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { counts: { a: null } }))
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { counts: [1] }))
  })

  it('treats names that clash with Object.prototype as plain names', () => {
    const p = Codecs.fromSync('message toString { optional int32 a = 1; } message M { optional toString t = 1; optional string __proto__ = 2; }')
    expect(p.decode('M', p.encode('M', { t: { a: 1 } }))).toEqual({ t: { a: 1 }, ['__proto__']: '' })
    const m = p.decode('M', p.encode('M', JSON.parse('{"__proto__": "x"}'))) as object
    expect(Object.getOwnPropertyDescriptor(m, '__proto__')?.value).toBe('x')
    expect(Object.getPrototypeOf(m)?.constructor.name).toBe('M')
    // A plain object's inherited __proto__ is not the field.
    expect(p.encode('M', {})).toEqual(new Uint8Array())
    expect(p.messages.toString.name).toBe('toString')
    thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync('import "constructor"; message A {}'))
  })

  it('keeps a "__proto__" map key as data', () => {
    const counts = JSON.parse('{"__proto__": 5}') as Record<string, unknown>
    const k = c.decode(K, c.encode(K, { counts })) as { counts: Record<string, unknown> }
    expect(Object.getPrototypeOf(k.counts)).toBe(Object.prototype)
    expect(Object.keys(k.counts)).toEqual(['__proto__'])
    expect(Object.getOwnPropertyDescriptor(k.counts, '__proto__')?.value).toBe(5n)
  })

  it('takes snake_case and camelCase input, answers with .proto names', () => {
    const a = c.encode(K, { a_double: 1.5, an_int32: -3, by_id: {} })
    const b = c.encode(K, { aDouble: 1.5, anInt32: -3, byId: {} })
    expect(b).toEqual(a)
    expect(c.decode(K, b)).toMatchObject({ a_double: 1.5, an_int32: -3 })
    const err = thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, { a_double: 1, aDouble: 2 }))
    expect(err.details).toEqual({ event: K, field: 'a_double' })
  })

  it('resolves short and full names; nested messages count; ambiguous short names are refused', () => {
    expect(c.canonicalName('Hello')).toBe('test.v1.Hello')
    expect(c.canonicalName('test.v1.Hello')).toBe('test.v1.Hello')
    expect(c.canonicalName('Inner')).toBe('test.v1.Kitchen.Inner')
    expect(c.resolve('Kitchen')).toBe(c.resolve(K))
    expect(c.messages.Hello).toBe(c.messages['test.v1.Hello'])
    expect(c.messages.Hello.name).toBe('test.v1.Hello')
    expect(c.messages.Item).toBeUndefined()
    expect(c.messages['test.v1.Item']).toBeDefined()
    expect(c.messages['test.v1.Other.Item']).toBeDefined()
    expect(c.messages.KitchenCountsEntry ?? c.messages.CountsEntry).toBeUndefined() // map entries are no events
    expect(c.has('Item')).toBe(false)
    const errs = [
      thrown(ErrorCodes.AMBIGUOUS_EVENT, () => c.resolve('Item')),
      thrown(ErrorCodes.AMBIGUOUS_EVENT, () => c.encode('Item', { id: 'x' })),
      thrown(ErrorCodes.AMBIGUOUS_EVENT, () => c.canonicalName('Item')),
      thrown(ErrorCodes.AMBIGUOUS_EVENT, () => c.decode('Item', new Uint8Array())),
    ]
    expect(errs[0].details).toEqual({ event: 'Item', candidates: ['test.v1.Item', 'test.v1.Other.Item'] })
    expect(new Set(errs).size).toBe(errs.length) // never one error object twice
    expect(c.decode('test.v1.Other', c.encode('Other', { item: { n: 1 }, top: { id: 't' } }))).toEqual({ item: { n: 1 }, top: { id: 't' } })
  })

  it('prefers a full name over an equal short name', () => {
    const both = Codecs.fromSync([...registryFromProto('syntax = "proto3"; message Hello { string a = 1; }', 'a.proto').file.messages, ...registryFromProto(FIXTURES).file.messages])
    expect(both.canonicalName('Hello')).toBe('Hello')
    expect(both.messages.Hello.name).toBe('Hello')
    expect(both.canonicalName('test.v1.Hello')).toBe('test.v1.Hello')
  })
})

describe('descriptors that .proto text here cannot express', () => {
  // protocol-buffers-schema has no groups, but generated descriptors (proto2
  // groups, editions' DELIMITED encoding) can carry them.
  const file = create(FileDescriptorProtoSchema, {
    name: 'group.proto',
    package: 'g',
    messageType: [
      {
        name: 'Outer',
        field: [
          { name: 'id', number: 1, label: 1, type: 5, jsonName: 'id' },
          { name: 'inner', number: 2, label: 1, type: 10, typeName: '.g.Outer.Inner', jsonName: 'inner' },
          { name: 'items', number: 3, label: 3, type: 10, typeName: '.g.Outer.Items', jsonName: 'items' },
        ],
        nestedType: [
          { name: 'Inner', field: [{ name: 'x', number: 4, label: 1, type: 9, jsonName: 'x' }] },
          { name: 'Items', field: [{ name: 'y', number: 5, label: 1, type: 5, jsonName: 'y' }] },
        ],
      },
    ],
  })
  const registry = createFileRegistry(file, () => undefined)
  const desc = registry.getMessage('g.Outer')!
  const c = Codecs.fromSync(registry)

  it('encodes and decodes groups as protobuf-es does', () => {
    expect(desc.field.inner.fieldKind === 'message' && desc.field.inner.delimitedEncoding).toBe(true)
    const plain = { id: 1, inner: { x: 'in' }, items: [{ y: 1 }, { y: 2 }] }
    const bytes = c.encode('Outer', plain)
    expect(bytes).toEqual(toBinary(desc, create(desc, plain)))
    expect(c.decode('g.Outer', bytes)).toEqual(plain)
    expect(c.decode('Outer', toBinary(desc, create(desc, { items: [{}] })))).toEqual({ id: 0, items: [{ y: 0 }] })
    // An unknown group is skipped whole; a group left open is malformed.
    const unknownGroup = [...varint((9 << 3) | 3), ...varint(1 << 3), 5, ...varint((9 << 3) | 4)]
    expect(c.decode('Outer', new Uint8Array([...unknownGroup, ...bytes]))).toEqual(plain)
    thrown(ErrorCodes.CODEC_FAILED, () => c.decode('Outer', new Uint8Array([...varint((2 << 3) | 3), ...varint((4 << 3) | 2), 0])))
  })
})

describe('the built-in EventPeer', () => {
  it('may not be redefined, and keeps its short name', () => {
    thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync('message EventPeer { optional string id = 1; }'))
    thrown(ErrorCodes.INVALID_SCHEMA, () => Codecs.fromSync('syntax = "proto3"; package hyperemitter.v1; message EventPeer { string id = 1; }'))
    const c = Codecs.fromSync('syntax = "proto3"; package other; message EventPeer { int32 n = 1; }')
    expect(c.canonicalName('EventPeer')).toBe(EVENT_PEER)
    expect(c.decode('other.EventPeer', c.encode('other.EventPeer', { n: 4 }))).toEqual({ n: 4 })
    thrown(ErrorCodes.INVALID_ARGUMENT, () => c.register('EventPeer', { encode: () => new Uint8Array(), decode: () => ({}) }))
  })
})

describe('validation errors', () => {
  const c = Codecs.fromSync(FIXTURES)
  const K = 'test.v1.Kitchen'

  it.each<[string, Record<string, unknown>, string]>([
    ['a string for an int32', { an_int32: '5' }, 'an_int32'],
    ['an int32 out of range', { an_int32: 2 ** 31 }, 'an_int32'],
    ['a negative uint32', { a_uint32: -1 }, 'a_uint32'],
    ['a uint32 out of range', { a_fixed32: 2 ** 32 }, 'a_fixed32'],
    ['a non-integer', { a_sint32: 1.5 }, 'a_sint32'],
    ['NaN for an int', { an_int32: NaN }, 'an_int32'],
    ['an int64 out of range', { an_int64: 2n ** 63n }, 'an_int64'],
    ['a negative uint64', { a_uint64: -1n }, 'a_uint64'],
    ['a non-numeric int64 string', { an_int64: '12abc' }, 'an_int64'],
    ['a fractional int64', { a_sfixed64: 0.5 }, 'a_sfixed64'],
    ['a float out of range', { a_float: 1e39 }, 'a_float'],
    ['a number for a bool', { a_bool: 1 }, 'a_bool'],
    ['a number for a string', { a_string: 5 }, 'a_string'],
    ['an object for a scalar', { a_double: {} }, 'a_double'],
    ['an array for bytes', { a_bytes: [1, 2] }, 'a_bytes'],
    ['a string for a message', { inner: 'x' }, 'inner'],
    ['a non-array for a repeated field', { ints: 5 }, 'ints'],
    ['a bad element', { ints: [1, 'x'] }, 'ints[1]'],
    ['a null element', { strings: ['a', null] }, 'strings[1]'],
    ['an unknown enum name', { color: 'COLOR_BLUE' }, 'color'],
    ['a bool for an enum', { colors: [true] }, 'colors[0]'],
    ['a bad nested field', { inners: [{}, { name: 1 }] }, 'inners[1].name'],
    ['a bad map value', { by_id: { 3: { mood: 'SAD' } } }, 'by_id[3].mood'],
    ['a deep bad field', { child: { child: { inner: { name: false } } } }, 'child.child.inner.name'],
  ])('INVALID_FIELD for %s', (_what, value, field) => {
    const err = thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, value))
    expect(err.details).toEqual({ event: K, field })
    expect(err.message).toContain(field)
  })

  it('UNKNOWN_FIELD for properties the message lacks, at any depth', () => {
    expect(thrown(ErrorCodes.UNKNOWN_FIELD, () => c.encode('Hello', { from: 'a', form: 'b' })).details).toEqual({ event: 'Hello', field: 'form' })
    expect(thrown(ErrorCodes.UNKNOWN_FIELD, () => c.encode(K, { inner: { name: 'a', nmae: 'b' } })).details).toEqual({ event: K, field: 'inner.nmae' })
    // Even when the unknown property is undefined: a typo should not pass silently.
    thrown(ErrorCodes.UNKNOWN_FIELD, () => c.encode('Hello', { from: 'a', typo: undefined }))
    // Known fields set to undefined or null are just unset.
    expect(c.encode('Hello', { from: 'a', message: undefined })).toEqual(c.encode('Hello', { from: 'a', message: null }))
  })

  it('INVALID_ARGUMENT when the event value is not an object', () => {
    for (const v of [null, undefined, 'hi', 5, [], new Uint8Array(2)]) thrown(ErrorCodes.INVALID_ARGUMENT, () => c.encode('Hello', v))
  })

  it('INVALID_FIELD for a protobuf-es message of another type; its own type is accepted', () => {
    const c = Codecs.fromSync([AddressSchema, ...registryFromProto(FIXTURES).file.messages])
    expect(c.decode('Address', c.encode('Address', create(AddressSchema, { ip: 'a', port: 1 })))).toEqual({ ip: 'a', port: 1, url: '' })
    expect(thrown(ErrorCodes.INVALID_FIELD, () => c.encode('Hello', create(AddressSchema, {}))).details).toEqual({ event: 'Hello', field: '$typeName' })
  })

  it('refuses cyclic input instead of overflowing the stack', () => {
    const loop: Record<string, unknown> = {}
    loop.child = loop
    thrown(ErrorCodes.INVALID_FIELD, () => c.encode(K, loop))
    // and stays usable
    expect(c.decode('Hello', c.encode('Hello', { from: 'x' }))).toEqual({ from: 'x', message: '' })
  })

  it('CODEC_FAILED for malformed bytes; unknown fields are skipped', () => {
    const good = c.encode(K, { a_string: 'hello', inner: { name: 'n' } })
    for (let cut = 1; cut < good.length; cut++) {
      if (cut === 7) continue // tag, length, 'hello': a complete message of its own
      thrown(ErrorCodes.CODEC_FAILED, () => c.decode(K, good.subarray(0, cut)))
    }
    thrown(ErrorCodes.CODEC_FAILED, () => c.decode(K, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])))
    thrown(ErrorCodes.CODEC_FAILED, () => c.decode(K, new Uint8Array(varint((99 << 3) | 7))))
    const err = thrown(ErrorCodes.CODEC_FAILED, () => c.decode('Hello', new Uint8Array([10, 5, 1])))
    expect(err.cause).toBeInstanceOf(Error)
    const unknown = new Uint8Array([...varint((99 << 3) | 2), 2, 1, 2, ...varint(98 << 3), 0x80, 1, ...varint((97 << 3) | 5), 1, 2, 3, 4, ...c.encode('Hello', { from: 'f' })])
    expect(c.decode('Hello', unknown)).toEqual({ from: 'f', message: '' })
    // A hostile nesting depth (Kitchen.child in Kitchen.child...) is refused too.
    let deep: number[] = []
    for (let i = 0; i < 150; i++) deep = [...varint((28 << 3) | 2), ...varint(deep.length), ...deep]
    const err2 = thrown(ErrorCodes.CODEC_FAILED, () => c.decode(K, new Uint8Array(deep)))
    expect((err2.cause as Error).message).toContain('nested')
  })

  it('decodes bytes as copies, not views of the input', () => {
    const bytes = c.encode(K, { a_bytes: new Uint8Array([1, 2, 3]) })
    const k = c.decode(K, bytes) as { a_bytes: Uint8Array }
    bytes.fill(0)
    expect([...k.a_bytes]).toEqual([1, 2, 3])
  })
})

describe('custom codecs and raw bytes', () => {
  const json = {
    encode: (v: unknown) => new TextEncoder().encode(JSON.stringify(v)),
    decode: (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b)) as unknown,
  }

  it('registers name + codec for a name without schema message', () => {
    const c = Codecs.fromSync(SEED)
    thrown(ErrorCodes.UNKNOWN_EVENT, () => c.encode('custom', { a: 1 }))
    c.register('custom', json)
    expect(c.has('custom')).toBe(true)
    expect(c.canonicalName('custom')).toBe('custom')
    expect(c.decode('custom', c.encode('custom', { a: [1, 'x'] }))).toEqual({ a: [1, 'x'] })
    expect(c.messages.custom.name).toBe('custom')
    expect(c.resolve('custom')).toBe(c.messages.custom)
    // Replaced by a later registration.
    c.register('custom', { encode: () => new Uint8Array([9]), decode: () => 'second' })
    expect(c.decode('custom', new Uint8Array())).toBe('second')
  })

  it('lets a custom codec win over a schema message, under its full name', () => {
    const c = Codecs.fromSync(FIXTURES)
    c.register('Hello', json)
    expect(c.canonicalName('Hello')).toBe('test.v1.Hello')
    expect(c.messages.Hello).toBe(c.messages['test.v1.Hello'])
    expect(c.messages.Hello.name).toBe('test.v1.Hello')
    expect(c.messages.Hello.desc).toBeUndefined()
    const bytes = c.encode('test.v1.Hello', { free: 'form' }) // no validation: the codec decides
    expect(new TextDecoder().decode(bytes)).toBe('{"free":"form"}')
    expect(c.decode('Hello', bytes)).toEqual({ free: 'form' })
    // An ambiguous short name becomes a name of its own.
    c.register('Item', json)
    expect(c.canonicalName('Item')).toBe('Item')
    expect(c.canonicalName('test.v1.Item')).toBe('test.v1.Item')
  })

  it('refuses codecs without encode and decode', () => {
    const c = new Codecs()
    for (const bad of [null, undefined, 5, {}, { encode: () => new Uint8Array() }, { encode: 1, decode: 2 }]) {
      thrown(ErrorCodes.INVALID_ARGUMENT, () => c.register('x', bad as never))
    }
    thrown(ErrorCodes.INVALID_ARGUMENT, () => c.register('', json))
  })

  it('CODEC_FAILED when a custom codec throws or returns no bytes', () => {
    const c = new Codecs()
    const boom = new Error('boom')
    c.register('bad', { encode: () => { throw boom }, decode: () => { throw boom } })
    c.register('text', { encode: () => 'not bytes' as never, decode: (b) => b })
    const e1 = thrown(ErrorCodes.CODEC_FAILED, () => c.encode('bad', {}))
    const e2 = thrown(ErrorCodes.CODEC_FAILED, () => c.decode('bad', new Uint8Array()))
    expect(e1.cause).toBe(boom)
    expect(e2.cause).toBe(boom)
    expect(e1).not.toBe(e2)
    expect(e1.details).toEqual({ event: 'bad' })
    thrown(ErrorCodes.CODEC_FAILED, () => c.encode('text', {}))
  })

  it('passes raw bytes through for names without a codec', () => {
    const c = new Codecs()
    const raw = new Uint8Array([1, 2, 3])
    expect(c.encode('blob', raw)).toBe(raw)
    expect(c.decode('blob', raw)).toBe(raw)
    expect(c.canonicalName('blob')).toBe('blob')
    expect(c.has('blob')).toBe(false)
    const err = thrown(ErrorCodes.UNKNOWN_EVENT, () => c.encode('blob', { a: 1 }))
    expect(err.details).toEqual({ event: 'blob' })
    thrown(ErrorCodes.UNKNOWN_EVENT, () => c.resolve('blob'))
  })
})

describe('round trips (fast-check)', () => {
  const c = Codecs.fromSync(FIXTURES)
  const desc = registryFromProto(FIXTURES).registry.getMessage('test.v1.Kitchen')!
  // The codecs parsed their own copy of the file: compare against protobuf-es on that one.
  const mine = c.resolve('test.v1.Kitchen').desc!

  const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n })
  const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })
  const str = fc.string({ unit: 'grapheme', maxLength: 150 })
  const key = str.filter((k) => k !== '__proto__')
  const inner = fc.record({ name: str, mood: fc.constantFrom(0, 1) }, { requiredKeys: [] })
  const scalars = {
    a_double: fc.double(),
    a_float: fc.float(),
    an_int32: fc.integer(),
    an_int64: i64,
    a_uint32: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    a_uint64: u64,
    a_sint32: fc.integer(),
    a_sint64: i64,
    a_fixed32: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    a_fixed64: u64,
    a_sfixed32: fc.integer(),
    a_sfixed64: i64,
    a_bool: fc.boolean(),
    a_string: str,
    a_bytes: fc.uint8Array({ maxLength: 300 }),
    color: fc.constantFrom(0, 1, 2, 99), // proto3 enums are open
    inner,
    ints: fc.array(fc.integer()),
    strings: fc.array(str, { maxLength: 5 }),
    inners: fc.array(inner, { maxLength: 3 }),
    colors: fc.array(fc.constantFrom(0, 1, 2, -5)),
    counts: fc.dictionary(key, i64, { maxKeys: 4 }),
    by_id: fc.dictionary(fc.integer().map(String), inner, { maxKeys: 4 }),
    maybe: fc.integer(),
    big_list: fc.array(i64, { maxLength: 4 }),
    flags: fc.dictionary(fc.constantFrom('true', 'false'), fc.constantFrom(0, 1, 2)),
    at: fc.record({ seconds: i64, nanos: fc.integer({ min: 0, max: 999_999_999 }) }),
  }
  const oneof = fc.oneof(
    fc.constant({}),
    fc.record({ text: str }),
    fc.record({ nested: inner }),
    fc.record({ number: fc.integer() }),
  )
  const leaf = fc.tuple(fc.record(scalars, { requiredKeys: [] }), oneof).map(([a, b]) => ({ ...a, ...b }))
  const kitchen = fc.tuple(leaf, fc.option(leaf, { nil: undefined })).map(([k, child]) => (child ? { ...k, child } : k))

  /** What decode must return for `plain`: every field, defaults filled. */
  function expected(d: DescMessage, plain: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const f of d.fields) {
      const v = plain[f.name]
      if (f.fieldKind === 'message') {
        if (v !== undefined) out[f.name] = expected(f.message, v as Record<string, unknown>)
      } else if (f.fieldKind === 'list') {
        out[f.name] = ((v as unknown[]) ?? []).map((x) => (f.listKind === 'message' ? expected(f.message, x as Record<string, unknown>) : x))
      } else if (f.fieldKind === 'map') {
        out[f.name] = Object.fromEntries(Object.entries((v as Record<string, unknown>) ?? {}).map(([k, x]) => [k, f.mapKind === 'message' ? expected(f.message, x as Record<string, unknown>) : x]))
      } else if (f.oneof) {
        if (v !== undefined) out[f.name] = v
      } else {
        out[f.name] = v ?? (f.fieldKind === 'enum' ? 0 : zero(f.scalar))
      }
    }
    return out
  }
  function zero(t: number): unknown {
    if (t === 9) return ''
    if (t === 8) return false
    if (t === 12) return new Uint8Array()
    if ([3, 4, 6, 16, 18].includes(t)) return 0n
    return 0
  }
  /** The same value as a protobuf-es message: localNames, oneof ADTs. */
  function toMessage(d: DescMessage, plain: Record<string, unknown>): unknown {
    const init: Record<string, unknown> = {}
    for (const f of d.fields) {
      let v = plain[f.name]
      if (v === undefined) continue
      if (f.fieldKind === 'message') v = toMessage(f.message, v as Record<string, unknown>)
      if (f.fieldKind === 'list' && f.listKind === 'message') v = (v as Record<string, unknown>[]).map((x) => toMessage(f.message, x))
      if (f.fieldKind === 'map' && f.mapKind === 'message') {
        v = Object.fromEntries(Object.entries(v as Record<string, Record<string, unknown>>).map(([k, x]) => [k, toMessage(f.message, x)]))
      }
      if (f.oneof) init[f.oneof.localName] = { case: f.localName, value: v }
      else init[f.localName] = v
    }
    return create(d, init)
  }

  it('decode(encode(x)) is x with defaults filled, and the bytes are protobuf-es\'s', () => {
    fc.assert(
      fc.property(kitchen, (plain) => {
        const bytes = c.encode('Kitchen', plain)
        const back = c.decode('Kitchen', bytes)
        expect(back).toEqual(expected(mine, plain))
        assertPlain(back)
        const msg = toMessage(desc, plain) as never
        expect(bytes).toEqual(toBinary(desc, msg))
        // protobuf-es reads them back and writes the same bytes again.
        expect(toBinary(desc, fromBinary(desc, bytes))).toEqual(bytes)
        // Decoded output is valid input and comes back unchanged (its bytes
        // may differ: unset optional fields are now set to their defaults).
        expect(c.decode('Kitchen', c.encode('Kitchen', back))).toEqual(back)
      }),
      { numRuns: 300 },
    )
  })

  it('decodes whatever protobuf-es writes, unpacked repeated fields included', () => {
    // A proto2 copy of Kitchen's lists: unpacked on the wire, packed in proto3.
    const p2 = registryFromProto('package test.v1; message Lists { repeated int32 ints = 18; repeated sint64 big_list = 29; repeated int32 colors = 21; }', 'l.proto').registry.getMessage('test.v1.Lists')!
    fc.assert(
      fc.property(fc.array(fc.integer()), fc.array(i64), fc.array(fc.constantFrom(0, 1, 2)), (ints, big, colors) => {
        const bytes = toBinary(p2, create(p2, { ints, bigList: big, colors }))
        expect(c.decode('Kitchen', bytes)).toMatchObject({ ints, big_list: big, colors })
      }),
    )
  })

  it('encodes 64-bit numbers the same whether given as number, string or bigint', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (n) => {
        for (const f of ['an_int64', 'a_sint64', 'a_sfixed64']) {
          const want = c.encode('Kitchen', { [f]: BigInt(n) })
          expect(c.encode('Kitchen', { [f]: n })).toEqual(want)
          expect(c.encode('Kitchen', { [f]: String(n) })).toEqual(want)
        }
        if (n >= 0) {
          for (const f of ['a_uint64', 'a_fixed64']) expect(c.encode('Kitchen', { [f]: n })).toEqual(c.encode('Kitchen', { [f]: BigInt(n) }))
        }
      }),
    )
  })

  it('decodes non-ASCII and long strings like TextDecoder, invalid UTF-8 included', () => {
    const utf8 = fc.oneof(fc.uint8Array({ maxLength: 200 }), str.map((s) => new TextEncoder().encode(s)))
    fc.assert(
      fc.property(utf8, (raw) => {
        const bytes = new Uint8Array([(14 << 3) | 2, ...varint(raw.length), ...raw])
        const want = new TextDecoder('utf-8', { ignoreBOM: true }).decode(raw)
        expect((c.decode('Kitchen', bytes) as { a_string: string }).a_string).toBe(want)
      }),
    )
  })
})

function varint(n: number): number[] {
  const out: number[] = []
  while (n > 127) {
    out.push((n & 127) | 128)
    n >>>= 7
  }
  out.push(n)
  return out
}

describe('speed (reported; bench/schema.ts measures it properly)', () => {
  it('encode+decode of a Hello-sized message does not collapse', () => {
    const c = Codecs.fromSync(SEED)
    const v = { from: 'Matteo', message: 'hello world' }
    for (let i = 0; i < 20_000; i++) c.decode('Hello', c.encode('Hello', v))
    const n = 100_000
    const t0 = performance.now()
    for (let i = 0; i < n; i++) c.decode('Hello', c.encode('Hello', v))
    const perSec = Math.round(n / ((performance.now() - t0) / 1000))
    console.log(`schema: Hello encode+decode ${perSec}/s`)
    // Under vitest's transform this runs at a fraction of a bundle's speed,
    // and CI machines are shared: the bound only catches a collapse (say,
    // reflection creeping back into the per-call path).
    expect(perSec).toBeGreaterThan(30_000)
  })
})

it('FileRegistry from parsed text resolves well-known imports', () => {
  const { registry } = registryFromProto(FIXTURES)
  expect(registry.getMessage('google.protobuf.Timestamp')).toBeDefined()
  expect(createFileRegistry(registry).getFile('hyperemitter-schema.proto')).toBeDefined()
})
