import type WebSocket from 'isomorphic-ws'
import { ErrorCodes, HyperEmitterError, isHyperEmitterError } from '../core/errors.js'
import { checkOutgoing, DEFAULT_MAX_FRAME_SIZE, sendLimits, type FrameChannel, type FrameChannelOptions } from './channel.js'
import { defaultMaxQueuedBytes, InboxChannel } from './channel-base.js'
import { copyFrame, ownFrame } from './frame-copy.js'

// Runs in browsers and Node alike: no Node imports, no Buffer. Node-only
// speed-ups (socket cork, socket pause, socket 'drain') are reached by duck
// typing the `ws` object, and skipped when absent.

const CONNECTING = 0
const OPEN = 1
const CLOSED = 3

/**
 * How long a closing `ws` socket may wait for the peer's close frame before
 * it is terminated (ws's own wait is 30 s, and keeps the process alive).
 */
const CLOSE_GRACE_MS = 2000

/** How often bufferedAmount is polled while above the high-water mark (browsers have no 'drain'). */
const DRAIN_POLL_MS = 5
/** What one unsent message costs a `ws` socket beyond its bytes (its write queue entry), counted against maxBufferedBytes. */
const QUEUED_MESSAGE_COST = 256

/**
 * Close codes this channel sends. Browsers only let scripts send 1000 and
 * 3000-4999, so errors use the application range; the receiving side maps
 * them (and the matching 1xxx codes `ws` itself sends) back to error codes.
 */
export const WebSocketCloseCodes = {
  NORMAL: 1000,
  ERROR: 4000,
  PROTOCOL_ERROR: 4002,
  LIMIT_EXCEEDED: 4008,
  FRAME_TOO_LARGE: 4009,
} as const

/** What the channel needs of a WebSocket: met by the browser's WebSocket and by `ws`. */
export interface WebSocketLike {
  readonly readyState: number
  readonly bufferedAmount: number
  binaryType: string
  readonly url?: string
  send(data: Uint8Array): void
  close(code?: number, reason?: string): void
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  addEventListener(type: string, listener: (event: any) => void): void
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  removeEventListener(type: string, listener: (event: any) => void): void
}

export interface WebSocketChannelOptions extends FrameChannelOptions {
  /**
   * Most bytes of frames held while the channel is paused. Browsers cannot
   * stop a WebSocket from reading, so frames keep arriving during pause();
   * they wait here and go out on resume(). Each frame counts at least 64
   * bytes. Over the bound the channel closes with LIMIT_EXCEEDED.
   * Default: 4 x maxFrameSize, at least 1 MiB. (With Node's `ws` the socket
   * itself is paused too, so only frames already in flight are held.)
   */
  maxQueuedBytes?: number
  /** Description of the other end for `channel.remote` (default: the socket's url). */
  remote?: string
}

export interface ConnectWebSocketOptions extends WebSocketChannelOptions {
  /** WebSocket subprotocols to offer. */
  protocols?: string | string[]
  /** Give up (CONNECTION_FAILED) when not open after this many ms. */
  timeout?: number
  /** Node only: the DNS lookup the socket uses (see node:net); browsers ignore it. */
  lookup?: unknown
}

/** The parts of a Node `ws` WebSocket used when present (never in browsers). */
interface NodeSocketLike {
  cork?: () => void
  uncork?: () => void
  once?: (event: 'drain', listener: () => void) => unknown
  off?: (event: 'drain', listener: () => void) => unknown
  end?: (done?: () => void) => unknown
  destroy?: () => unknown
  destroyed?: boolean
}
interface NodeWsExtras {
  _socket?: NodeSocketLike | null
  _receiver?: { _maxPayload?: number } | null
  send?: (data: Uint8Array, cb: (err?: Error) => void) => void
  _isServer?: boolean
  terminate?: () => void
  pause?: () => void
  resume?: () => void
}

