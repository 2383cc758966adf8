/// <reference path="./protocol-buffers-schema.d.ts" />
/**
 * `.proto` source text -> FileDescriptorProto -> protobuf-es registry, at run
 * time and without protoc or a file system, so a schema given as text works
 * the same in browsers and in Node.
 *
 * protocol-buffers-schema does the parsing. It leaves three gaps that this
 * module fills: it assumes proto3 when a file has no `syntax` line (protoc
 * assumes proto2), it does not record proto3 `optional`, and it keeps field
 * types as written, without saying whether a name is a message or an enum.
 */
// parse.js, not the package's index, which adds the unused stringify to every bundle.
import parseSchema, { type PbsEnum, type PbsField, type PbsMessage, type PbsSchema } from 'protocol-buffers-schema/parse.js'
import tokenize from 'protocol-buffers-schema/tokenize.js'
import { create, createFileRegistry, type DescFile, type DescMessage, type FileRegistry, type MessageInitShape } from '@bufbuild/protobuf'
import { protoCamelCase } from '@bufbuild/protobuf/reflect'
import {
  FileDescriptorProtoSchema,
  type DescriptorProtoSchema,
  type EnumDescriptorProtoSchema,
  type FieldDescriptorProtoSchema,
  type FileDescriptorProto,
  file_google_protobuf_any,
  file_google_protobuf_api,
  file_google_protobuf_descriptor,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_source_context,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_type,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt'
import { ErrorCodes, HyperEmitterError } from '../errors.js'

/** The file name given to a schema parsed from text (it has no path of its own). */
export const DEFAULT_PROTO_FILE_NAME = 'hyperemitter-schema.proto'

// Only the well-known types protobuf-es already ships can be imported: every
// other import would need a file system (or a second source) to resolve.
// Maps, not object literals: a type named "toString" must not find a prototype method.
const WELL_KNOWN = new Map<string, DescFile>(Object.entries({
  'google/protobuf/any.proto': file_google_protobuf_any,
  'google/protobuf/api.proto': file_google_protobuf_api,
  'google/protobuf/descriptor.proto': file_google_protobuf_descriptor,
  'google/protobuf/duration.proto': file_google_protobuf_duration,
  'google/protobuf/empty.proto': file_google_protobuf_empty,
  'google/protobuf/field_mask.proto': file_google_protobuf_field_mask,
  'google/protobuf/source_context.proto': file_google_protobuf_source_context,
  'google/protobuf/struct.proto': file_google_protobuf_struct,
  'google/protobuf/timestamp.proto': file_google_protobuf_timestamp,
  'google/protobuf/type.proto': file_google_protobuf_type,
  'google/protobuf/wrappers.proto': file_google_protobuf_wrappers,
}))

// FieldDescriptorProto.Type numbers (descriptor.proto).
const SCALAR_TYPES = new Map<string, number>(Object.entries({
  double: 1, float: 2, int64: 3, uint64: 4, int32: 5, fixed64: 6, fixed32: 7, bool: 8,
  string: 9, bytes: 12, uint32: 13, sfixed32: 15, sfixed64: 16, sint32: 17, sint64: 18,
}))
const TYPE_MESSAGE = 11
const TYPE_ENUM = 14
const LABEL_OPTIONAL = 1
const LABEL_REQUIRED = 2
const LABEL_REPEATED = 3
const MAP_KEY_TYPES = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'bool', 'string'])
const PACKABLE = new Set(['double', 'float', 'int64', 'uint64', 'int32', 'fixed64', 'fixed32', 'bool', 'uint32', 'sfixed32', 'sfixed64', 'sint32', 'sint64'])
const JSTYPE = new Map<string, number>(Object.entries({ JS_NORMAL: 0, JS_STRING: 1, JS_NUMBER: 2 }))
const MAX_FIELD_NUMBER = 0x1fffffff

type Kind = 'message' | 'enum'
type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>
type MessageInit = MessageInitShape<typeof DescriptorProtoSchema>
type EnumInit = MessageInitShape<typeof EnumDescriptorProtoSchema>

/** The parsed file plus the descriptors of the well-known files it imports. */
export interface ParsedProto {
  file: FileDescriptorProto
  imports: DescFile[]
}

