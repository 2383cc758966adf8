/**
 * hyperemitter for browsers: the runtime-agnostic core. No Node built-ins may
 * be reachable from here (checked by the build).
 */
import type { DescMessage } from '@bufbuild/protobuf'
import { callable } from './core/callable.js'
import { HyperEmitterCore, type Db, type EventMap, type HyperEmitterOptions, type SchemaStream } from './core/emitter.js'
import type { EventMapOf, SchemaSource } from './core/schema.js'

export * from './core/index.js'

export interface HyperEmitterConstructor {
  new <const S extends readonly DescMessage[]>(db: Db | null | undefined, schema: S, opts?: HyperEmitterOptions): HyperEmitterCore<EventMapOf<S>>
  new <E extends EventMap = EventMap>(db?: Db | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions): HyperEmitterCore<E>
  new <E extends EventMap = EventMap>(options: HyperEmitterOptions): HyperEmitterCore<E>
  <const S extends readonly DescMessage[]>(db: Db | null | undefined, schema: S, opts?: HyperEmitterOptions): HyperEmitterCore<EventMapOf<S>>
  <E extends EventMap = EventMap>(db?: Db | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions): HyperEmitterCore<E>
  <E extends EventMap = EventMap>(options: HyperEmitterOptions): HyperEmitterCore<E>
  readonly prototype: HyperEmitterCore
}

export const HyperEmitter = callable(HyperEmitterCore) as unknown as HyperEmitterConstructor
export type HyperEmitter<E extends EventMap = EventMap> = HyperEmitterCore<E>
export default HyperEmitter