/**
 * Wrap an open (or still opening) WebSocket as a FrameChannel: one binary
 * message per frame. Frames sent while it is opening are queued and sent on
 * open. A text message closes it with PROTOCOL_ERROR, an oversize one with
 * FRAME_TOO_LARGE. A 'frame' listener that throws closes it with that error.
 */
export function createWebSocketChannel(ws: WebSocketLike, options: WebSocketChannelOptions = {}): FrameChannel {
  return new WebSocketChannel(ws, options)
}

/**
 * Open a WebSocket to `url` and resolve to its channel once open. Rejects
 * INVALID_ARGUMENT for a URL that is not ws: or wss:, and CONNECTION_FAILED
 * (with the underlying error as cause when the runtime gives one) when the
 * socket errors, closes or times out before opening.
 */
export async function connectWebSocket(url: string, options: ConnectWebSocketOptions = {}): Promise<FrameChannel> {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (cause) {
    return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `not a valid URL: ${String(url)}`, { cause }))
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    return Promise.reject(
      new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `WebSocket URL must use ws: or wss:, got ${parsed.protocol}`, {
        details: { url },
      }),
    )
  }
  const { protocols, timeout, lookup, ...channelOptions } = options
  const maxFrameSize = channelOptions.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
  const WebSocket = await loadWebSocket()
  return new Promise((resolve, reject) => {
    let ws: WebSocket
    try {
      // The third argument is `ws`'s options (browsers ignore it): refuse oversize
      // messages while parsing their header, and never negotiate compression.
      ws = new WebSocket(url, protocols, { maxPayload: maxFrameSize, perMessageDeflate: false, ...(lookup === undefined ? {} : { lookup }) } as object)
    } catch (cause) {
      reject(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `could not open ${url}: ${describe(cause)}`, { cause }))
      return
    }
    ws.binaryType = 'arraybuffer'
    let timer: ReturnType<typeof setTimeout> | undefined
    let settled = false
    const settle = () => {
      settled = true
      if (timer !== undefined) clearTimeout(timer)
      ws.removeEventListener('open', onOpen)
      ws.removeEventListener('error', onError)
      ws.removeEventListener('close', onClose)
    }
    const fail = (message: string, cause: unknown, details?: Record<string, unknown>) => {
      if (settled) return
      settle()
      // Keep a listener: `ws` emits 'error' when a connecting socket is closed, and an
      // EventEmitter 'error' with no listener would crash Node.
      ws.addEventListener('error', ignore)
      try {
        if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close()
      } catch {
        // Closing a socket that failed to open can throw in some runtimes; it is dead either way.
      }
      reject(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, message, { cause, details: { url, ...details } }))
    }
    const onOpen = () => {
      if (settled) return
      settle()
      try {
        resolve(createWebSocketChannel(ws, { remote: url, ...channelOptions }))
      } catch (err) {
        ws.addEventListener('error', ignore)
        ws.close()
        reject(err)
      }
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const onError = (event: any) => {
      const cause = event?.error
      fail(`could not open ${url}${cause ? `: ${describe(cause)}` : ''}`, cause)
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const onClose = (event: any) => {
      fail(`${url} closed before opening (code ${event?.code})`, undefined, { code: event?.code, reason: event?.reason })
    }
    ws.addEventListener('open', onOpen)
    ws.addEventListener('error', onError)
    ws.addEventListener('close', onClose)
    if (timeout !== undefined && timeout > 0) {
      timer = setTimeout(
        () =>
          fail(
            `could not open ${url} within ${timeout} ms`,
            new HyperEmitterError(ErrorCodes.TIMEOUT, `no open after ${timeout} ms`, { details: { timeout } }),
          ),
        timeout,
      )
    }
  })
}

let webSocketClass: Promise<typeof WebSocket> | undefined
/** `ws` in Node, the built-in in browsers; loaded on the first connect, so a process that never dials never pays for it. */
function loadWebSocket(): Promise<typeof WebSocket> {
  webSocketClass ??= import('isomorphic-ws').then((m) => m.default)
  return webSocketClass
}

