/**
 * hyperemitter for Node: `HyperEmitter(db, schema, opts)`, callable with or
 * without `new`, typed by event name when given protoc-gen-es message schemas.
 */
import { callable } from './core/callable.js'
import type { EmitterKind, EventsOf, HyperEmitterConstructor as GenericConstructor } from './core/constructor.js'
import type { EventMap } from './core/emitter.js'
import type { ReplicationOptions as HyperEmitterOptions } from './sync/replicated.js'
import { NodeHyperEmitter } from './node/emitter.js'

export * from './core/index.js'
export { NodeHyperEmitter }
export type { ListenOptions, AttachOptions, HubLimits } from './node/emitter.js'
export type { HubAddress } from './node/hub-server.js'
export type { OriginPolicy } from './node/origin.js'
export type { ReplicationOptions, ConnectOptions, EventPeerMessage, DiscoveredPeer, DiscoverPolicy } from './sync/replicated.js'
export type { Peer, PeerState, IncomingPeer, Authenticate } from './sync/peers.js'
export { nodeSha256 } from './node/hash.js'

/** NodeHyperEmitter as a function of its event map, for HyperEmitterConstructor. */
interface NodeEmitterKind extends EmitterKind {
  readonly instance: NodeHyperEmitter<EventsOf<this>>
}

export type HyperEmitterConstructor = GenericConstructor<NodeEmitterKind, HyperEmitterOptions>

/** The emitter class; `HyperEmitter(...)` and `new HyperEmitter(...)` both construct. */
export const HyperEmitter = callable(NodeHyperEmitter) as unknown as HyperEmitterConstructor
export type HyperEmitter<E extends EventMap = EventMap> = NodeHyperEmitter<E>
export default HyperEmitter