function schemaError(message: string, cause?: unknown): HyperEmitterError {
  return new HyperEmitterError(ErrorCodes.INVALID_SCHEMA, `hyperemitter: invalid schema: ${message}`, { cause })
}

/**
 * Parse `.proto` source text into a FileDescriptorProto (proto2 when the file
 * has no `syntax` line). Throws INVALID_SCHEMA (the parser's error as `cause`)
 * on syntax errors, unresolvable type names, imports other than
 * google/protobuf well-known types, and rule violations protoc would reject.
 */
export function parseProto(source: string, fileName: string = DEFAULT_PROTO_FILE_NAME): ParsedProto {
  let parsed: PbsSchema
  let tokens: string[]
  try {
    tokens = tokenize(source)
    checkReservedTerminated(tokens)
    parsed = parseSchema(source)
  } catch (err) {
    throw schemaError((err as Error)?.message ?? String(err), err)
  }
  const syntax = tokens[0] === 'syntax' ? parsed.syntax : 2
  return new Builder(parsed, syntax, syntax === 3 ? proto3Optionals(tokens) : new Set(), fileName).build()
}

/**
 * Parse `.proto` source text and build a protobuf-es file registry from it.
 * Resolves to the registry and the file's descriptor; throws INVALID_SCHEMA.
 */
export function registryFromProto(source: string, fileName: string = DEFAULT_PROTO_FILE_NAME): { registry: FileRegistry; file: DescFile } {
  const { file } = parseProto(source, fileName)
  let registry: FileRegistry
  try {
    registry = createFileRegistry(file, (name) => WELL_KNOWN.get(name))
  } catch (err) {
    throw schemaError((err as Error)?.message ?? String(err), err)
  }
  const desc = registry.getFile(fileName)
  if (!desc) throw schemaError(`file ${fileName} missing from its own registry`)
  return { registry, file: desc }
}

/** The parser the entries that accept text schemas give to useProtoParser(). */
export function parseProtoFile(source: string): DescFile {
  return registryFromProto(source).file
}

/**
 * protocol-buffers-schema skips a `reserved` statement by shifting tokens
 * until a `;`, forever when there is none (`message A { reserved 1 }` hangs
 * the page). Refuse such input before it gets there.
 */
function checkReservedTerminated(tokens: string[]): void {
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] !== 'reserved') continue
    let j = i + 1
    while (j < tokens.length && tokens[j] !== ';' && tokens[j] !== '}' && tokens[j] !== '{') j++
    if (tokens[j] !== ';') throw new Error(`reserved statement without a closing ";" (after "${tokens.slice(i, i + 4).join(' ')}")`)
    i = j
  }
}

/**
 * protocol-buffers-schema reads `optional` and an absent label alike. In
 * proto3 the keyword means explicit presence, so find the fields written with
 * it: "Outer.Inner/field" for each `optional <type> <name> =` inside a message.
 */
function proto3Optionals(tokens: string[]): Set<string> {
  const found = new Set<string>()
  const scopes: (string | null)[] = []
  let pending: string | null = null
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]
    if (t === '{') {
      scopes.push(pending)
      pending = null
    } else if (t === '}') {
      scopes.pop()
    } else if (t === 'message' && tokens[i + 2] === '{') {
      pending = tokens[i + 1]
    } else if (t === 'optional' && tokens[i + 3] === '=') {
      const path = scopes.filter((s): s is string => s !== null).join('.')
      found.add(`${path}/${tokens[i + 2]}`)
    }
  }
  return found
}

class Builder {
  private readonly types = new Map<string, Kind>()
  /** Enum full name -> its value names, to check enum defaults. */
  private readonly enumValues = new Map<string, Set<string>>()
  private readonly pkg: string

  constructor(
    private readonly schema: PbsSchema,
    private readonly syntax: 2 | 3,
    private readonly optionals: Set<string>,
    private readonly fileName: string,
  ) {
    this.pkg = schema.package ?? ''
  }

