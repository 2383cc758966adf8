import type { Duplex } from 'node:stream'
import { HyperEmitterCore, type EventMap, type EventsOptions, type HyperEmitterOptions } from '../core/emitter.js'
import { nodeSha256 } from './hash.js'
import { createEventStream } from './stream.js'

/** HyperEmitter for Node: the core plus streams, node:crypto hashing and (with sync) TCP/WebSocket peers. */
export class NodeHyperEmitter<E extends EventMap = EventMap> extends HyperEmitterCore<E> {
  protected static override defaultOptions(): HyperEmitterOptions {
    return { hash: nodeSha256 }
  }

  /**
   * A Duplex in object mode: write `{ name, payload }` to emit, read the log's
   * events as `{ name, payload }`. `from: 'beginning'` replays the whole log;
   * the default starts at the moment of this call.
   */
  stream(options: EventsOptions = {}): Duplex {
    return createEventStream(this, options)
  }
}
