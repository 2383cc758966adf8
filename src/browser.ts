/**
 * hyperemitter for browsers: everything in hyperemitter/lean (src/lean.ts),
 * plus schemas given as `.proto` text. No Node built-ins may be reachable
 * from here (checked by the build).
 */
import { parseProtoFile } from './core/codec/proto-parse.js'
import { useProtoParser } from './core/codec/schema.js'
import type { EventMap } from './core/emitter.js'
import { HyperEmitter as LeanHyperEmitter } from './lean.js'

useProtoParser(parseProtoFile)

export * from './lean.js'
// Bound here, not only re-exported, so a bundler cannot skip this module (and the line above).
export const HyperEmitter = LeanHyperEmitter
export type HyperEmitter<E extends EventMap = EventMap> = LeanHyperEmitter<E>
export default HyperEmitter
