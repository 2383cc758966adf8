/**
 * hyperemitter/lean, for browser apps that use protoc-gen-es descriptors:
 * the runtime-agnostic core and WebSocket replication, without the `.proto`
 * text parser (src/browser.ts adds it). No Node built-ins may be reachable
 * from here (checked by the build).
 */
import type { DescMessage } from '@bufbuild/protobuf'
import { callable } from './core/callable.js'
import type { Db, EventMap, SchemaStream } from './core/emitter.js'
import { BrowserHyperEmitter, type BrowserOptions as HyperEmitterOptions } from './browser/emitter.js'
import type { EventMapOf, SchemaSource } from './core/codec/schema.js'

export * from './core/index.js'
export { BrowserHyperEmitter }
export type { BrowserOptions, ConnectionState } from './browser/emitter.js'
export type { TabRole } from './browser/tabs.js'
export { connectBroadcast, listenBroadcast } from './transport/broadcast.js'
export { openIndexedDb as indexedDb } from './browser/storage.js'
export type { ReplicationOptions, ConnectOptions, EventPeerMessage } from './sync/replicated.js'
export type { Peer, PeerState, IncomingPeer, Authenticate } from './sync/peers.js'

export interface HyperEmitterConstructor {
  new <const S extends readonly DescMessage[]>(db: Db | null | undefined, schema: S, opts?: HyperEmitterOptions): BrowserHyperEmitter<EventMapOf<S>>
  new <E extends EventMap = EventMap>(db?: Db | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions): BrowserHyperEmitter<E>
  new <E extends EventMap = EventMap>(options: HyperEmitterOptions): BrowserHyperEmitter<E>
  <const S extends readonly DescMessage[]>(db: Db | null | undefined, schema: S, opts?: HyperEmitterOptions): BrowserHyperEmitter<EventMapOf<S>>
  <E extends EventMap = EventMap>(db?: Db | null, schema?: SchemaSource | SchemaStream, opts?: HyperEmitterOptions): BrowserHyperEmitter<E>
  <E extends EventMap = EventMap>(options: HyperEmitterOptions): BrowserHyperEmitter<E>
  readonly prototype: BrowserHyperEmitter
}

export const HyperEmitter = callable(BrowserHyperEmitter) as unknown as HyperEmitterConstructor
export type HyperEmitter<E extends EventMap = EventMap> = BrowserHyperEmitter<E>
export default HyperEmitter
