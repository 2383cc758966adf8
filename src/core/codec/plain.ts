/**
 * Plain objects <-> protobuf binary, driven by protobuf-es descriptors.
 *
 * Events are encoded straight from the user's object and decoded straight
 * into a plain one: no protobuf-es message in between. protobuf-es'
 * BinaryWriter alone caps encoding at ~400k messages/s here (a chunk list and
 * a TextEncoder call per string); this writer reuses one growing buffer and
 * validates while it writes, in one pass over a field table computed once
 * per message type. The wire format is protobuf-es' own (fields in number
 * order, packed per syntax), which the tests check byte for byte.
 *
 * Plain shape (what handlers receive):
 * - keys are the field names as written in the .proto (snake_case stays);
 *   input also accepts protobuf-es' camelCase localName;
 * - every scalar, enum, repeated and map field is present, unset ones as
 *   their default (proto2 `[default=...]`, else '' / 0 / false / empty bytes /
 *   0n / [] / {}); enums as numbers; 64-bit integers as bigint (string with
 *   jstype = JS_STRING); bytes as Uint8Array (a copy, never a view of the input);
 * - a singular sub-message is present only when set (no key otherwise);
 * - oneof members are flattened: the set one is an ordinary property, the
 *   others are absent;
 * - the top-level object is an instance of a class named after the message,
 *   so util.inspect prints `Hello { from: 'Matteo', message: '' }`; nested
 *   messages are plain `{}` objects. Only own enumerable data properties.
 */
import { ScalarType, type DescEnum, type DescField, type DescMessage } from '@bufbuild/protobuf'
import { ErrorCodes, HyperEmitterError, type ErrorCode } from '../errors.js'
import { grown } from '../bytes/bytes.js'
import { VarintReader, varintLength, writeVarint, writeVarint64 } from '../bytes/varint.js'

// Field kinds and presence, as small ints for switch dispatch.
const SCALAR = 0
const ENUM = 1
const MESSAGE = 2
const LIST = 3
const MAP = 4

const IMPLICIT = 2 // FeatureSet.FieldPresence
const REQUIRED = 3

const WT_VARINT = 0
const WT_I64 = 1
const WT_LEN = 2
const WT_SGROUP = 3
const WT_EGROUP = 4
const WT_I32 = 5

/** Nesting deeper than this is refused (cyclic input, hostile bytes). */
const MAX_DEPTH = 100

const TWO_32 = 4294967296
const FLOAT_MAX = 3.4028234663852886e38
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const UINT64_MAX = 2n ** 64n - 1n

interface EnumPlan {
  closed: boolean
  numbers: Set<number>
  byName: Map<string, number>
  first: number
  typeName: string
}

interface OneofPlan {
  name: string
  localName: string
  members: FieldPlan[]
  index: number
}

interface FieldPlan {
  name: string
  /** protobuf-es localName when it differs from `name`, accepted on input. */
  alt: string | undefined
  no: number
  kind: number
  /** For SCALAR, and element/value type of LIST/MAP when scalar. */
  scalar: ScalarType
  /** For LIST/MAP: SCALAR, ENUM or MESSAGE. */
  elem: number
  presence: number
  packed: boolean
  delimited: boolean
  longAsString: boolean
  mapKey: ScalarType
  oneof: OneofPlan | undefined
  enumPlan: EnumPlan | undefined
  msgDesc: DescMessage | undefined
  msg: MessagePlan | undefined
  /** Decoded value for an unset singular scalar/enum field. */
  def: unknown
  /** Precomputed tag varints. */
  tag: number
  packedTag: number
  /** Plain-object key needs defineProperty ("__proto__"). */
  unsafeKey: boolean
}

/** The cached field table of one message type. */
export interface MessagePlan {
  readonly desc: DescMessage
  readonly typeName: string
  /** Encode order: field number. */
  readonly fields: FieldPlan[]
  /** Decode output order: declaration order. */
  readonly declared: FieldPlan[]
  readonly byNo: Map<number, FieldPlan>
  readonly byKey: Map<string, FieldPlan>
  readonly oneofs: OneofPlan[]
  readonly oneofByKey: Map<string, OneofPlan>
  ctor: (new () => object) | undefined
}

const plans = new WeakMap<DescMessage, MessagePlan>()

/** The field table for `desc`, computed once per descriptor. */
export function planFor(desc: DescMessage): MessagePlan {
  let plan = plans.get(desc)
  if (plan) return plan
  plan = {
    desc,
    typeName: desc.typeName,
    fields: [],
    declared: [],
    byNo: new Map(),
    byKey: new Map(),
    oneofs: [],
    oneofByKey: new Map(),
    ctor: undefined,
  }
  // Registered before the fields are built so recursive types find it.
  plans.set(desc, plan)
  for (const o of desc.oneofs) {
    const op: OneofPlan = { name: o.name, localName: o.localName, members: [], index: plan.oneofs.length }
    plan.oneofs.push(op)
    plan.oneofByKey.set(o.name, op)
    plan.oneofByKey.set(o.localName, op)
  }
  for (const f of desc.fields) {
    const fp = fieldPlan(f, plan)
    plan.declared.push(fp)
    plan.byNo.set(fp.no, fp)
    plan.byKey.set(fp.name, fp)
    if (fp.alt !== undefined) plan.byKey.set(fp.alt, fp)
  }
  plan.fields.push(...plan.declared)
  plan.fields.sort((a, b) => a.no - b.no)
  return plan
}

const enumPlans = new WeakMap<DescEnum, EnumPlan>()

