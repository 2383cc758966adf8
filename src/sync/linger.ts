/**
 * A session's last step: close its channel once what it queued has left
 * (or the peer hung up), waiting a bounded time.
 */
import type { FrameChannel } from '../transport/channel.js'

/** How long a closing session waits for its last frames (an Error, Acks) to leave. */
const LINGER_MS = 2000
const LINGER_POLL_MS = 5

/**
 * Closes `channel` once its buffer is empty and `busy()` is false (or after
 * LINGER_MS), then calls `done`. Always a clean close: an Error frame already
 * told the peer why, and a channel closed with an error may drop it unsent
 * (tcp destroys the socket), so the reason travels in-band, not as the
 * channel's error. Returns a function that finishes at once (the peer hung up).
 */
export function closeWhenFlushed(channel: FrameChannel, busy: () => boolean, done: () => void): () => void {
  let waited = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let finished = false
  const finish = (): void => {
    if (finished) return
    finished = true
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    if (!channel.closed) channel.close()
    done()
  }
  const attempt = (): void => {
    timer = undefined
    if (channel.closed || (channel.bufferedAmount === 0 && !busy()) || waited >= LINGER_MS) {
      finish()
      return
    }
    waited += LINGER_POLL_MS
    timer = setTimeout(attempt, LINGER_POLL_MS)
  }
  attempt()
  return finish
}