  build(): ParsedProto {
    const imports: DescFile[] = []
    for (const name of this.schema.imports) {
      const file = WELL_KNOWN.get(name)
      if (!file) {
        throw schemaError(`import "${name}" cannot be resolved: only google/protobuf well-known types can be imported; put all other messages in this one file`)
      }
      imports.push(file)
      for (const m of file.messages) this.declareImported(m)
      for (const e of file.enums) this.declareEnum(e.typeName, e.values.map((v) => v.name))
    }
    const prefix = this.pkg
    for (const e of this.schema.enums) this.declareEnum(join(prefix, e.name), Object.keys(e.values), true)
    for (const m of this.schema.messages) this.declareMessage(m, prefix)

    const init: MessageInitShape<typeof FileDescriptorProtoSchema> = {
      name: this.fileName,
      ...(this.pkg === '' ? {} : { package: this.pkg }),
      dependency: this.schema.imports.slice(),
      // proto2 files leave `syntax` unset, as protoc does.
      ...(this.syntax === 3 ? { syntax: 'proto3' } : {}),
      messageType: this.schema.messages.map((m) => this.message(m, prefix)),
      enumType: this.schema.enums.map((e) => this.enumType(e, join(prefix, e.name))),
    }
    return { file: create(FileDescriptorProtoSchema, init), imports }
  }

  private declare(full: string, kind: Kind): void {
    if (this.types.has(full)) throw schemaError(`"${full}" is defined twice`)
    this.types.set(full, kind)
  }

  private declareEnum(full: string, values: string[], local = false): void {
    if (local) this.declare(full, 'enum')
    else this.types.set(full, 'enum')
    this.enumValues.set(full, new Set(values))
  }

  private declareImported(m: DescMessage): void {
    this.types.set(m.typeName, 'message')
    for (const e of m.nestedEnums) this.declareEnum(e.typeName, e.values.map((v) => v.name))
    for (const n of m.nestedMessages) this.declareImported(n)
  }

  private declareMessage(m: PbsMessage, scope: string): void {
    const full = join(scope, m.name)
    this.declare(full, 'message')
    for (const e of m.enums) this.declareEnum(join(full, e.name), Object.keys(e.values), true)
    for (const n of m.messages) this.declareMessage(n, full)
  }

  /** Protobuf scoping: innermost scope outward; a leading dot means absolute. */
  private resolve(name: string, scope: string, where: string): { full: string; kind: Kind } {
    if (name.startsWith('.')) {
      const kind = this.types.get(name.slice(1))
      if (kind) return { full: name.slice(1), kind }
    } else {
      let s = scope
      for (;;) {
        const full = join(s, name)
        const kind = this.types.get(full)
        if (kind) return { full, kind }
        if (s === '') break
        const dot = s.lastIndexOf('.')
        s = dot < 0 ? '' : s.slice(0, dot)
      }
    }
    throw schemaError(`${where}: unknown type "${name}"`)
  }

  private message(m: PbsMessage, scope: string): MessageInit {
    const full = join(scope, m.name)
    const fields: FieldInit[] = []
    const nested: MessageInit[] = m.messages.map((n) => this.message(n, full))
    const oneofs: string[] = []
    const numbers = new Set<number>()
    const names = new Set<string>()
    const synthetic: { field: FieldInit; name: string }[] = []

    for (const f of m.fields) {
      const where = `${full}.${f.name}`
      if (!Number.isInteger(f.tag) || f.tag < 1 || f.tag > MAX_FIELD_NUMBER || (f.tag >= 19000 && f.tag <= 19999)) {
        throw schemaError(`${where}: invalid field number ${f.tag}`)
      }
      if (numbers.has(f.tag)) throw schemaError(`${where}: field number ${f.tag} is used twice`)
      if (names.has(f.name)) throw schemaError(`${where}: field name is used twice`)
      numbers.add(f.tag)
      names.add(f.name)
      if (this.syntax === 3 && f.required) throw schemaError(`${where}: required fields are not allowed in proto3`)

      const field: FieldInit = {
        name: f.name,
        number: f.tag,
        jsonName: protoCamelCase(f.name),
        label: f.repeated || f.map ? LABEL_REPEATED : f.required ? LABEL_REQUIRED : LABEL_OPTIONAL,
      }
      if (f.map) {
        const entry = this.mapEntry(f, full, where)
        if (m.messages.some((n) => n.name === entry.name)) throw schemaError(`${where}: map entry type ${entry.name} clashes with a nested message`)
        nested.push(entry)
        field.type = TYPE_MESSAGE
        field.typeName = `.${join(full, entry.name!)}`
      } else {
        this.setType(field, f.type, full, where)
      }
      this.setOptions(field, f, where)
      if (f.oneof !== null) {
        let idx = oneofs.indexOf(f.oneof)
        if (idx < 0) idx = oneofs.push(f.oneof) - 1
        field.oneofIndex = idx
      } else if (this.syntax === 3 && !f.repeated && !f.map && this.optionals.has(`${relativeTo(full, this.pkg)}/${f.name}`)) {
        // protoc represents proto3 `optional` as a one-member "synthetic"
        // oneof, declared after every real oneof.
        field.proto3Optional = true
        synthetic.push({ field, name: `_${f.name}` })
      }
      fields.push(field)
    }
    for (const s of synthetic) {
      let name = s.name
      while (oneofs.includes(name) || names.has(name)) name = `X${name}`
      s.field.oneofIndex = oneofs.push(name) - 1
    }
    return {
      name: m.name,
      field: fields,
      nestedType: nested,
      enumType: m.enums.map((e) => this.enumType(e, join(full, e.name))),
      oneofDecl: oneofs.map((name) => ({ name })),
    }
  }

