// Shared by the socket channels: cheap private copies of small frames.

/** Frames up to this size are copied into a shared slab rather than given an ArrayBuffer each. */
const SLAB_FRAME_MAX = 1024
const SLAB_SIZE = 8 * 1024

let slab = new Uint8Array(SLAB_SIZE)
let slabUsed = 0

/**
 * A private copy of `frame`. Small frames share an 8 KiB slab (one
 * allocation per many frames: a fresh ArrayBuffer per 100-byte frame costs
 * more in allocation and GC than the copy itself); larger ones get their own.
 * The result may share its ArrayBuffer with other frames: never transfer or
 * detach `copy.buffer`.
 */
export function copyFrame(frame: Uint8Array): Uint8Array {
  const len = frame.byteLength
  if (len > SLAB_FRAME_MAX) return frame.slice()
  if (SLAB_SIZE - slabUsed < len) {
    slab = new Uint8Array(SLAB_SIZE)
    slabUsed = 0
  }
  const out = slab.subarray(slabUsed, slabUsed + len)
  out.set(frame)
  slabUsed += len
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