function enumPlanFor(e: DescEnum): EnumPlan {
  let p = enumPlans.get(e)
  if (!p) {
    p = {
      closed: !e.open,
      numbers: new Set(e.values.map((v) => v.number)),
      byName: new Map(e.values.map((v) => [v.name, v.number])),
      first: e.values[0]?.number ?? 0,
      typeName: e.typeName,
    }
    enumPlans.set(e, p)
  }
  return p
}

function fieldPlan(f: DescField, parent: MessagePlan): FieldPlan {
  const localName = f.localName
  const fp: FieldPlan = {
    name: f.name,
    alt: localName !== f.name ? localName : undefined,
    no: f.number,
    kind: SCALAR,
    scalar: ScalarType.INT32,
    elem: SCALAR,
    presence: f.presence,
    packed: false,
    delimited: false,
    longAsString: false,
    mapKey: ScalarType.STRING,
    oneof: undefined,
    enumPlan: undefined,
    msgDesc: undefined,
    msg: undefined,
    def: undefined,
    tag: 0,
    packedTag: f.number * 8 + WT_LEN,
    unsafeKey: f.name === '__proto__',
  }
  switch (f.fieldKind) {
    case 'scalar':
      fp.kind = SCALAR
      fp.scalar = f.scalar
      fp.longAsString = f.longAsString
      fp.def = f.getDefaultValue() ?? scalarZero(f.scalar, f.longAsString)
      if (f.longAsString && typeof fp.def === 'bigint') fp.def = fp.def.toString()
      break
    case 'enum':
      fp.kind = ENUM
      fp.enumPlan = enumPlanFor(f.enum)
      fp.def = f.getDefaultValue() ?? fp.enumPlan.first
      break
    case 'message':
      fp.kind = MESSAGE
      fp.msgDesc = f.message
      fp.delimited = f.delimitedEncoding
      break
    case 'list':
      fp.kind = LIST
      fp.packed = f.packed
      if (f.listKind === 'scalar') {
        fp.elem = SCALAR
        fp.scalar = f.scalar
        fp.longAsString = f.longAsString
      } else if (f.listKind === 'enum') {
        fp.elem = ENUM
        fp.enumPlan = enumPlanFor(f.enum)
      } else {
        fp.elem = MESSAGE
        fp.msgDesc = f.message
        fp.delimited = f.delimitedEncoding
      }
      break
    case 'map':
      fp.kind = MAP
      fp.mapKey = f.mapKey
      if (f.mapKind === 'scalar') {
        fp.elem = SCALAR
        fp.scalar = f.scalar
      } else if (f.mapKind === 'enum') {
        fp.elem = ENUM
        fp.enumPlan = enumPlanFor(f.enum)
      } else {
        fp.elem = MESSAGE
        fp.msgDesc = f.message
      }
      break
  }
  const wt = fp.kind === MESSAGE || (fp.kind === LIST && fp.elem === MESSAGE)
    ? (fp.delimited ? WT_SGROUP : WT_LEN)
    : fp.kind === MAP ? WT_LEN
    : fp.kind === ENUM || fp.elem === ENUM ? WT_VARINT
    : wireTypeOf(fp.scalar)
  fp.tag = f.number * 8 + wt
  if (f.oneof) {
    const op = parent.oneofs.find((o) => o.name === f.oneof!.name)!
    fp.oneof = op
    op.members.push(fp)
  }
  return fp
}

function subPlan(f: FieldPlan): MessagePlan {
  return f.msg ?? (f.msg = planFor(f.msgDesc!))
}

function wireTypeOf(t: ScalarType): number {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WT_I64
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WT_I32
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WT_LEN
    default:
      return WT_VARINT
  }
}

function scalarZero(t: ScalarType, longAsString: boolean): unknown {
  switch (t) {
    case ScalarType.STRING:
      return ''
    case ScalarType.BOOL:
      return false
    case ScalarType.BYTES:
      return EMPTY_BYTES
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return longAsString ? '0' : 0n
    default:
      return 0
  }
}

const EMPTY_BYTES = new Uint8Array(0)
const utf8Encoder = new TextEncoder()
// ignoreBOM: a leading U+FEFF is content, kept as the hand decoder keeps it.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true })
const scratch = new DataView(new ArrayBuffer(8))

// ---------------------------------------------------------------------------
// Encoding

class Writer {
  buf: Uint8Array = new Uint8Array(1024)
  pos = 0
  busy = false
  event = ''
  path: string[] = []
  depth = 0

  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.buf = grown(this.buf, this.pos, this.pos + n)
  }

  /** Unsigned 32-bit varint (v in [0, 2^32)). */
  varint32(v: number): void {
    this.ensure(5)
    this.pos = writeVarint(this.buf, this.pos, v)
  }

  /** int32 semantics: negatives take ten bytes, sign-extended to 64 bits. */
  int32(v: number): void {
    if (v >= 0) this.varint32(v)
    else this.varint64(v >>> 0, 0xffffffff)
  }

  varint64(lo: number, hi: number): void {
    this.ensure(10)
    this.pos = writeVarint64(this.buf, this.pos, lo, hi)
  }

  fixed32(v: number): void {
    this.ensure(4)
    const buf = this.buf
    const pos = this.pos
    buf[pos] = v & 255
    buf[pos + 1] = (v >>> 8) & 255
    buf[pos + 2] = (v >>> 16) & 255
    buf[pos + 3] = (v >>> 24) & 255
    this.pos = pos + 4
  }

  float(v: number): void {
    scratch.setFloat32(0, v, true)
    this.fixed32(scratch.getUint32(0, true))
  }

  double(v: number): void {
    scratch.setFloat64(0, v, true)
    this.fixed32(scratch.getUint32(0, true))
    this.fixed32(scratch.getUint32(4, true))
  }

  /** Reserve a length prefix of `guess` bytes; returns where content starts. */
  beginLen(guess: number): number {
    this.ensure(guess)
    this.pos += guess
    return this.pos
  }

  /** Write the length of the content since `start` into its reserved prefix. */
  endLen(start: number, guess: number): void {
    const len = this.pos - start
    const need = varintLength(len)
    if (need !== guess) {
      // The content outgrew the guessed prefix: slide it right.
      this.ensure(need - guess)
      this.buf.copyWithin(start + need - guess, start, this.pos)
      this.pos += need - guess
    }
    writeVarint(this.buf, start - guess, len)
  }

  string(s: string): void {
    const n = s.length
    const guess = varintLength(n)
    this.ensure(guess + n * 3)
    const start = this.beginLen(guess)
    const buf = this.buf
    let pos = start
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) {
        pos = start + utf8Encoder.encodeInto(s, buf.subarray(start)).written
        break
      }
      buf[pos++] = c
    }
    this.pos = pos
    this.endLen(start, guess)
  }

  bytes(b: Uint8Array): void {
    this.varint32(b.length)
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
}

