/**
 * Protobuf binary -> plain object, by a message plan (see plain-plan.ts for
 * the plain shape): every field present with its default, oneofs flattened.
 */
import { ScalarType } from '@bufbuild/protobuf'
import { VarintReader } from '../bytes/varint.js'
import { ENUM, type FieldPlan, LIST, MAP, MAX_DEPTH, MESSAGE, type MessagePlan, SCALAR, scalarZero, subPlan, TWO_32, wireTypeOf, WT_EGROUP, WT_I32, WT_I64, WT_LEN, WT_SGROUP, WT_VARINT } from './plain-plan.js'

// ignoreBOM: a leading U+FEFF is content, kept as the hand decoder keeps it.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true })
const scratch = new DataView(new ArrayBuffer(8))

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
 * Strings up to this many bytes are decoded by hand: TextDecoder moves a
 * small on-heap payload off-heap first, which costs more than a whole small decode.
 */
const SHORT_STRING = 128

// UTF-16 code units of the string being decoded, reused: one string made
// from them at the end, not a new string per character appended.
const units: number[] = []
// An array per string length, handed to String.fromCharCode: cutting
// `units` to length would be a runtime call per string.
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
  // One reader for every decode (nothing else runs during one): a reader per
  // event was garbage a fresh process paid for.
  const r = reader
  r.reset(bytes, 0, bytes.length)
  r.depth = 0
  try {
    const ctor = plan.ctor ?? (plan.ctor = namedClass(plan.desc.name))
    const obj = new ctor() as Record<string, unknown>
    initDefaults(plan, obj)
    readMessage(r, plan, obj, bytes.length, -1)
    return obj
  } finally {
    r.bytes = NO_BYTES
  }
}

const NO_BYTES = new Uint8Array(0)
const reader = new Reader(NO_BYTES)

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