function ignore(): void {}

function describe(value: unknown): string {
  return value instanceof Error ? value.message : String(value)
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return ownFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  // An ArrayBuffer from another realm (e.g. a worker) fails instanceof.
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return new Uint8Array(data as ArrayBuffer)
  return undefined
}

/** Close code to send for a local error. */
function closeCodeFor(err: Error): number {
  if (isHyperEmitterError(err, ErrorCodes.FRAME_TOO_LARGE)) return WebSocketCloseCodes.FRAME_TOO_LARGE
  if (isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)) return WebSocketCloseCodes.PROTOCOL_ERROR
  if (isHyperEmitterError(err, ErrorCodes.LIMIT_EXCEEDED)) return WebSocketCloseCodes.LIMIT_EXCEEDED
  return WebSocketCloseCodes.ERROR
}

/** A close reason must fit in 123 UTF-8 bytes. */
function closeReason(err: Error): string {
  const text = err.message
  if (text.length <= 60) return text
  return `${text.slice(0, 57)}...`
}

/** Error (or none, for a clean close) that a close code received from the peer stands for. */
function errorForCloseCode(remote: string, code: number, reason: string): HyperEmitterError | undefined {
  const details = { code, reason }
  const said = reason ? `: ${reason}` : ''
  switch (code) {
    case 1000: // normal
    case 1001: // going away
    case 1005: // no status given
      return undefined
    case 1009:
    case WebSocketCloseCodes.FRAME_TOO_LARGE:
      return new HyperEmitterError(ErrorCodes.FRAME_TOO_LARGE, `${remote} refused a frame as too large${said}`, { details })
    case 1002:
    case 1003:
    case 1007:
    case WebSocketCloseCodes.PROTOCOL_ERROR:
      return new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `${remote} closed with a protocol error${said}`, { details })
    case WebSocketCloseCodes.LIMIT_EXCEEDED:
      return new HyperEmitterError(ErrorCodes.LIMIT_EXCEEDED, `${remote} closed: a limit was exceeded${said}`, { details })
    default:
      return new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `connection to ${remote} lost (close code ${code})${said}`, {
        details,
      })
  }
}

class WebSocketChannel extends InboxChannel implements FrameChannel {
  readonly kind = 'websocket' as const
  readonly remote: string
  readonly maxFrameSize: number
  private readonly ws: WebSocketLike
  private readonly node: NodeWsExtras
  private readonly highWaterMark: number
  /** Messages handed to a `ws` socket whose write has not completed (Node only; browsers do not say). */
  private unsent = 0

  /** Frames sent before the socket opened. */
  private preOpen: Uint8Array[] = []
  private preOpenBytes = 0
  private corked: NodeSocketLike | null = null
  private needDrain = false
  private drainTimer: ReturnType<typeof setTimeout> | undefined
  private drainSocket: NodeSocketLike | null = null
  readonly released: Promise<void>
  private release!: () => void