const sharedWriter = new Writer()

/** What encodePlainShared() wrote: the first `length` bytes of `bytes`, valid until the next encode. */
export interface Encoded {
  bytes: Uint8Array
  length: number
}

/**
 * Validate `value` against `plan` and encode it. Throws HyperEmitterError:
 * INVALID_ARGUMENT (value is not an object), MISSING_FIELD, UNKNOWN_FIELD,
 * INVALID_FIELD; details carry `{ event, field }` (a path like "a.b[2].c").
 */
export function encodePlain(plan: MessagePlan, value: unknown, event: string): Uint8Array {
  const w = writeValue(plan, value, event)
  const out = w.buf.slice(0, w.pos)
  release(w)
  return out
}

/**
 * encodePlain() without the copy: `into` gets the writer's own buffer,
 * which the next encode overwrites. For a caller that copies the bytes on
 * at once (an emit packs them into its group): the copy encodePlain()
 * returns was an array per event, measured at ~4% of a burst's time.
 */
export function encodePlainShared(plan: MessagePlan, value: unknown, event: string, into: Encoded): Encoded {
  const w = writeValue(plan, value, event)
  into.bytes = w.buf
  into.length = w.pos
  release(w)
  return into
}

/** Validates and writes `value` with a free writer (the shared one unless a getter on the input re-entered encode). */
function writeValue(plan: MessagePlan, value: unknown, event: string): Writer {
  if (!isRecord(value)) {
    throw new HyperEmitterError(
      ErrorCodes.INVALID_ARGUMENT,
      `hyperemitter: event ${event} needs an object, got ${describe(value)}`,
      { details: { event } },
    )
  }
  const w = sharedWriter.busy ? new Writer() : sharedWriter
  w.busy = true
  w.pos = 0
  w.event = event
  // Set only when a failed encode left it: setting an array's length costs a runtime call.
  if (w.path.length !== 0) w.path.length = 0
  w.depth = 0
  try {
    writeMessage(w, plan, value)
  } finally {
    w.busy = false
  }
  return w
}

/** Do not keep one huge event's buffer alive forever (what was handed out keeps the old one). */
function release(w: Writer): void {
  if (w.buf.length > 1 << 20) w.buf = new Uint8Array(1024)
}

function writeMessage(w: Writer, plan: MessagePlan, obj: Record<string, unknown>): void {
  if (++w.depth > MAX_DEPTH) throw fieldError(w, ErrorCodes.INVALID_FIELD, undefined, `is nested more than ${MAX_DEPTH} levels deep`)
  // Own-and-inherited enumerable keys, compared with those matched below to
  // detect unknown properties without allocating a key array.
  let keys = 0
  for (const _ in obj) keys++
  let matched = 0
  let chosen: (FieldPlan | undefined)[] | undefined
  let adt: unknown[] | undefined

  if (plan.oneofs.length > 0) {
    chosen = new Array(plan.oneofs.length)
    for (const o of plan.oneofs) {
      // protobuf-es' `{ case, value }` form, under the oneof's name.
      let v = obj[o.name]
      if (v === undefined && o.localName !== o.name) v = obj[o.localName]
      if (v === undefined) continue
      matched++
      if (v === null) continue
      if (!isRecord(v) || !('case' in v)) {
        throw fieldError(w, ErrorCodes.INVALID_FIELD, o.name, `must be { case, value } (or set one member directly), got ${describe(v)}`)
      }
      if (v.case === undefined) continue
      const m = o.members.find((f) => f.name === v.case || f.alt === v.case)
      if (!m) throw fieldError(w, ErrorCodes.INVALID_FIELD, o.name, `has no member "${String(v.case)}"`)
      ;(adt ??= new Array(plan.byNo.size))
      adt[plan.fields.indexOf(m)] = v.value
    }
  }
  const tn = obj.$typeName
  if (tn !== undefined) {
    matched++
    if (tn !== plan.typeName) throw fieldError(w, ErrorCodes.INVALID_FIELD, '$typeName', `is ${String(tn)}, expected ${plan.typeName}`)
  }
  if (obj.$unknown !== undefined) matched++

  const fields = plan.fields
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]
    // A field named "__proto__" must not read the object's prototype.
    let v = f.unsafeKey ? Object.getOwnPropertyDescriptor(obj, f.name)?.value : obj[f.name]
    if (v !== undefined) {
      matched++
      if (f.alt !== undefined && obj[f.alt] !== undefined) {
        throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `is given twice (as ${f.name} and ${f.alt})`)
      }
    } else if (f.alt !== undefined) {
      v = obj[f.alt]
      if (v !== undefined) matched++
    }
    if (adt !== undefined && adt[i] !== undefined) {
      if (v != null) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, 'is given twice (directly and in its oneof)')
      v = adt[i]
    }
    if (v == null) {
      if (f.presence === REQUIRED) throw fieldError(w, ErrorCodes.MISSING_FIELD, f.name, 'is required')
      continue
    }
    if (f.oneof !== undefined) {
      const prev = chosen![f.oneof.index]
      if (prev !== undefined) {
        throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `and ${prev.name} are both set, but oneof ${f.oneof.name} takes one`)
      }
      chosen![f.oneof.index] = f
    }
    switch (f.kind) {
      case SCALAR:
        writeScalarField(w, f, v, f.presence === IMPLICIT && f.oneof === undefined)
        break
      case ENUM: {
        const n = enumNumber(w, f, v, f.name)
        if (f.presence === IMPLICIT && f.oneof === undefined && n === f.enumPlan!.first) break
        w.varint32(f.tag)
        w.int32(n)
        break
      }
      case MESSAGE:
        if (!isRecord(v)) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `must be an object, got ${describe(v)}`)
        w.path.push(f.name)
        writeSubMessage(w, f, subPlan(f), v)
        w.path.pop()
        break
      case LIST:
        writeList(w, f, v)
        break
      case MAP:
        writeMap(w, f, v)
        break
    }
  }
  if (keys !== matched) checkKeys(w, plan, obj)
  w.depth--
}