  private mapEntry(f: PbsField, scope: string, where: string): MessageInit {
    const map = f.map!
    if (!MAP_KEY_TYPES.has(map.from)) throw schemaError(`${where}: invalid map key type "${map.from}"`)
    const key: FieldInit = { name: 'key', number: 1, jsonName: 'key', label: LABEL_OPTIONAL, type: SCALAR_TYPES.get(map.from) }
    const value: FieldInit = { name: 'value', number: 2, jsonName: 'value', label: LABEL_OPTIONAL }
    this.setType(value, map.to, scope, where)
    return { name: mapEntryName(f.name), field: [key, value], options: { mapEntry: true } }
  }

  private setType(field: FieldInit, type: string, scope: string, where: string): void {
    const scalar = SCALAR_TYPES.get(type)
    if (scalar !== undefined) {
      field.type = scalar
      return
    }
    const { full, kind } = this.resolve(type, scope, where)
    field.type = kind === 'message' ? TYPE_MESSAGE : TYPE_ENUM
    field.typeName = `.${full}`
  }

  private setOptions(field: FieldInit, f: PbsField, where: string): void {
    const opts = f.options
    const options: NonNullable<FieldInit['options']> = {}
    if (opts.packed !== undefined) {
      if (!f.repeated || !(PACKABLE.has(f.type) || field.type === TYPE_ENUM)) {
        throw schemaError(`${where}: [packed] applies only to repeated scalar numeric and enum fields`)
      }
      options.packed = String(opts.packed) === 'true'
    }
    if (opts.jstype !== undefined) {
      const js = JSTYPE.get(String(opts.jstype))
      if (js === undefined) throw schemaError(`${where}: invalid jstype ${String(opts.jstype)}`)
      options.jstype = js
    }
    if (opts.deprecated !== undefined) options.deprecated = String(opts.deprecated) === 'true'
    if (Object.keys(options).length > 0) field.options = options
    if (opts.default !== undefined) {
      if (this.syntax === 3) throw schemaError(`${where}: default values are not allowed in proto3`)
      if (f.repeated || f.map || field.type === TYPE_MESSAGE) throw schemaError(`${where}: only singular scalar and enum fields can have a default`)
      field.defaultValue = this.defaultValue(field, f, String(opts.default), where)
    }
  }

