/**
 * Keep-alive: an idle session pings its peer each interval, and closes with
 * TIMEOUT when two intervals pass with nothing heard, unless this side is
 * the slow one (busy storing the peer's frames, so its answer is held up).
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { FrameSender } from './frame-sender.js'
import { pingFrame } from './protocol.js'
import type { SessionStats } from './session-options.js'

/** What keep-alive needs of the session around it. */
export interface KeepAliveHost {
  readonly closed: boolean
  readonly remote: string
  /** Busy with the peer's frames: its answer may be queued behind them. */
  readonly stalled: boolean
  fail(err: unknown): void
}

export class KeepAlive {
  private timer?: ReturnType<typeof setInterval>
  private framesAtTick = 0
  private pingOutstanding = false
  private missedTicks = 0
  private pingNonce = 0
  private pongsReceived = 0

  constructor(
    /** ms between Pings; 0 disables keep-alive. */
    private readonly interval: number,
    private readonly stats: SessionStats,
    private readonly sender: FrameSender,
    private readonly host: KeepAliveHost,
  ) {}

  start(): void {
    if (this.interval > 0) this.timer = setInterval(this.tick, this.interval)
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Any frame shows the peer is alive, not only the Pong (which may queue behind Nodes). */
  heard(): void {
    this.pingOutstanding = false
  }

  pong(): void {
    this.pongsReceived++
  }

  private readonly tick = (): void => {
    if (this.host.closed) return
    if (this.pingOutstanding) {
      // We are the slow side: while we store its frames we stop reading, so its answer cannot reach us yet.
      if (this.host.stalled) return
      if (++this.missedTicks >= 2) {
        this.host.fail(
          new HyperEmitterError(
            ErrorCodes.TIMEOUT,
            `no answer from ${this.host.remote} within ${2 * this.interval} ms`,
            { details: { keepAliveInterval: this.interval, remote: this.host.remote } },
          ),
        )
      }
      return
    }
    // Pongs do not count as activity, so an idle session pings every interval.
    const activity = this.stats.framesReceived - this.pongsReceived
    if (activity !== this.framesAtTick) {
      this.framesAtTick = activity
      return
    }
    this.pingOutstanding = true
    this.missedTicks = 0
    try {
      this.sender.send(pingFrame(++this.pingNonce))
    } catch (err) {
      this.host.fail(err)
    }
  }
}