function writeSubMessage(w: Writer, f: FieldPlan, plan: MessagePlan, v: Record<string, unknown>): void {
  if (f.delimited) {
    w.varint32(f.tag)
    writeMessage(w, plan, v)
    w.varint32(f.no * 8 + WT_EGROUP)
    return
  }
  w.varint32(f.tag)
  const start = w.beginLen(1)
  writeMessage(w, plan, v)
  w.endLen(start, 1)
}

/** Slow path, only when the key count did not add up. */
function checkKeys(w: Writer, plan: MessagePlan, obj: Record<string, unknown>): void {
  for (const k in obj) {
    if (plan.byKey.has(k) || plan.oneofByKey.has(k) || k === '$typeName' || k === '$unknown') continue
    throw fieldError(w, ErrorCodes.UNKNOWN_FIELD, k, `is not a field of ${plan.typeName}`)
  }
}

function writeList(w: Writer, f: FieldPlan, v: unknown): void {
  if (!Array.isArray(v)) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `must be an array, got ${describe(v)}`)
  const n = v.length
  if (n === 0) return
  if (f.elem === MESSAGE) {
    const plan = subPlan(f)
    for (let i = 0; i < n; i++) {
      const item = v[i]
      if (!isRecord(item)) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `must hold objects, got ${describe(item)}`, `[${i}]`)
      w.path.push(`${f.name}[${i}]`)
      writeSubMessage(w, f, plan, item)
      w.path.pop()
    }
    return
  }
  if (f.packed) {
    w.varint32(f.packedTag)
    const guess = varintLength(n)
    const start = w.beginLen(guess)
    for (let i = 0; i < n; i++) writeElement(w, f, v[i], i)
    w.endLen(start, guess)
    return
  }
  for (let i = 0; i < n; i++) {
    w.varint32(f.tag)
    writeElement(w, f, v[i], i)
  }
}

function writeElement(w: Writer, f: FieldPlan, item: unknown, i: number): void {
  if (f.elem === ENUM) {
    w.int32(enumNumber(w, f, item, f.name, `[${i}]`))
  } else {
    writeScalar(w, f.scalar, checkScalar(w, f.scalar, item, f.name, `[${i}]`))
  }
}

function writeMap(w: Writer, f: FieldPlan, v: unknown): void {
  let entries: Iterable<[unknown, unknown]>
  if (v instanceof Map) {
    entries = v
  } else if (isRecord(v)) {
    entries = Object.entries(v)
  } else {
    throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `must be an object (or a Map), got ${describe(v)}`)
  }
  const keyTag = 8 + wireTypeOf(f.mapKey)
  const valueTag = f.elem === MESSAGE ? 16 + WT_LEN : f.elem === ENUM ? 16 + WT_VARINT : 16 + wireTypeOf(f.scalar)
  for (const [rawKey, value] of entries) {
    const suffix = `[${String(rawKey)}]`
    const key = mapKey(w, f, rawKey, suffix)
    if (value == null) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, 'map values cannot be null or undefined', suffix)
    w.varint32(f.tag)
    const start = w.beginLen(1)
    w.varint32(keyTag)
    writeScalar(w, f.mapKey, key)
    w.varint32(valueTag)
    if (f.elem === MESSAGE) {
      if (!isRecord(value)) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `must hold objects, got ${describe(value)}`, suffix)
      w.path.push(f.name + suffix)
      const inner = w.beginLen(1)
      writeMessage(w, subPlan(f), value)
      w.endLen(inner, 1)
      w.path.pop()
    } else if (f.elem === ENUM) {
      w.int32(enumNumber(w, f, value, f.name, suffix))
    } else {
      writeScalar(w, f.scalar, checkScalar(w, f.scalar, value, f.name, suffix))
    }
    w.endLen(start, 1)
  }
}

/** Map keys arrive as object keys (strings): read them as the key type. */
function mapKey(w: Writer, f: FieldPlan, raw: unknown, suffix: string): unknown {
  const t = f.mapKey
  if (t === ScalarType.STRING) {
    if (typeof raw !== 'string') throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `keys must be strings, got ${describe(raw)}`, suffix)
    return raw
  }
  if (t === ScalarType.BOOL) {
    if (raw === true || raw === 'true') return true
    if (raw === false || raw === 'false') return false
    throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `keys must be "true" or "false", got ${describe(raw)}`, suffix)
  }
  let k = raw
  if (typeof raw === 'string') {
    if (!/^-?\d+$/.test(raw)) throw fieldError(w, ErrorCodes.INVALID_FIELD, f.name, `keys must be integers, got ${describe(raw)}`, suffix)
    k = is64(t) ? raw : Number(raw)
  }
  return checkScalar(w, t, k, f.name, suffix)
}