  /** FieldDescriptorProto.default_value: text, as protoc normalizes it. */
  private defaultValue(field: FieldInit, f: PbsField, raw: string, where: string): string {
    const bad = (): HyperEmitterError => schemaError(`${where}: invalid default value ${raw} for type ${f.type}`)
    switch (f.type) {
      case 'string':
        if (!isQuoted(raw)) throw bad()
        return new TextDecoder().decode(unescapeC(raw.slice(1, -1), bad))
      case 'bytes':
        if (!isQuoted(raw)) throw bad()
        // Bytes defaults stay C-escaped in the descriptor; check they parse.
        unescapeC(raw.slice(1, -1), bad)
        return raw.slice(1, -1)
      case 'bool':
        if (raw !== 'true' && raw !== 'false') throw bad()
        return raw
      case 'float':
      case 'double': {
        const lower = raw.toLowerCase()
        if (lower === 'inf' || lower === '-inf' || lower === 'nan') return lower
        const n = Number(raw)
        if (raw.trim() === '' || Number.isNaN(n)) throw bad()
        return String(n)
      }
    }
    if (field.type === TYPE_ENUM) {
      // protobuf-es would only notice on first use of the default.
      if (!this.enumValues.get(field.typeName!.slice(1))?.has(raw)) throw bad()
      return raw
    }
    // Integers: protoc accepts decimal, hex and octal and stores decimal.
    const m = /^(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(raw)
    if (!m) throw bad()
    const digits = m[2]
    const magnitude = /^0[0-7]+$/.test(digits) ? BigInt('0o' + digits.slice(1)) : BigInt(digits)
    const value = m[1] ? -magnitude : magnitude
    const [min, max] = INT_RANGES.get(f.type)!
    if (value < min || value > max) throw bad()
    return value.toString()
  }

  private enumType(e: PbsEnum, full: string): EnumInit {
    const values = Object.entries(e.values)
    if (values.length === 0) throw schemaError(`enum ${full} has no values`)
    if (this.syntax === 3 && values[0][1].value !== 0) throw schemaError(`enum ${full}: the first value must be zero in proto3`)
    const allowAlias = String(e.options.allow_alias) === 'true'
    const seen = new Set<number>()
    for (const [name, v] of values) {
      if (!Number.isInteger(v.value) || v.value < -0x80000000 || v.value > 0x7fffffff) throw schemaError(`${full}.${name}: invalid enum value`)
      if (seen.has(v.value) && !allowAlias) throw schemaError(`${full}.${name}: value ${v.value} is used twice (set option allow_alias = true)`)
      seen.add(v.value)
    }
    return {
      name: e.name,
      value: values.map(([name, v]) => ({ name, number: v.value })),
      ...(allowAlias ? { options: { allowAlias: true } } : {}),
    }
  }
}

const INT_RANGES = new Map<string, [bigint, bigint]>(Object.entries({
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
} satisfies Record<string, [bigint, bigint]>))

function join(scope: string, name: string): string {
  return scope === '' ? name : `${scope}.${name}`
}

function relativeTo(full: string, pkg: string): string {
  return pkg === '' ? full : full.slice(pkg.length + 1)
}

function isQuoted(raw: string): boolean {
  return raw.length >= 2 && (raw[0] === '"' || raw[0] === "'") && raw[raw.length - 1] === raw[0]
}

/** protoc's map entry type name: "my_map" -> "MyMapEntry". */
function mapEntryName(field: string): string {
  let out = ''
  let up = true
  for (const c of field) {
    if (c === '_') {
      up = true
    } else {
      out += up ? c.toUpperCase() : c
      up = false
    }
  }
  return out + 'Entry'
}

const SIMPLE_ESCAPES: Record<string, number> = {
  a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, "'": 39, '"': 34, '?': 63,
}

/** C-style escapes of a proto string literal -> the bytes they stand for. */
function unescapeC(text: string, bad: () => Error): Uint8Array {
  const out: number[] = []
  const utf8 = new TextEncoder()
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c !== '\\') {
      const code = text.codePointAt(i)!
      if (code < 0x80) {
        out.push(code)
      } else {
        out.push(...utf8.encode(String.fromCodePoint(code)))
        if (code > 0xffff) i++
      }
      continue
    }
    const e = text[++i]
    if (e === undefined) throw bad()
    if (SIMPLE_ESCAPES[e] !== undefined) {
      out.push(SIMPLE_ESCAPES[e])
    } else if (e >= '0' && e <= '7') {
      const m = /^[0-7]{1,3}/.exec(text.slice(i))!
      const v = parseInt(m[0], 8)
      if (v > 255) throw bad()
      out.push(v)
      i += m[0].length - 1
    } else if (e === 'x' || e === 'X') {
      const m = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 1))
      if (!m) throw bad()
      out.push(parseInt(m[0], 16))
      i += m[0].length
    } else if (e === 'u' || e === 'U') {
      const len = e === 'u' ? 4 : 8
      const hex = text.slice(i + 1, i + 1 + len)
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) throw bad()
      const cp = parseInt(hex, 16)
      if (cp > 0x10ffff) throw bad()
      out.push(...utf8.encode(String.fromCodePoint(cp)))
      i += len
    } else {
      throw bad()
    }
  }
  return Uint8Array.from(out)
}
