/**
 * Plain object -> protobuf binary: validates the user's object against a
 * message plan while writing it, in one pass (see plain-plan.ts for the
 * plain shape).
 */
import { ScalarType } from '@bufbuild/protobuf'
import { ErrorCodes, HyperEmitterError, type ErrorCode } from '../errors.js'
import { ENUM, FLOAT_MAX, type FieldPlan, IMPLICIT, INT64_MAX, INT64_MIN, LIST, MAP, MAX_DEPTH, MESSAGE, type MessagePlan, REQUIRED, SCALAR, subPlan, TWO_32, UINT64_MAX, wireTypeOf, WT_EGROUP, WT_LEN, WT_VARINT } from './plain-plan.js'
import { varintLength } from '../bytes/varint.js'
import { Writer } from './plain-writer.js'

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
 * at once (an emit packs them into its group), saving an array per event.
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
