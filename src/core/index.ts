/** The runtime-agnostic core, shared by the Node and browser entries. */
export { HyperEmitterCore } from './emitter.js'
export type {
  Db,
  DbInput,
  EventMap,
  EmitterEvent,
  EventsOptions,
  Handler,
  HyperEmitterOptions,
  SchemaStream,
  StartPosition,
  StatusEvents,
} from './emitter.js'
export { ErrorCodes, HyperEmitterError, isHyperEmitterError } from './errors.js'
export type { ErrorCode } from './errors.js'
export type { Callback } from './callback.js'
export { Log } from './log/log.js'
export type { LogOptions } from './log/log.js'
export { Codecs } from './codec/schema.js'
export type { Codec, MessageCodec, SchemaSource, EventMapOf, PlainOf } from './codec/schema.js'
export type { AddOptions, Clock, HashFn, LogEntry, ReadOptions } from './types.js'
export { sha256 } from './bytes/hash.js'
export { callable } from './callable.js'
