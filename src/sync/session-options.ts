/**
 * What a sync session can be told and what it reports: its options (checked
 * once, with their defaults), the verified peer, the counters and events.
 */
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { DEFAULT_MAX_CLOCK_WRITERS } from './protocol.js'
import type { RefusalInfo } from './refusals.js'

export interface SessionOptions {
  /** Keep streaming new nodes after catch-up (default true); false on either side: one catch-up, then close. */
  live?: boolean
  /** Credentials sent in our Identity, for the peer's authenticate hook. */
  token?: string
  /**
   * Called once the remote proved its key, before anything of the log is
   * sent: `writer` and `publicKey` (hex) are verified. False or a throw
   * refuses the peer (UNAUTHORIZED on both ends).
   */
  authenticate?: (peer: VerifiedPeer) => boolean | Promise<boolean>
  /**
   * This side accepted the connection (a hub): it sends its own Identity
   * (its writer id, its key) only after `authenticate` accepted the peer's.
   * Default false; two accepting sides would wait for each other forever.
   */
  accepting?: boolean
  /** Largest Nodes frame we build, in bytes (default 64 KiB, capped below the channel's maxFrameSize). */
  maxBatchBytes?: number
  /** Nodes sent and not yet acked before we stop reading the log (default 8192). */
  maxInFlight?: number
  /** Live entries queued in memory before we drop them and re-read from the log instead (default 16384: about 4 MB for a peer that lags). */
  maxLiveQueue?: number
  /** ms between Pings when nothing arrives (default 15000; 0 disables); no answer within 2 intervals closes with TIMEOUT. */
  keepAliveInterval?: number
  /** Most writers the peer's Clock may name (default 65536); more: LIMIT_EXCEEDED. */
  maxClockWriters?: number
}

/** What a session knows of its peer once the peer proved its key. */
export interface VerifiedPeer {
  /** The writer id (hex), bound to `publicKey`. */
  writer: string
  /** The peer's Ed25519 public key (hex): proven by a signature over our fresh challenge. */
  publicKey: string
  /** The token from its Identity ('' when none). */
  token: string
  remote: string
}

export interface SessionStats {
  nodesSent: number
  nodesReceived: number
  framesSent: number
  framesReceived: number
  bytesSent: number
  bytesReceived: number
}

export interface SessionEvents {
  [event: string]: (...args: any[]) => void
  /** The remote proved its key and was accepted; its writer id in hex. */
  handshake: (writer: string) => void
  /** The remote's Clock arrived: it accepted our handshake too (it sends its Clock only after its own checks). */
  accepted: () => void
  /** Nodes stored from the peer / sent to it so far. */
  progress: (progress: { received: number; sent: number }) => void
  /** Both directions of the first catch-up finished. */
  synced: () => void
  /** A writer's nodes were refused on this connection, by us or by the peer: once per writer and direction. */
  refused: (refusal: RefusalInfo) => void
  /** The peer sent a validly signed node of our own writer at a seq we wrote another node at: a copy of this db forked it (see Log.rechain). */
  ownFork: (seq: number) => void
  /** The session ended; `err` says why unless it was a clean close. Fires once. */
  close: (err?: Error) => void
  /** The error the session is closing with, just before 'close'. */
  error: (err: Error) => void
}

/** Default largest Nodes frame: 64 KiB (~600 Hello-sized nodes). */
export const DEFAULT_MAX_BATCH_BYTES = 64 * 1024
/** Default nodes sent and not yet acked. */
export const DEFAULT_MAX_IN_FLIGHT = 8192
/** Default live entries held in memory before falling back to reading the log. */
export const DEFAULT_MAX_LIVE_QUEUE = 16384
/** Default ms between keep-alive Pings on an idle session. */
export const DEFAULT_KEEP_ALIVE_INTERVAL = 15_000

/** The numeric options, checked and defaulted. */
export interface SessionLimits {
  /** Largest Nodes frame to build: fits the channel whatever the option says. */
  maxFrameBytes: number
  maxInFlight: number
  maxLiveQueue: number
  maxClockWriters: number
  keepAliveInterval: number
}

/** Checks the numeric options against a channel of `maxFrameSize`; throws INVALID_ARGUMENT for a bad one. */
export function sessionLimits(options: SessionOptions, maxFrameSize: number): SessionLimits {
  const maxBatchBytes = positiveInt(options.maxBatchBytes, DEFAULT_MAX_BATCH_BYTES, 'maxBatchBytes')
  const maxInFlight = positiveInt(options.maxInFlight, DEFAULT_MAX_IN_FLIGHT, 'maxInFlight')
  const maxLiveQueue = positiveInt(options.maxLiveQueue, DEFAULT_MAX_LIVE_QUEUE, 'maxLiveQueue')
  const maxClockWriters = positiveInt(options.maxClockWriters, DEFAULT_MAX_CLOCK_WRITERS, 'maxClockWriters')
  const keepAliveInterval = options.keepAliveInterval ?? DEFAULT_KEEP_ALIVE_INTERVAL
  if (!(Number.isFinite(keepAliveInterval) && keepAliveInterval >= 0)) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `keepAliveInterval must be >= 0 ms, got ${keepAliveInterval}`, {
      details: { option: 'keepAliveInterval' },
    })
  }
  return {
    maxFrameBytes: Math.max(1, Math.min(maxBatchBytes, maxFrameSize - 1)),
    maxInFlight,
    maxLiveQueue,
    maxClockWriters,
    keepAliveInterval,
  }
}

function positiveInt(value: number | undefined, fallback: number, option: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${option} must be a positive integer, got ${value}`, {
      details: { option },
    })
  }
  return value
}
