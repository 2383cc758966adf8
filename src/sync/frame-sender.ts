/**
 * Puts a session's frames on its channel and counts them. Remembers when the
 * channel asked us to wait (its high-water mark), until its next 'drain'.
 */
import type { FrameChannel } from '../transport/channel.js'
import type { SessionStats } from './session-options.js'

export class FrameSender {
  /** False from a send the channel could not take without buffering past its mark, until drain(). */
  writable = true

  constructor(
    private readonly channel: FrameChannel,
    private readonly stats: SessionStats,
  ) {}

  /** Queues a frame; a closed channel swallows it (the close path reports why). */
  send(frame: Uint8Array): void {
    if (this.channel.closed) return
    this.stats.framesSent++
    this.stats.bytesSent += frame.byteLength
    if (!this.channel.send(frame)) this.writable = false
  }

  drained(): void {
    this.writable = true
  }
}
