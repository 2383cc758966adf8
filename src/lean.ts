/**
 * hyperemitter/lean, for browser apps that use protoc-gen-es descriptors:
 * the runtime-agnostic core and WebSocket replication, without the `.proto`
 * text parser (src/browser.ts adds it). No Node built-ins may be reachable
 * from here (checked by the build).
 */
import { callable } from './core/callable.js'
import type { EmitterKind, EventsOf, HyperEmitterConstructor as GenericConstructor } from './core/constructor.js'
import type { EventMap } from './core/emitter.js'
import { BrowserHyperEmitter, type BrowserOptions as HyperEmitterOptions } from './browser/emitter.js'

export * from './core/index.js'
export { BrowserHyperEmitter }
export type { BrowserOptions, ConnectionState } from './browser/emitter.js'
export type { TabRole } from './browser/tabs.js'
export { connectBroadcast, listenBroadcast } from './transport/broadcast.js'
export { indexedDb } from './browser/storage.js'
export type { IndexedDb } from './browser/idb.js'
export type { LiteDb, LiteSublevel, LiteIterator } from './core/db/lite.js'
export type { ReplicationOptions, ConnectOptions, EventPeerMessage } from './sync/replicated.js'
export type { Peer, PeerState, IncomingPeer, Authenticate } from './sync/peers.js'

/** BrowserHyperEmitter as a function of its event map, for HyperEmitterConstructor. */
interface BrowserEmitterKind extends EmitterKind {
  readonly instance: BrowserHyperEmitter<EventsOf<this>>
}

export type HyperEmitterConstructor = GenericConstructor<BrowserEmitterKind, HyperEmitterOptions>

export const HyperEmitter = callable(BrowserHyperEmitter) as unknown as HyperEmitterConstructor
export type HyperEmitter<E extends EventMap = EventMap> = BrowserHyperEmitter<E>
export default HyperEmitter
