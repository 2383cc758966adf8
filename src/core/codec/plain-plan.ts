/**
 * Plain objects <-> protobuf binary, driven by protobuf-es descriptors: the
 * field table computed once per message type, which plain-encode.ts and
 * plain-decode.ts walk.
 *
 * Events are encoded straight from the user's object and decoded straight
 * into a plain one: no protobuf-es message in between (protobuf-es has no
 * plain-object codec). The wire format is protobuf-es' own (fields in
 * number order, packed per syntax), which the tests check byte for byte.
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

const EMPTY_BYTES = new Uint8Array(0)

// Field kinds and presence, as small ints for switch dispatch.
export const SCALAR = 0
export const ENUM = 1
export const MESSAGE = 2
export const LIST = 3
export const MAP = 4

export const IMPLICIT = 2 // FeatureSet.FieldPresence
export const REQUIRED = 3

export const WT_VARINT = 0
export const WT_I64 = 1
export const WT_LEN = 2
export const WT_SGROUP = 3
export const WT_EGROUP = 4
export const WT_I32 = 5

/** Nesting deeper than this is refused (cyclic input, hostile bytes). */
export const MAX_DEPTH = 100

export const TWO_32 = 4294967296
export const FLOAT_MAX = 3.4028234663852886e38
export const INT64_MIN = -(2n ** 63n)
export const INT64_MAX = 2n ** 63n - 1n
export const UINT64_MAX = 2n ** 64n - 1n

export interface EnumPlan {
  closed: boolean
  numbers: Set<number>
  byName: Map<string, number>
  first: number
  typeName: string
}

export interface OneofPlan {
  name: string
  localName: string
  members: FieldPlan[]
  index: number
}

export interface FieldPlan {
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

export function subPlan(f: FieldPlan): MessagePlan {
  return f.msg ?? (f.msg = planFor(f.msgDesc!))
}

export function wireTypeOf(t: ScalarType): number {
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

export function scalarZero(t: ScalarType, longAsString: boolean): unknown {
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
