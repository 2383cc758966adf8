/**
 * The type of an exported `HyperEmitter`: callable with or without `new`, and
 * typed by event name when given protoc-gen-es message schemas. Each entry
 * (Node, browser, lean) names its own emitter class and options through it.
 */
import type { DescMessage } from '@bufbuild/protobuf'
import type { EventMapOf, SchemaSource } from './codec/schema.js'
import type { DbInput, EventMap, SchemaStream } from './emitter.js'

/**
 * An emitter class as a function of its event map: `instance` is the class
 * with `E` applied (extend it with `instance: MyEmitter<EventsOf<this>>`).
 * `E` is unknown here, not EventMap: intersected with EventMap's index
 * signature, a typed map would accept any event name.
 */
export interface EmitterKind {
  readonly E: unknown
  readonly instance: unknown
}

/** The event map a kind is applied to. */
export type EventsOf<K extends EmitterKind> = Extract<K['E'], EventMap>

/** `K`'s emitter for event map `E`. */
export type EmitterFor<K extends EmitterKind, E extends EventMap> = (K & { readonly E: E })['instance']

export interface HyperEmitterConstructor<K extends EmitterKind, O> {
  /** Typed by the given generated message schemas: emit/on check names and shapes. */
  new <const S extends readonly DescMessage[]>(db: DbInput | null | undefined, schema: S, opts?: O): EmitterFor<K, EventMapOf<S>>
  new <E extends EventMap = EventMap>(db?: DbInput | null, schema?: SchemaSource | SchemaStream, opts?: O): EmitterFor<K, E>
  new <E extends EventMap = EventMap>(options: O): EmitterFor<K, E>
  <const S extends readonly DescMessage[]>(db: DbInput | null | undefined, schema: S, opts?: O): EmitterFor<K, EventMapOf<S>>
  <E extends EventMap = EventMap>(db?: DbInput | null, schema?: SchemaSource | SchemaStream, opts?: O): EmitterFor<K, E>
  <E extends EventMap = EventMap>(options: O): EmitterFor<K, E>
  readonly prototype: EmitterFor<K, EventMap>
}
