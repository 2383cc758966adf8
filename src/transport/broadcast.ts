/**
 * Frame channels between browsing contexts of one origin (tabs, workers),
 * over BroadcastChannel.
 *
 * A host listens on a rendezvous name. A client opens a private
 * BroadcastChannel named `${rendezvous}#${id}` and posts `{ t: 'open', id }`
 * on the rendezvous; the host opens the same private name and answers
 * `{ t: 'ready' }` on it. From then on only those two objects share the
 * private name, so other tabs never receive (or pay for) their frames, and
 * nothing is posted before the other end exists to receive it.
 *
 * BroadcastChannel has neither backpressure nor a close signal:
 *  - send() posts at once (the structured clone copies the frame, so the
 *    caller may reuse its buffer) and never reports a full buffer;
 *  - received frames wait while paused, bounded by maxQueuedBytes;
 *  - each side may name a Web Lock it holds for its whole life (`life`); the
 *    other side queues a request for that lock, which the browser grants the
 *    moment the holder's page is gone: the channel then closes with
 *    CONNECTION_FAILED instead of waiting for a keep-alive timeout;
 *  - close() posts `{ t: 'end' }` (with the error's code and message, if any).
 */
import { ErrorCodes, HyperEmitterError, isHyperEmitterError, type ErrorCode } from '../core/errors.js'
import { asError, checkOutgoing, DEFAULT_MAX_FRAME_SIZE, type FrameChannel, type FrameChannelOptions } from './channel.js'
import { defaultMaxQueuedBytes, InboxChannel } from './channel-base.js'

const PROTOCOL = 1

export interface BroadcastChannelOptions extends FrameChannelOptions {
  /** Most bytes of frames held while paused (default 4 x maxFrameSize, at least 1 MiB); over it: LIMIT_EXCEEDED. */
  maxQueuedBytes?: number
  /** Name of a Web Lock this side holds for its whole life, so the other side sees it go (granted to it once this side's page is gone). */
  life?: string
}

export interface ConnectBroadcastOptions extends BroadcastChannelOptions {
  /** Give up (CONNECTION_FAILED) when no host answered within this many ms (default 2000). */
  timeout?: number
}

/** The BroadcastChannel constructor, if this runtime has one. */
function broadcastChannelClass(): typeof BroadcastChannel | undefined {
  return typeof BroadcastChannel === 'function' ? BroadcastChannel : undefined
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12))
  let out = ''
  for (const b of bytes) out += b.toString(16).padStart(2, '0')
  return out
}

type PairMessage =
  | { t: 'ready'; life?: string }
  | { t: 'f'; f: Uint8Array }
  | { t: 'end'; code?: string; message?: string }

interface OpenMessage {
  t: 'open'
  v: number
  id: string
  life?: string
}

/**
 * Listen for clients on `rendezvous`; `onChannel` gets each one's channel.
 * Returns a function that stops listening (open channels stay open).
 * Throws NOT_SUPPORTED where BroadcastChannel is missing.
 */
export function listenBroadcast(
  rendezvous: string,
  onChannel: (channel: FrameChannel) => void,
  options: BroadcastChannelOptions = {},
): () => void {
  const BC = broadcastChannelClass()
  if (!BC) throw new HyperEmitterError(ErrorCodes.NOT_SUPPORTED, 'BroadcastChannel is not available in this runtime')
  const control = new BC(rendezvous)
  let listening = true
  control.onmessage = (event: MessageEvent) => {
    const msg = event.data as OpenMessage
    if (!listening || typeof msg !== 'object' || msg === null || msg.t !== 'open' || typeof msg.id !== 'string') return
    if (msg.v !== PROTOCOL) return
    const pair = new BC(`${rendezvous}#${msg.id}`)
    const channel = new BroadcastFrameChannel(pair, `broadcast:${rendezvous}#${msg.id}`, options, msg.life)
    pair.postMessage({ t: 'ready', life: options.life } satisfies PairMessage)
    try {
      onChannel(channel)
    } catch (err) {
      channel.close(asError(err))
    }
  }
  return () => {
    if (!listening) return
    listening = false
    control.close()
  }
}

/**
 * Open a channel to whoever listens on `rendezvous`; resolves once it
 * answered. Rejects NOT_SUPPORTED without BroadcastChannel, CONNECTION_FAILED
 * when nobody answers within `timeout` ms.
 */
