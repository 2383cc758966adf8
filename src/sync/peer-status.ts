/**
 * Reports sessions' lives on an emitter's status events (peer:connected,
 * progress, synced, disconnected, error), each error once. Refusals and
 * forks: fork-watch.ts.
 */
import type { StatusEvents } from '../core/emitter.js'
import type { TypedEmitter } from '../core/emitter/typed-emitter.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import type { PeerEventInfo } from './peer.js'
import type { SyncSession } from './session.js'

export class PeerStatus {
  /** Errors a session already reported on status, so a retry does not report them twice. */
  private readonly reported = new WeakSet<object>()

  constructor(
    private readonly status: TypedEmitter<StatusEvents>,
    /** The manager is closing: CLOSED errors are expected then, not reported. */
    private readonly closing: () => boolean,
  ) {}

  /** Forward a session's life to status events. */
  watch(session: SyncSession, describe: () => PeerEventInfo): void {
    const status = this.status
    session.on('accepted', () => status.emit('peer:connected', describe()))
    session.on('progress', (progress: { received: number; sent: number }) => status.emit('peer:progress', { ...describe(), ...progress }))
    session.on('synced', () => status.emit('peer:synced', { ...describe(), ...session.stats }))
    session.on('close', (err?: Error) => {
      status.emit('peer:disconnected', { ...describe(), error: err })
      if (err && !(this.closing() && isClosedError(err))) {
        this.reported.add(err)
        status.emit('peer:error', { ...describe(), error: err })
      }
    })
  }

  /** An attempt failed before a session was up: 'peer:error' unless its session reported it already. */
  attemptFailed(address: string, id: string | undefined, error: Error): void {
    if (!this.reported.has(error)) this.status.emit('peer:error', { address, id, error })
  }
}

function isClosedError(err: Error): boolean {
  return err instanceof HyperEmitterError && err.code === ErrorCodes.CLOSED
}
