// Shared by the socket channels: cheap private copies of small frames.
import { Slab } from '../core/bytes/slab.js'

/** Frames up to this size are copied into a shared slab rather than given an ArrayBuffer each. */
const SLAB_FRAME_MAX = 1024
const SLAB_SIZE = 8 * 1024

const frames = new Slab(SLAB_SIZE, SLAB_FRAME_MAX)

/**
 * A private copy of `frame`: small frames share a slab (a fresh ArrayBuffer
 * per small frame costs more than the copy); larger ones get their own.
 * The result may share its ArrayBuffer with other frames: never transfer or
 * detach `copy.buffer`.
 */
export function copyFrame(frame: Uint8Array): Uint8Array {
  const out = frames.alloc(frame.byteLength)
  out.set(frame)
  return out
}

/**
 * Detach a received frame from the (much larger) chunk it was read into, so
 * holding the frame does not pin the chunk: a frame that is at least half of
 * its buffer is returned as is, others are copied with copyFrame().
 */
export function ownFrame(view: Uint8Array): Uint8Array {
  return view.byteLength * 2 >= view.buffer.byteLength ? view : copyFrame(view)
}