export function connectBroadcast(rendezvous: string, options: ConnectBroadcastOptions = {}): Promise<FrameChannel> {
  const BC = broadcastChannelClass()
  if (!BC) return Promise.reject(new HyperEmitterError(ErrorCodes.NOT_SUPPORTED, 'BroadcastChannel is not available in this runtime'))
  const { timeout = 2000, ...channelOptions } = options
  const id = randomId()
  const pair = new BC(`${rendezvous}#${id}`)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pair.onmessage = null
      pair.close()
      reject(
        new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `no answer on broadcast:${rendezvous} within ${timeout} ms`, {
          details: { rendezvous, timeout },
        }),
      )
    }, timeout)
    pair.onmessage = (event: MessageEvent) => {
      const msg = event.data as PairMessage
      if (typeof msg !== 'object' || msg === null || msg.t !== 'ready') return
      clearTimeout(timer)
      pair.onmessage = null
      resolve(new BroadcastFrameChannel(pair, `broadcast:${rendezvous}#${id}`, channelOptions, msg.life))
    }
    const control = new BC(rendezvous)
    control.postMessage({ t: 'open', v: PROTOCOL, id, life: channelOptions.life } satisfies OpenMessage)
    control.close()
  })
}

class BroadcastFrameChannel extends InboxChannel implements FrameChannel {
  readonly kind = 'broadcast' as const
  readonly remote: string
  readonly maxFrameSize: number
  readonly bufferedAmount = 0
  private readonly bc: BroadcastChannel
  private readonly watch: AbortController | undefined
  /** The other side already said goodbye: close without answering. */
  private peerEnded = false

  constructor(bc: BroadcastChannel, remote: string, options: BroadcastChannelOptions, remoteLife: string | undefined) {
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    // Frames already received still count after the other side's goodbye, even with no listener yet.
    super({ maxQueuedBytes: options.maxQueuedBytes ?? defaultMaxQueuedBytes(maxFrameSize), peerCloseWaitsForEveryFrame: true })
    this.bc = bc
    this.remote = remote
    this.maxFrameSize = maxFrameSize
    bc.onmessage = (event: MessageEvent) => this.onMessage(event.data as PairMessage)
    bc.onmessageerror = () => this.close(new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `a message from ${remote} could not be deserialized`))
    const locks = typeof navigator === 'object' ? (navigator as Navigator).locks : undefined
    if (remoteLife && locks) {
      // Granted only once the other side's page (or its holder) is gone.
      this.watch = new AbortController()
      locks
        .request(remoteLife, { signal: this.watch.signal }, () => {
          this.close(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `${remote} went away`))
        })
        .catch(() => {})
    }
  }

  send(frame: Uint8Array): boolean {
    checkOutgoing(this, frame)
    // A view's whole underlying buffer would be cloned: post exactly the frame's bytes.
    const exact = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength ? frame : frame.slice()
    this.bc.postMessage({ t: 'f', f: exact } satisfies PairMessage)
    return true
  }

  protected closeTransport(err: Error | undefined): void {
    if (!this.peerEnded) {
      try {
        this.bc.postMessage(
          err === undefined
            ? ({ t: 'end' } satisfies PairMessage)
            : ({ t: 'end', code: isHyperEmitterError(err) ? err.code : ErrorCodes.CONNECTION_FAILED, message: err.message } satisfies PairMessage),
        )
      } catch {
        // Closing anyway.
      }
    }
    this.bc.onmessage = null
    this.bc.close()
    this.watch?.abort()
  }

  private onMessage(msg: PairMessage): void {
    if (this.closed || typeof msg !== 'object' || msg === null) return
    if (msg.t === 'f') {
      const frame = msg.f
      if (!(frame instanceof Uint8Array)) {
        this.close(new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `${this.remote} sent a frame that is not bytes`))
        return
      }
      this.receive(frame)
      return
    }
    if (msg.t === 'end') {
      const err =
        msg.code === undefined
          ? undefined
          : new HyperEmitterError(knownCode(msg.code), `${this.remote} closed: ${String(msg.message ?? '').slice(0, 1024)}`)
      this.closeAfterInbox(() => {
        this.peerEnded = true
        this.close(err)
      })
    }
  }
}

const CODES = new Set<string>(Object.values(ErrorCodes))

function knownCode(code: string): ErrorCode {
  return CODES.has(code) ? (code as ErrorCode) : ErrorCodes.CONNECTION_FAILED
}