  constructor(ws: WebSocketLike, options: WebSocketChannelOptions) {
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    const maxQueuedBytes = options.maxQueuedBytes ?? defaultMaxQueuedBytes(maxFrameSize)
    if (!Number.isInteger(maxFrameSize) || maxFrameSize < 0) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `maxFrameSize must be a non-negative integer, got ${maxFrameSize}`)
    }
    const limits = sendLimits(options, maxFrameSize)
    if (!(maxQueuedBytes >= maxFrameSize)) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `maxQueuedBytes must be at least maxFrameSize, got ${maxQueuedBytes}`)
    }
    super({ maxQueuedBytes, sendLimits: limits })
    this.released = new Promise((resolve) => (this.release = resolve))
    this.ws = ws
    this.node = ws as unknown as NodeWsExtras
    this.maxFrameSize = maxFrameSize
    this.highWaterMark = limits.highWaterMark
    this.remote = options.remote ?? ws.url ?? 'websocket://unknown'

    // Node's `ws` hands out 'arraybuffer' messages as a fresh ArrayBuffer each
    // (a copy and an external allocation per frame: over half the receive cost
    // for small frames); its Buffers are views of the read chunk, which
    // ownFrame() detaches more cheaply. Browsers get 'arraybuffer'.
    ws.binaryType = typeof this.node._isServer === 'boolean' ? 'nodebuffer' : 'arraybuffer'
    ws.addEventListener('message', this.onMessage)
    ws.addEventListener('close', this.onClose)
    ws.addEventListener('close', this.release)
    if (ws.readyState === CLOSED) this.release()
    ws.addEventListener('error', this.onError)
    if (ws.readyState === CONNECTING) ws.addEventListener('open', this.onOpen)
    else if (ws.readyState !== OPEN) {
      // Already closing or closed: report it once listeners have had a chance to attach.
      queueMicrotask(() =>
        this.close(new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `WebSocket to ${this.remote} is already closed`)),
      )
    }
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount + this.preOpenBytes
  }

  send(frame: Uint8Array): boolean {
    checkOutgoing(this, frame)
    const ws = this.ws
    if (ws.readyState === CONNECTING) {
      this.preOpen.push(copyFrame(frame))
      this.preOpenBytes += frame.byteLength
    } else {
      this.cork()
      // Browsers copy on send and `ws` copies when masking (client side); only a
      // `ws` server socket would keep the caller's buffer, which it may reuse.
      this.sendNow(this.node._isServer === true ? copyFrame(frame) : frame)
    }
    this.sendQueued(this.queuedCost)
    const below = this.queuedCost < this.highWaterMark
    if (!below && !this.needDrain) {
      this.needDrain = true
      this.watchDrain()
    }
    return below
  }

  /** What waits to reach the peer, as it weighs in memory. */
  private get queuedCost(): number {
    return this.bufferedAmount + this.unsent * QUEUED_MESSAGE_COST
  }

  /** One message out; with `ws`, counted until its write completes. */
  private sendNow(frame: Uint8Array): void {
    if (typeof this.node._isServer !== 'boolean') {
      this.ws.send(frame)
      return
    }
    this.unsent++
    this.node.send!.call(this.ws, frame, this.onSent)
  }

  private readonly onSent = (): void => {
    this.unsent--
    this.sendQueued(this.queuedCost)
  }

  protected override limitIncoming(bytes: number): void {
    // `ws` then refuses an oversize message from its header, before buffering it.
    const receiver = this.node._receiver
    if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes
  }

  protected override holdSource(): void {
    if (typeof this.node.pause === 'function' && this.ws.readyState === OPEN) this.node.pause()
  }

  protected override releaseSource(): void {
    if (typeof this.node.resume === 'function' && this.ws.readyState === OPEN) this.node.resume()
  }

  protected closeTransport(err: Error | undefined): void {
    this.stopDrainWatch()
    this.preOpen = []
    this.preOpenBytes = 0
    const ws = this.ws
    ws.removeEventListener('open', this.onOpen)
    try {
      const live = ws.readyState === CONNECTING || ws.readyState === OPEN
      if (live && err === undefined) ws.close(WebSocketCloseCodes.NORMAL)
      else if (live) ws.close(closeCodeFor(err!), closeReason(err!))
      const terminate = this.node.terminate
      const socket = this.node._socket
      // A peer over a bound (one that stopped reading, say) would never read our close frame either.
      if (live && typeof terminate === 'function' && isHyperEmitterError(err, ErrorCodes.LIMIT_EXCEEDED)) terminate.call(ws)
      else if (err !== undefined && socket && !socket.destroyed && typeof socket.end === 'function' && typeof socket.destroy === 'function') {
        // Our close frame out, then the socket: `ws` would read (and drop) all the peer sends until its close frame.
        socket.end(() => socket.destroy!())
        this.terminateAfterGrace(() => socket.destroy!())
      } else if (live && typeof terminate === 'function') {
        // A peer that never answers our close frame must not hold the socket (and the process) for ws's 30 s.
        this.terminateAfterGrace(() => terminate.call(ws))
      }
    } catch {
      // A socket that cannot even send its close frame is already gone.
    }
  }

  private terminateAfterGrace(terminate: () => void): void {
    const timer = setTimeout(terminate, CLOSE_GRACE_MS)
    ;(timer as { unref?: () => void }).unref?.()
    void this.released.then(() => clearTimeout(timer))
  }

  /**
   * With Node's `ws`, each send() is its own socket write; corking the socket
   * until the end of the current task packs a burst of frames into one writev.
   */
  private cork(): void {
    if (this.corked !== null) return
    const socket = this.node._socket
    if (!socket || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') return
    socket.cork()
    this.corked = socket
    queueMicrotask(this.uncork)
  }

  private readonly uncork = (): void => {
    const socket = this.corked
    this.corked = null
    socket?.uncork?.()
    // Bytes just left the cork: the send buffer may already be below the mark.
    if (this.needDrain) this.checkDrain()
  }

  private readonly onOpen = (): void => {
    this.ws.removeEventListener('open', this.onOpen)
    if (this.closed) return
    const frames = this.preOpen
    this.preOpen = []
    this.preOpenBytes = 0
    if (frames.length > 0) this.cork()
    for (const frame of frames) this.sendNow(frame)
    if (this.paused) this.holdSource()
    if (this.needDrain) this.checkDrain()
  }

  private watchDrain(): void {
    const socket = this.node._socket
    if (socket && typeof socket.once === 'function' && this.drainSocket === null) {
      this.drainSocket = socket
      socket.once('drain', this.onSocketDrain)
    }
    this.drainTimer ??= setTimeout(this.onDrainPoll, DRAIN_POLL_MS)
  }

  private stopDrainWatch(): void {
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer)
    this.drainTimer = undefined
    this.drainSocket?.off?.('drain', this.onSocketDrain)
    this.drainSocket = null
  }

  private readonly onSocketDrain = (): void => {
    this.drainSocket = null
    this.checkDrain()
  }

  private readonly onDrainPoll = (): void => {
    this.drainTimer = undefined
    this.checkDrain()
  }

  private checkDrain(): void {
    this.sendQueued(this.queuedCost)
    if (this.closed || !this.needDrain) return
    if (this.queuedCost < this.highWaterMark) {
      this.needDrain = false
      this.stopDrainWatch()
      this.events.emit('drain')
    } else {
      this.watchDrain()
    }
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly onMessage = (event: any): void => {
    if (this.closed) return
    const data = event?.data
    const frame = toBytes(data)
    if (frame === undefined) {
      const what = typeof data === 'string' ? 'a text message' : 'a message that is not binary'
      this.close(new HyperEmitterError(ErrorCodes.PROTOCOL_ERROR, `${this.remote} sent ${what}; frames must be binary`))
      return
    }
    this.receive(frame)
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly onClose = (event: any): void => {
    if (this.closed) return
    const err = errorForCloseCode(this.remote, Number(event?.code), String(event?.reason ?? ''))
    this.closeAfterInbox(() => this.close(err))
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private readonly onError = (event: any): void => {
    if (this.closed) return
    const cause: unknown = event?.error
    const code = (cause as { code?: unknown } | undefined)?.code
    if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      // `ws` enforces maxPayload itself, before the message is buffered.
      this.close(
        new HyperEmitterError(ErrorCodes.FRAME_TOO_LARGE, `${this.remote} sent a message over the frame limit (${this.maxIncomingFrameSize} bytes)`, {
          cause,
          details: { maxFrameSize: this.maxIncomingFrameSize },
        }),
      )
      return
    }
    this.close(
      new HyperEmitterError(
        ErrorCodes.CONNECTION_FAILED,
        `WebSocket to ${this.remote} failed${cause instanceof Error ? `: ${cause.message}` : ''}`,
        { cause },
      ),
    )
  }
}