function enumNumber(w: Writer, f: FieldPlan, v: unknown, field: string, suffix = ''): number {
  const e = f.enumPlan!
  if (typeof v === 'string') {
    const n = e.byName.get(v)
    if (n === undefined) throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `has no value named ${JSON.stringify(v)} in enum ${e.typeName}`, suffix)
    return n
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `must be a value of enum ${e.typeName} (number or name), got ${describe(v)}`, suffix)
  }
  // Closed (proto2) enums cannot carry values they do not declare.
  if (e.closed && !e.numbers.has(v)) throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `has no value ${v} in enum ${e.typeName}`, suffix)
  return v
}

function writeScalarField(w: Writer, f: FieldPlan, v: unknown, implicit: boolean): void {
  const n = checkScalar(w, f.scalar, v, f.name)
  if (implicit && isZero(f.scalar, n)) return
  w.varint32(f.tag)
  writeScalar(w, f.scalar, n)
}

function isZero(t: ScalarType, v: unknown): boolean {
  switch (t) {
    case ScalarType.STRING:
      return v === ''
    case ScalarType.BOOL:
      return v === false
    case ScalarType.BYTES:
      return (v as Uint8Array).length === 0
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      // -0 is not the zero value: protobuf-es writes it.
      return Object.is(v, 0)
    default:
      return v === 0 || v === 0n
  }
}

function is64(t: ScalarType): boolean {
  return t === ScalarType.INT64 || t === ScalarType.UINT64 || t === ScalarType.SINT64 || t === ScalarType.FIXED64 || t === ScalarType.SFIXED64
}

/**
 * Check a scalar's type and range; returns the value to write (64-bit
 * integers as a safe-integer number or a bigint, whatever the input form).
 */
function checkScalar(w: Writer, t: ScalarType, v: unknown, field: string, suffix = ''): unknown {
  switch (t) {
    case ScalarType.STRING:
      if (typeof v === 'string') return v
      break
    case ScalarType.BOOL:
      if (typeof v === 'boolean') return v
      break
    case ScalarType.BYTES:
      if (v instanceof Uint8Array) return v
      break
    case ScalarType.DOUBLE:
      if (typeof v === 'number') return v
      break
    case ScalarType.FLOAT:
      if (typeof v === 'number') {
        if (Number.isFinite(v) && Math.abs(v) > FLOAT_MAX) {
          throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `is out of range for float: ${v}`, suffix)
        }
        return v
      }
      break
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      if (typeof v === 'number') {
        if (Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff) return v
        throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `must be an integer in the int32 range, got ${v}`, suffix)
      }
      break
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      if (typeof v === 'number') {
        if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return v
        throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `must be an integer in the uint32 range, got ${v}`, suffix)
      }
      break
    default: {
      // 64-bit: bigint, integer number, or decimal string.
      const unsigned = t === ScalarType.UINT64 || t === ScalarType.FIXED64
      if (typeof v === 'number') {
        if (Number.isSafeInteger(v)) {
          if (unsigned && v < 0) break
          return v
        }
        if (!Number.isInteger(v)) break
        v = BigInt(v)
      } else if (typeof v === 'string') {
        if (!/^-?\d+$/.test(v)) break
        v = BigInt(v)
      }
      if (typeof v === 'bigint') {
        if (unsigned ? v >= 0n && v <= UINT64_MAX : v >= INT64_MIN && v <= INT64_MAX) return v
      }
      throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `must be an integer in the ${unsigned ? 'uint64' : 'int64'} range (bigint, number or decimal string), got ${describe(v)}`, suffix)
    }
  }
  throw fieldError(w, ErrorCodes.INVALID_FIELD, field, `must be ${SCALAR_NAMES[t]}, got ${describe(v)}`, suffix)
}

const SCALAR_NAMES: Record<number, string> = {
  [ScalarType.STRING]: 'a string',
  [ScalarType.BOOL]: 'a boolean',
  [ScalarType.BYTES]: 'a Uint8Array',
  [ScalarType.DOUBLE]: 'a number',
  [ScalarType.FLOAT]: 'a number',
  [ScalarType.INT32]: 'an int32 number',
  [ScalarType.SINT32]: 'an int32 number',
  [ScalarType.SFIXED32]: 'an int32 number',
  [ScalarType.UINT32]: 'a uint32 number',
  [ScalarType.FIXED32]: 'a uint32 number',
}

/** Write a value already checked by checkScalar. */
function writeScalar(w: Writer, t: ScalarType, v: unknown): void {
  switch (t) {
    case ScalarType.STRING:
      w.string(v as string)
      return
    case ScalarType.BOOL:
      w.ensure(1)
      w.buf[w.pos++] = v ? 1 : 0
      return
    case ScalarType.BYTES:
      w.bytes(v as Uint8Array)
      return
    case ScalarType.DOUBLE:
      w.double(v as number)
      return
    case ScalarType.FLOAT:
      w.float(v as number)
      return
    case ScalarType.INT32:
      w.int32(v as number)
      return
    case ScalarType.UINT32:
      w.varint32(v as number)
      return
    case ScalarType.SINT32: {
      const n = v as number
      w.varint32(((n << 1) ^ (n >> 31)) >>> 0)
      return
    }
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      w.fixed32(v as number)
      return
    case ScalarType.INT64:
    case ScalarType.UINT64:
      if (typeof v === 'number') {
        if (v >= 0 && v < TWO_32) w.varint32(v)
        else w.varint64(v >>> 0, Math.floor(v / TWO_32) >>> 0)
      } else {
        const u = BigInt.asUintN(64, v as bigint)
        w.varint64(Number(u & 0xffffffffn), Number(u >> 32n))
      }
      return
    case ScalarType.SINT64: {
      const b = BigInt(v as number | bigint)
      const u = BigInt.asUintN(64, (b << 1n) ^ (b >> 63n))
      w.varint64(Number(u & 0xffffffffn), Number(u >> 32n))
      return
    }
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      if (typeof v === 'number') {
        w.fixed32(v >>> 0)
        w.fixed32(Math.floor(v / TWO_32) >>> 0)
      } else {
        const u = BigInt.asUintN(64, v as bigint)
        w.fixed32(Number(u & 0xffffffffn))
        w.fixed32(Number(u >> 32n))
      }
      return
  }
}

