import { Duplex } from 'node:stream'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { EmitterEvent, EventMap, EventsOptions, HyperEmitterCore } from '../core/emitter.js'

/**
 * A Duplex in object mode over an emitter: what is written is emitted
 * (`{ name, payload }`), what is read are the log's events from `from`
 * ('now' by default). Reading pulls from events(), so a slow reader holds back
 * only this stream.
 */
export function createEventStream<E extends EventMap>(emitter: HyperEmitterCore<E>, options: EventsOptions = {}): Duplex {
  const events = emitter.events(options)
  let pulling = false
  const stream = new Duplex({
    objectMode: true,
    read() {
      void pull()
    },
    write(chunk: EmitterEvent<E>, _encoding, callback) {
      if (typeof chunk !== 'object' || chunk === null || typeof chunk.name !== 'string') {
        callback(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'stream writes must be { name, payload } objects'))
        return
      }
      emitter.emit(chunk.name, chunk.payload).then(() => callback(), callback)
    },
    destroy(err, callback) {
      void events.return?.()
      callback(err)
    },
  })

  async function pull(): Promise<void> {
    if (pulling) return
    pulling = true
    try {
      for (;;) {
        const next = await events.next()
        if (next.done) {
          stream.push(null)
          return
        }
        if (!stream.push(next.value)) return
      }
    } catch (err) {
      stream.destroy(err as Error)
    } finally {
      pulling = false
    }
  }

  return stream
}
