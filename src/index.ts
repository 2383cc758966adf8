/**
 * hyperemitter for Node: `HyperEmitter(db, schema, opts)`, callable with or
 * without `new`, typed by event name when given protoc-gen-es message schemas.
 */
import type { DescMessage } from '@bufbuild/protobuf'
import { callable } from './core/callable.js'
import type { Db, EventMap, SchemaStream } from './core/emitter.js'
import type { ReplicationOptions as HyperEmitterOptions } from './sync/replicated.js'
import type { EventMapOf, SchemaSource } from './core/codec/schema.js'
import { NodeHyperEmitter } from './node/emitter.js'

export * from './core/index.js'
export { NodeHyperEmitter }
export type { ListenOptions, AttachOptions, HubLimits } from './node/emitter.js'
export type { HubAddress } from './node/hub-server.js'
export type { OriginPolicy } from './node/origin.js'
export type { ReplicationOptions, ConnectOptions, EventPeerMessage, DiscoveredPeer, DiscoverPolicy } from './sync/replicated.js'
export type { Peer, PeerState, IncomingPeer, Authenticate } from './sync/peers.js'
export { nodeSha256 } from './node/hash.js'

export interface HyperEmitterConstructor {
  /** Typed by the given generated message schemas: emit/on check names and shapes. */
  new <const S extends readonly DescMessage[]>(db: Db | null | undefined, schema: S, opts?: HyperEmitterOptions): NodeHyperEmitter<EventMapOf<S>>
  new <E extends EventMap = EventMap>(db?: Db | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions): NodeHyperEmitter<E>
  new <E extends EventMap = EventMap>(options: HyperEmitterOptions): NodeHyperEmitter<E>
  <const S extends readonly DescMessage[]>(db: Db | null | undefined, schema: S, opts?: HyperEmitterOptions): NodeHyperEmitter<EventMapOf<S>>
  <E extends EventMap = EventMap>(db?: Db | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions): NodeHyperEmitter<E>
  <E extends EventMap = EventMap>(options: HyperEmitterOptions): NodeHyperEmitter<E>
  readonly prototype: NodeHyperEmitter
}

/** The emitter class; `HyperEmitter(...)` and `new HyperEmitter(...)` both construct. */
export const HyperEmitter = callable(NodeHyperEmitter) as unknown as HyperEmitterConstructor
export type HyperEmitter<E extends EventMap = EventMap> = NodeHyperEmitter<E>
export default HyperEmitter