function fieldError(w: Writer, code: ErrorCode, field: string | undefined, problem: string, suffix = ''): HyperEmitterError {
  let path = ''
  for (const p of w.path) path = path === '' ? p : `${path}.${p}`
  if (field !== undefined) path = path === '' ? field + suffix : `${path}.${field}${suffix}`
  const where = path === '' ? '' : ` field ${path}`
  return new HyperEmitterError(code, `hyperemitter: event ${w.event}${where} ${problem}`, {
    details: { event: w.event, field: path },
  })
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (v instanceof Uint8Array) return 'a Uint8Array'
  switch (typeof v) {
    case 'string':
      return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof v} ${String(v)}`
    default:
      return typeof v
  }
}

// ---------------------------------------------------------------------------
// Decoding

/** The plain decoder's cursor: the core's varint reader plus protobuf's scalar and skip rules. */
class Reader extends VarintReader {
  depth = 0

  /** A varint's low 32 bits: how protobuf reads tags, lengths, int32, uint32, enums and bools. */
  varint32(): number {
    const bytes = this.bytes
    const pos = this.pos
    if (pos < this.end && bytes[pos] < 0x80) {
      this.pos = pos + 1
      return bytes[pos]
    }
    this.varint64()
    return this.lo
  }

  /** Reads a 64-bit varint into this.lo / this.hi (unsigned halves). */
  varint64(): void {
    if (!this.next64()) throw new Error(this.pos >= this.end ? 'premature end of input' : 'invalid varint')
  }

  fixed32(): number {
    const buf = this.bytes
    const pos = this.pos
    if (pos + 4 > buf.length) throw new Error('premature end of input')
    this.pos = pos + 4
    return (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)) + buf[pos + 3] * 0x1000000
  }

  /** Length of a length-delimited value, checked against `end`; read it before taking `pos`. */
  len(end: number): number {
    const n = this.varint32()
    if (this.pos + n > end) throw new Error('premature end of input')
    return n
  }

  skip(wt: number, no: number, end: number): void {
    switch (wt) {
      case WT_VARINT:
        this.varint64()
        break
      case WT_I64:
        this.pos += 8
        break
      case WT_LEN: {
        const n = this.len(end)
        this.pos += n
        break
      }
      case WT_I32:
        this.pos += 4
        break
      case WT_SGROUP:
        for (;;) {
          if (this.pos >= end) throw new Error('unterminated group')
          const tag = this.varint32()
          const w = tag & 7
          if (w === WT_EGROUP) {
            if (tag >>> 3 !== no) throw new Error('mismatched end group')
            break
          }
          this.skip(w, tag >>> 3, end)
        }
        break
      default:
        throw new Error(`invalid wire type ${wt}`)
    }
    if (this.pos > end) throw new Error('premature end of input')
  }

  string(end: number): string {
    const n = this.len(end)
    const start = this.pos
    this.pos = start + n
    if (n <= SHORT_STRING) {
      const s = utf8Short(this.bytes, start, start + n)
      if (s !== undefined) return s
    }
    return utf8Decoder.decode(this.bytes.subarray(start, start + n))
  }
}

/**
 * Strings up to this many bytes are decoded by hand. A payload is usually a
 * fresh small Uint8Array that V8 keeps on its heap, and its first use by
 * TextDecoder moves it off-heap: ~1.5 us, five times the cost of a whole
 * Hello decode.
 */
const SHORT_STRING = 128

// UTF-16 code units of the string being decoded, reused: one string made
// from them at the end, where appending a character at a time made a new
// string per character (~570 bytes of garbage for a Hello's two strings).
const units: number[] = []
// An array per string length, handed to String.fromCharCode: cutting
// `units` to length instead was a runtime call per string (~1% of a
// burst's time); copying a short string's units costs less.
const unitsOfLength: number[][] = []

function exactly(n: number): number[] {
  let out = unitsOfLength[n]
  if (out === undefined) {
    out = []
    for (let i = 0; i < n; i++) out.push(0)
    unitsOfLength[n] = out
  }
  for (let i = 0; i < n; i++) out[i] = units[i]
  return out
}

/** Valid UTF-8 -> string; undefined for anything TextDecoder must judge. */
function utf8Short(buf: Uint8Array, i: number, end: number): string | undefined {
  let n = 0
  while (i < end) {
    const c = buf[i]
    if (c < 0x80) {
      units[n++] = c
      i++
    } else if (c >= 0xc2 && c < 0xe0) {
      const c2 = buf[i + 1]
      if (i + 1 >= end || (c2 & 0xc0) !== 0x80) return undefined
      units[n++] = ((c & 0x1f) << 6) | (c2 & 0x3f)
      i += 2
    } else if (c >= 0xe0 && c < 0xf0) {
      const c2 = buf[i + 1]
      const c3 = buf[i + 2]
      if (i + 2 >= end || (c2 & 0xc0) !== 0x80 || (c3 & 0xc0) !== 0x80) return undefined
      const cp = ((c & 0x0f) << 12) | ((c2 & 0x3f) << 6) | (c3 & 0x3f)
      if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return undefined
      units[n++] = cp
      i += 3
    } else if (c >= 0xf0 && c < 0xf5) {
      const c2 = buf[i + 1]
      const c3 = buf[i + 2]
      const c4 = buf[i + 3]
      if (i + 3 >= end || (c2 & 0xc0) !== 0x80 || (c3 & 0xc0) !== 0x80 || (c4 & 0xc0) !== 0x80) return undefined
      const cp = ((c & 0x07) << 18) | ((c2 & 0x3f) << 12) | ((c3 & 0x3f) << 6) | (c4 & 0x3f)
      if (cp < 0x10000 || cp > 0x10ffff) return undefined
      units[n++] = 0xd800 + ((cp - 0x10000) >> 10)
      units[n++] = 0xdc00 + ((cp - 0x10000) & 0x3ff)
      i += 4
    } else {
      return undefined
    }
  }
  return String.fromCharCode.apply(null, exactly(n))
}

/**
 * Decode `bytes` as `plan`'s message into a plain object (see the module
 * comment for its shape). Throws a plain Error on malformed input; the
 * caller wraps it as CODEC_FAILED.
 */
export function decodePlain(plan: MessagePlan, bytes: Uint8Array): Record<string, unknown> {
  const r = new Reader(bytes)
  const ctor = plan.ctor ?? (plan.ctor = namedClass(plan.desc.name))
  const obj = new ctor() as Record<string, unknown>
  initDefaults(plan, obj)
  readMessage(r, plan, obj, bytes.length, -1)
  return obj
}

function namedClass(name: string): new () => object {
  const C = class {}
  Object.defineProperty(C, 'name', { value: name })
  return C
}

function initDefaults(plan: MessagePlan, obj: Record<string, unknown>): void {
  const fields = plan.declared
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]
    let v: unknown
    switch (f.kind) {
      case SCALAR:
        // Unset oneof members stay absent: the set one is the only key.
        if (f.oneof !== undefined) continue
        v = f.def
        // Each object gets its own bytes: a shared one could be mutated.
        if (v instanceof Uint8Array) v = v.slice()
        break
      case ENUM:
        if (f.oneof !== undefined) continue
        v = f.def
        break
      case MESSAGE:
        continue
      case LIST:
        v = []
        break
      case MAP:
        v = {}
        break
    }
    setProp(obj, f, v)
  }
}

function setProp(obj: Record<string, unknown>, f: FieldPlan, v: unknown): void {
  if (f.unsafeKey) Object.defineProperty(obj, f.name, { value: v, enumerable: true, writable: true, configurable: true })
  else obj[f.name] = v
}

/** end: where this message stops; group: the field number of an enclosing group, or -1. */
function readMessage(r: Reader, plan: MessagePlan, obj: Record<string, unknown>, end: number, group: number): void {
  if (++r.depth > MAX_DEPTH) throw new Error(`message nested more than ${MAX_DEPTH} levels deep`)
  while (r.pos < end) {
    const tag = r.varint32()
    const no = tag >>> 3
    const wt = tag & 7
    if (wt === WT_EGROUP) {
      if (no !== group) throw new Error('unexpected end group')
      r.depth--
      return
    }
    const f = plan.byNo.get(no)
    if (f === undefined) {
      r.skip(wt, no, end)
      continue
    }
    readField(r, f, obj, wt, end)
  }
  if (r.pos !== end) throw new Error('premature end of input')
  if (group !== -1) throw new Error('unterminated group')
  r.depth--
}

function readField(r: Reader, f: FieldPlan, obj: Record<string, unknown>, wt: number, end: number): void {
  switch (f.kind) {
    case SCALAR: {
      if (wt !== wireTypeOf(f.scalar)) return r.skip(wt, f.no, end)
      const v = readScalar(r, f.scalar, f.longAsString, end)
      if (f.oneof !== undefined) clearOneof(obj, f)
      setProp(obj, f, v)
      return
    }
    case ENUM: {
      if (wt !== WT_VARINT) return r.skip(wt, f.no, end)
      const v = r.varint32() | 0
      // Unknown values of closed enums are dropped, as protobuf-es does.
      if (f.enumPlan!.closed && !f.enumPlan!.numbers.has(v)) return
      if (f.oneof !== undefined) clearOneof(obj, f)
      setProp(obj, f, v)
      return
    }
    case MESSAGE: {
      if (wt !== WT_LEN && wt !== WT_SGROUP) return r.skip(wt, f.no, end)
      if (f.oneof !== undefined) clearOneof(obj, f)
      const plan = subPlan(f)
      // A repeated occurrence of a singular message merges into the first.
      let sub = obj[f.name] as Record<string, unknown> | undefined
      if (sub === undefined) {
        sub = {}
        initDefaults(plan, sub)
        setProp(obj, f, sub)
      }
      readSub(r, plan, sub, wt, f.no, end)
      return
    }
    case LIST: {
      const list = obj[f.name] as unknown[]
      if (f.elem === MESSAGE) {
        if (wt !== WT_LEN && wt !== WT_SGROUP) return r.skip(wt, f.no, end)
        const plan = subPlan(f)
        const sub: Record<string, unknown> = {}
        initDefaults(plan, sub)
        readSub(r, plan, sub, wt, f.no, end)
        list.push(sub)
        return
      }
      const elemWt = f.elem === ENUM ? WT_VARINT : wireTypeOf(f.scalar)
      if (wt === WT_LEN && elemWt !== WT_LEN) {
        // Packed; accepted whatever the field's declared packing.
        const n = r.len(end)
        const stop = r.pos + n
        while (r.pos < stop) readElement(r, f, list, stop)
        if (r.pos !== stop) throw new Error('premature end of packed field')
        return
      }
      if (wt !== elemWt) return r.skip(wt, f.no, end)
      readElement(r, f, list, end)
      return
    }
    case MAP: {
      if (wt !== WT_LEN) return r.skip(wt, f.no, end)
      const n = r.len(end)
      readMapEntry(r, f, obj[f.name] as Record<string, unknown>, r.pos + n)
      return
    }
  }
}

function readSub(r: Reader, plan: MessagePlan, sub: Record<string, unknown>, wt: number, no: number, end: number): void {
  if (wt === WT_SGROUP) {
    readMessage(r, plan, sub, end, no)
  } else {
    const n = r.len(end)
    readMessage(r, plan, sub, r.pos + n, -1)
  }
}

function readElement(r: Reader, f: FieldPlan, list: unknown[], end: number): void {
  if (f.elem === ENUM) {
    const v = r.varint32() | 0
    if (!f.enumPlan!.closed || f.enumPlan!.numbers.has(v)) list.push(v)
  } else {
    list.push(readScalar(r, f.scalar, f.longAsString, end))
  }
  if (r.pos > end) throw new Error('premature end of input')
}

function readMapEntry(r: Reader, f: FieldPlan, map: Record<string, unknown>, stop: number): void {
  let key: unknown = scalarZero(f.mapKey, false)
  let value: unknown
  let valueSet = false
  const keyWt = wireTypeOf(f.mapKey)
  const valueWt = f.elem === MESSAGE ? WT_LEN : f.elem === ENUM ? WT_VARINT : wireTypeOf(f.scalar)
  while (r.pos < stop) {
    const tag = r.varint32()
    const no = tag >>> 3
    const wt = tag & 7
    if (no === 1 && wt === keyWt) {
      key = readScalar(r, f.mapKey, false, stop)
    } else if (no === 2 && wt === valueWt) {
      valueSet = true
      if (f.elem === MESSAGE) {
        const plan = subPlan(f)
        const sub: Record<string, unknown> = {}
        initDefaults(plan, sub)
        const n = r.len(stop)
        readMessage(r, plan, sub, r.pos + n, -1)
        value = sub
      } else if (f.elem === ENUM) {
        value = r.varint32() | 0
      } else {
        value = readScalar(r, f.scalar, f.longAsString, stop)
      }
    } else {
      r.skip(wt, no, stop)
    }
  }
  if (r.pos !== stop) throw new Error('premature end of map entry')
  if (!valueSet) {
    if (f.elem === MESSAGE) {
      const sub: Record<string, unknown> = {}
      initDefaults(subPlan(f), sub)
      value = sub
    } else {
      value = f.elem === ENUM ? f.enumPlan!.first : scalarZero(f.scalar, f.longAsString)
      if (value instanceof Uint8Array) value = value.slice()
    }
  }
  if (f.elem === ENUM && f.enumPlan!.closed && !f.enumPlan!.numbers.has(value as number)) return
  const k = String(key)
  if (k === '__proto__') Object.defineProperty(map, k, { value, enumerable: true, writable: true, configurable: true })
  else map[k] = value
}

function clearOneof(obj: Record<string, unknown>, f: FieldPlan): void {
  const members = f.oneof!.members
  if (members.length === 1) return
  for (let i = 0; i < members.length; i++) {
    const m = members[i]
    if (m !== f && m.name in obj) delete obj[m.name]
  }
}

function readScalar(r: Reader, t: ScalarType, longAsString: boolean, end: number): unknown {
  switch (t) {
    case ScalarType.STRING:
      return r.string(end)
    case ScalarType.BOOL:
      r.varint64()
      return r.lo !== 0 || r.hi !== 0
    case ScalarType.BYTES: {
      const n = r.len(end)
      const start = r.pos
      r.pos += n
      return r.bytes.slice(start, start + n)
    }
    case ScalarType.DOUBLE: {
      if (r.pos + 8 > end) throw new Error('premature end of input')
      scratch.setUint32(0, r.fixed32(), true)
      scratch.setUint32(4, r.fixed32(), true)
      return scratch.getFloat64(0, true)
    }
    case ScalarType.FLOAT:
      if (r.pos + 4 > end) throw new Error('premature end of input')
      scratch.setUint32(0, r.fixed32(), true)
      return scratch.getFloat32(0, true)
    case ScalarType.INT32:
      return r.varint32() | 0
    case ScalarType.UINT32:
      return r.varint32()
    case ScalarType.SINT32: {
      const n = r.varint32()
      return (n >>> 1) ^ -(n & 1)
    }
    case ScalarType.FIXED32:
      return r.fixed32()
    case ScalarType.SFIXED32:
      return r.fixed32() | 0
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64: {
      r.varint64()
      return long(t, r.lo, r.hi, longAsString)
    }
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64: {
      if (r.pos + 8 > end) throw new Error('premature end of input')
      const lo = r.fixed32()
      const hi = r.fixed32()
      return long(t, lo, hi, longAsString)
    }
  }
  throw new Error(`unsupported scalar type ${t}`)
}

function long(t: ScalarType, lo: number, hi: number, asString: boolean): bigint | string {
  let v = hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo)
  if (t === ScalarType.SINT64) v = (v >> 1n) ^ -(v & 1n)
  else if ((t === ScalarType.INT64 || t === ScalarType.SFIXED64) && hi >= 0x80000000) v = BigInt.asIntN(64, v)
  return asString ? v.toString() : v
}
