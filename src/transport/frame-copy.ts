// Shared by the socket channels: how a received frame is handed out.

/** Frames up to this size are copied into a shared slab rather than given an ArrayBuffer each. */
const SLAB_FRAME_MAX = 1024
const SLAB_SIZE = 8 * 1024

let slab = new Uint8Array(SLAB_SIZE)
let slabUsed = 0

/**
 * Detach a received frame from the (much larger) chunk it was read into, so
 * holding the frame does not pin the chunk. A frame that is at least half of
 * its buffer is returned as is; a small one is copied into a shared 8 KiB slab
 * (one allocation per many frames: per-frame ArrayBuffers cost more in
 * allocation and GC than the copy); others get a copy of their own. The
 * result may share its ArrayBuffer with other frames: never transfer or
 * detach `frame.buffer`.
 */
export function ownFrame(view: Uint8Array): Uint8Array {
  const len = view.byteLength
  if (len * 2 >= view.buffer.byteLength) return view
  if (len > SLAB_FRAME_MAX) return view.slice()
  if (SLAB_SIZE - slabUsed < len) {
    slab = new Uint8Array(SLAB_SIZE)
    slabUsed = 0
  }
  const out = slab.subarray(slabUsed, slabUsed + len)
  out.set(view)
  slabUsed += len
  return out
}
