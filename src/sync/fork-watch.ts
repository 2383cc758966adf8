/**
 * What a peer manager does with refusals and forks: reports each refusal
 * once (status 'peer:refused', and 'fork' naming the writer), not per frame
 * nor per reconnect, and heals a fork of our own writer (Log.rechain) once.
 */
import { toHex } from '../core/bytes/bytes.js'
import type { TypedEmitter } from '../core/emitter/typed-emitter.js'
import type { StatusEvents } from '../core/emitter.js'
import type { SyncableLog } from '../core/types.js'
import type { RefusalInfo } from './refusals.js'
import type { PeerEventInfo } from './peer.js'
import type { SyncSession } from './session.js'

/** Distinct refusals remembered so each is reported once (then forgotten all at once, so memory stays bounded). */
const MAX_REPORTED = 4096

/** What the watch needs of the manager around it. */
export interface ForkWatchHost {
  closing(): boolean
  /** Ends every session so each starts over with fresh clocks. */
  restart(): void
  error(err: unknown): void
}

export class ForkWatch {
  private readonly reported = new Set<string>()
  /** A fork of our own writer being healed: one at a time. */
  private healing: Promise<void> | undefined

  constructor(
    private readonly log: SyncableLog,
    private readonly status: TypedEmitter<StatusEvents>,
    private readonly host: ForkWatchHost,
  ) {}

  /** Follows a session's refusals and forks of our own writer. */
  watch(session: SyncSession, describe: () => PeerEventInfo): void {
    session.on('refused', (refusal: RefusalInfo) => this.refused(refusal, describe()))
    session.on('ownFork', (seq: number) => this.ownFork(seq))
  }

  /**
   * A writer's nodes were refused on a connection (status 'peer:refused'),
   * and for a fork, two validly signed nodes of one writer at one seq (a
   * copied db run twice), status 'fork' naming the writer: each once.
   */
  refused(refusal: RefusalInfo, peer: object): void {
    if (this.reported.size >= MAX_REPORTED) this.reported.clear()
    const key = `${refusal.by}:${refusal.writer}:${refusal.code}:${refusal.seq}`
    if (!this.reported.has(key)) {
      this.reported.add(key)
      this.status.emit('peer:refused', { ...peer, ...refusal })
    }
    if (!refusal.fork) return
    const forkSeq = refusal.error.details?.seq
    const seq = typeof forkSeq === 'number' ? forkSeq : refusal.seq
    this.fork(refusal.writer, seq, { ...peer, error: refusal.error })
  }

  /** Status 'fork' naming the writer, once per writer and seq whoever saw it first. */
  private fork(writer: string, seq: number, info: object): void {
    const key = `fork:${writer}:${seq}`
    if (this.reported.has(key)) return
    this.reported.add(key)
    this.status.emit('fork', { ...info, writer, seq })
  }

  /**
   * A peer proved the network holds a branch of our own writer we did not
   * write here (a copy of this db wrote it): our own nodes from `seq` move to
   * a new chain (status 'rechained'), and every session starts over once.
   */
  ownFork(seq: number): void {
    const rechain = this.log.rechain
    if (this.healing !== undefined || this.host.closing() || rechain === undefined) return
    this.healing = (async () => {
      const moved = await rechain.call(this.log, seq)
      if (moved === undefined || this.host.closing()) return
      // The owner reports the fork too: a relay may never see it when the tips told us first.
      this.fork(toHex(moved.from), moved.fromSeq, { own: true })
      this.status.emit('rechained', { from: toHex(moved.from), to: toHex(moved.to), fromSeq: moved.fromSeq, moved: moved.moved })
      this.host.restart()
    })()
      .catch((err) => this.host.error(err))
      .finally(() => {
        this.healing = undefined
      })
  }
}
