import * as http from 'node:http'
import type * as https from 'node:https'
import * as net from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocketServer } from 'ws'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { DEFAULT_MAX_FRAME_SIZE, type FrameChannel, type FrameChannelOptions } from '../transport/channel.js'
import { createTcpChannel } from '../transport/tcp.js'
import { createWebSocketChannel } from '../transport/websocket.js'
import { ConnectionLimits, type ConnectionLimitOptions } from './connection-limits.js'
import { checkOriginPolicy, originAllowed, type OriginPolicy } from './origin.js'

export { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS } from './connection-limits.js'
/** Default time a new connection gets to send its first byte. */
export const DEFAULT_FIRST_BYTE_TIMEOUT = 10_000
/** Default time an HTTP request (page or WebSocket upgrade) gets to send all its headers. */
export const DEFAULT_HEADERS_TIMEOUT = 10_000
/** Default time a peer gets, from its connection, to be authenticated. */
export const DEFAULT_AUTH_TIMEOUT = 10_000
/** Default largest frame taken from a peer before it is authenticated (a handshake is far smaller). */
export const DEFAULT_MAX_FRAME_SIZE_BEFORE_AUTH = 64 * 1024
/** Idle timeout of plain HTTP connections between requests' bytes. */
const HTTP_IDLE_TIMEOUT = 60_000
/** How long close() lets channels finish their closing handshakes before destroying their sockets. */
const CLOSE_GRACE_MS = 1000

export interface HubPeerInfo {
  transport: 'tcp' | 'websocket'
  remoteAddress: string
  /** The upgrade request (WebSocket peers only). */
  request?: http.IncomingMessage
  /**
   * Call once the peer is authenticated: its frames may then be up to
   * maxFrameSize, its connection leaves the unauthenticated pool and its
   * address gets the reserved slots from now on. Until then authTimeout runs.
   */
  authenticated: () => void
}

export interface HubServerOptions extends FrameChannelOptions, ConnectionLimitOptions {
  /** Called for each accepted peer channel (TCP or WebSocket). If it throws, that channel is closed with the error. */
  onChannel: (channel: FrameChannel, info: HubPeerInfo) => void
  /** Plain HTTP requests (not upgrades), e.g. to serve a demo page; default 404. */
  onRequest?: (req: http.IncomingMessage, res: http.ServerResponse) => void
  /** Only upgrade requests to this path become peers (default: any path). */
  path?: string
  /** Called at WebSocket upgrade with the request; false/throw/reject → respond 401 and destroy, no channel is created. */
  verifyUpgrade?: (request: http.IncomingMessage) => boolean | Promise<boolean>
  /**
   * Which pages may open a WebSocket (by Origin); refused upgrades get 403.
   * Default: 'same-origin' when the hub serves pages (onRequest, attach()), '*' otherwise.
   */
  allowedOrigins?: OriginPolicy
  /** A new connection that sends nothing for this many ms is destroyed (default 10 s). */
  firstByteTimeout?: number
  /** An HTTP request whose headers are not all in after this many ms is destroyed (default 10 s). */
  headersTimeout?: number
  /** A peer not authenticated this many ms after it connected is dropped with TIMEOUT (default 10 s). */
  authTimeout?: number
  /** Largest frame taken from a peer before it is authenticated (default 64 KiB). */
  maxFrameSizeBeforeAuth?: number
  /** Errors of the listening socket after listen() resolved (e.g. EMFILE on accept); default: ignored. */
  onError?: (err: Error) => void
}

export interface HubAddress {
  address: string
  port: number
  family: string
}

/**
 * Serves raw TCP peers, WebSocket peers and plain HTTP on one port.
 *
 * Each new connection is sniffed on its first byte. A raw TCP peer starts
 * with the 4-byte big-endian length of its first frame; an HTTP client starts
 * with a method name in upper-case ASCII ("GET ", "POST "...). A length whose
 * top byte is 'A'..'Z' (0x41-0x5A) is over 1 GiB, far above any sane
 * maxFrameSize, so that single byte tells the two apart with no ambiguity.
 */
export class HubServer {
  /** The open peer channels; each leaves the set when it closes. */
  readonly channels = new Set<FrameChannel>()
  private readonly options: HubServerOptions
  private readonly channelOptions: FrameChannelOptions
  private readonly limits: ConnectionLimits
  /** The origin policy of listen()'s port. */
  private readonly origins: OriginPolicy
  /** Sockets handed to the HTTP parser, with the timer that ends them unless a request's headers are in. */
  private readonly headerTimers = new Map<Duplex, ReturnType<typeof setTimeout>>()
  private readonly server: net.Server
  private readonly httpServer: http.Server
  /** Made on the first upgrade: a hub with only TCP peers never loads `ws`. */
  private wss: Promise<WebSocketServer> | undefined
  /** Every socket this hub holds, whichever server accepted it. */
  private readonly sockets = new Set<Duplex>()
  /** Sockets that carry a channel (they get a grace period on close). */
  private readonly channelSockets = new Set<Duplex>()
  private readonly socketChannels = new Map<Duplex, FrameChannel>()
  /** Would-be peers' sockets, with the timer that drops them unless authenticated in time. */
  private readonly authTimers = new Map<Duplex, ReturnType<typeof setTimeout>>()
  private readonly attached: Array<{ server: http.Server | https.Server; listener: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void }> = []
  private closing: Promise<void> | null = null

  /** Throws INVALID_ARGUMENT when onChannel is missing or a limit is not a positive number. */
  constructor(options: HubServerOptions) {
    if (typeof options?.onChannel !== 'function') {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'HubServer needs an onChannel function')
    }
    this.limits = new ConnectionLimits(options)
    const timeouts = {
      firstByteTimeout: options.firstByteTimeout ?? DEFAULT_FIRST_BYTE_TIMEOUT,
      headersTimeout: options.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT,
      authTimeout: options.authTimeout ?? DEFAULT_AUTH_TIMEOUT,
    }
    for (const [option, value] of Object.entries(timeouts)) {
      if (!(value > 0)) throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `${option} must be positive, got ${value}`, { details: { option } })
    }
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    const beforeAuth = options.maxFrameSizeBeforeAuth ?? DEFAULT_MAX_FRAME_SIZE_BEFORE_AUTH
    if (!Number.isInteger(beforeAuth) || beforeAuth <= 0) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `maxFrameSizeBeforeAuth must be a positive integer, got ${beforeAuth}`)
    }
    if (options.path !== undefined && !options.path.startsWith('/')) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `path must start with "/", got ${options.path}`)
    }
    checkOriginPolicy(options.allowedOrigins)
    this.options = { ...options, ...timeouts, maxFrameSizeBeforeAuth: Math.min(beforeAuth, maxFrameSize) }
    this.origins = options.allowedOrigins ?? (options.onRequest === undefined ? '*' : 'same-origin')
    this.channelOptions = {
      maxFrameSize: options.maxFrameSize,
      highWaterMark: options.highWaterMark,
      maxBufferedBytes: options.maxBufferedBytes,
      stallTimeout: options.stallTimeout,
    }

    this.httpServer = http.createServer((req, res) => this.handleRequest(req, res))
    // This http.Server never listens, and Node only runs its headers/request
    // timeout checks from 'listening': watchHeaders() and an idle timeout stand in for them.
    this.httpServer.setTimeout(HTTP_IDLE_TIMEOUT)
    this.httpServer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.headersIn(socket)
      if (!pathMatches(req, this.options.path)) {
        refuse(socket, 404, 'Not Found')
        return
      }
      void this.handleUpgrade(req, socket, head, this.origins)
    })

    this.server = net.createServer((socket) => this.handleConnection(socket))
    // A backstop only: admit() refuses first, with the per-address and reserve rules.
    this.server.maxConnections = this.limits.maxConnections + 1
    this.server.on('error', (err) => {
      if (this.server.listening) this.options.onError?.(err)
    })
  }

  /**
   * Listen on `port` (0: any free port) and `host` (default: all interfaces).
   * Resolves to the bound address. Rejects CONNECTION_FAILED (cause: the
   * socket error, message naming the port) when it cannot bind, CLOSED after
   * close(), INVALID_ARGUMENT for a bad port or when already listening.
   */
  listen(port: number, host?: string): Promise<HubAddress> {
    if (this.closing) return Promise.reject(new HyperEmitterError(ErrorCodes.CLOSED, 'HubServer is closed'))
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `port must be an integer in [0, 65535], got ${port}`))
    }
    if (this.server.listening) {
      return Promise.reject(new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'HubServer is already listening'))
    }
    const server = this.server
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        server.off('listening', onListening)
        const where = host === undefined ? `port ${port}` : `${host} port ${port}`
        reject(
          new HyperEmitterError(ErrorCodes.CONNECTION_FAILED, `could not listen on ${where}: ${err.message}`, {
            cause: err,
            details: { port, host },
          }),
        )
      }
      const onListening = () => {
        server.off('error', onError)
        const address = server.address() as net.AddressInfo
        resolve({ address: address.address, port: address.port, family: String(address.family) })
      }
      server.once('error', onError)
      server.once('listening', onListening)
      server.listen(port, host)
    })
  }

  /**
   * Serve WebSocket peers through an existing http.Server's 'upgrade' event
   * (Express, Fastify...). Upgrades to other paths are refused with 404 unless
   * another 'upgrade' listener is there to take them. The server itself stays
   * the caller's: close() detaches from it but never closes it.
   */
  attach(server: http.Server | https.Server, options: { path?: string; allowedOrigins?: OriginPolicy } = {}): void {
    if (this.closing) throw new HyperEmitterError(ErrorCodes.CLOSED, 'HubServer is closed')
    const path = options.path ?? this.options.path
    if (path !== undefined && !path.startsWith('/')) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `path must start with "/", got ${path}`)
    }
    checkOriginPolicy(options.allowedOrigins)
    // The server serves the application's pages: by default only they may open a WebSocket.
    const origins = options.allowedOrigins ?? this.options.allowedOrigins ?? 'same-origin'
    const listener = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!pathMatches(req, path)) {
        if (server.listenerCount('upgrade') <= 1) refuse(socket, 404, 'Not Found')
        return
      }
      if (this.limits.admit(socket, (socket as Partial<net.Socket>).remoteAddress ?? '') !== undefined) {
        refuse(socket, 503, 'Service Unavailable')
        return
      }
      this.track(socket)
      this.startAuthTimer(socket)
      void this.handleUpgrade(req, socket, head, origins)
    }
    server.on('upgrade', listener)
    this.attached.push({ server, listener })
  }

  /**
   * Stop listening, detach from attached servers, close every channel (each
   * gets a short grace for its closing handshake, then its socket is
   * destroyed) and every other connection. Resolves when all of them are
   * closed; nothing of the hub keeps the process alive afterwards. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    for (const { server, listener } of this.attached) server.off('upgrade', listener)
    this.attached.length = 0
    const listenerClosed = new Promise<void>((resolve) => {
      if (this.server.listening) this.server.close(() => resolve())
      else resolve()
    })
    for (const channel of [...this.channels]) channel.close()
    void this.wss?.then((wss) => wss.close())
    for (const socket of this.sockets) if (!this.channelSockets.has(socket)) socket.destroy()
    await this.waitForSockets(CLOSE_GRACE_MS)
    for (const socket of this.sockets) socket.destroy()
    await this.waitForSockets(CLOSE_GRACE_MS)
    await listenerClosed
  }

  private waitForSockets(ms: number): Promise<void> {
    if (this.sockets.size === 0) return Promise.resolve()
    return new Promise((resolve) => {
      let left = this.sockets.size
      const done = () => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(done, ms)
      for (const socket of this.sockets) {
        socket.once('close', () => {
          if (--left === 0) done()
        })
      }
    })
  }

  private track(socket: Duplex): void {
    if (this.sockets.has(socket)) return
    this.sockets.add(socket)
    // A socket error must never crash the hub; whoever owns the socket also reports it.
    socket.on('error', ignore)
    socket.once('close', () => {
      this.sockets.delete(socket)
      this.channelSockets.delete(socket)
      this.limits.release(socket)
      this.headersIn(socket)
      clearTimeout(this.authTimers.get(socket))
      this.authTimers.delete(socket)
    })
  }

  private handleConnection(socket: net.Socket): void {
    if (this.closing || this.limits.admit(socket, socket.remoteAddress ?? '') !== undefined) {
      socket.destroy()
      return
    }
    this.track(socket)
    const onTimeout = () => socket.destroy()
    socket.setTimeout(this.options.firstByteTimeout!, onTimeout)
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0)
      socket.off('timeout', onTimeout)
      // Put the bytes back so whoever takes the socket reads them first.
      socket.pause()
      socket.unshift(chunk)
      if (this.closing) {
        socket.destroy()
      } else if (chunk[0] >= 0x41 && chunk[0] <= 0x5a) {
        this.watchHeaders(socket)
        this.httpServer.emit('connection', socket)
        // The http parser does not resume a socket paused on purpose.
        socket.resume()
      } else {
        this.startAuthTimer(socket)
        this.acceptTcp(socket)
      }
    })
  }

  /** Slowloris guard: `socket` is destroyed unless a request's headers are all in within headersTimeout. */
  private watchHeaders(socket: Duplex): void {
    if (this.headerTimers.has(socket) || socket.destroyed) return
    const timer = setTimeout(() => socket.destroy(), this.options.headersTimeout!)
    timer.unref()
    this.headerTimers.set(socket, timer)
  }

  private headersIn(socket: Duplex): void {
    const timer = this.headerTimers.get(socket)
    if (timer === undefined) return
    clearTimeout(timer)
    this.headerTimers.delete(socket)
  }

  /** A would-be peer on `socket` gets authTimeout to be authenticated, from now. */
  private startAuthTimer(socket: Duplex): void {
    if (this.authTimers.has(socket)) return
    const authTimeout = this.options.authTimeout!
    const timer = setTimeout(() => {
      this.authTimers.delete(socket)
      const channel = this.socketChannels.get(socket)
      const err = new HyperEmitterError(ErrorCodes.TIMEOUT, `peer not authenticated within ${authTimeout} ms`, { details: { authTimeout } })
      if (channel !== undefined) channel.close(err)
      else socket.destroy()
    }, authTimeout)
    timer.unref()
    this.authTimers.set(socket, timer)
  }

  private acceptTcp(socket: net.Socket): void {
    let channel: FrameChannel
    try {
      channel = createTcpChannel(socket, this.channelOptions)
    } catch {
      socket.destroy()
      return
    }
    this.addChannel(channel, socket, { transport: 'tcp', remoteAddress: socket.remoteAddress ?? '' })
  }

  private handleRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = req.socket
    this.headersIn(socket)
    // Keep-alive: the next request's headers are timed from the end of this response.
    res.once('finish', () => this.watchHeaders(socket))
    const onRequest = this.options.onRequest
    if (onRequest === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found\n')
      return
    }
    try {
      onRequest(req, res)
    } catch {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' })
      res.end()
    }
  }

  private webSocketServer(): Promise<WebSocketServer> {
    this.wss ??= import('ws').then(
      ({ WebSocketServer }) =>
        new WebSocketServer({
          noServer: true,
          // ws refuses an oversize message from its header, before buffering it.
          maxPayload: this.channelOptions.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
          perMessageDeflate: false,
          clientTracking: false,
        }),
    )
    return this.wss
  }

  private async handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, origins: OriginPolicy): Promise<void> {
    this.track(socket)
    this.startAuthTimer(socket)
    if (this.closing) {
      refuse(socket, 503, 'Service Unavailable')
      return
    }
    if (!originAllowed(origins, req)) {
      refuse(socket, 403, 'Forbidden')
      return
    }
    const verify = this.options.verifyUpgrade
    if (verify !== undefined) {
      let allowed = false
      try {
        allowed = (await verify(req)) === true
      } catch {
        allowed = false
      }
      if (!allowed) {
        refuse(socket, 401, 'Unauthorized')
        return
      }
      if (socket.destroyed || this.closing) {
        socket.destroy()
        return
      }
    }
    const wss = await this.webSocketServer()
    if (socket.destroyed || this.closing) {
      socket.destroy()
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (this.closing) {
        ws.terminate()
        return
      }
      const netSocket = socket as Partial<net.Socket>
      const address = netSocket.remoteAddress ?? ''
      const host = address.includes(':') ? `[${address}]` : address
      let channel: FrameChannel
      try {
        channel = createWebSocketChannel(ws, {
          ...this.channelOptions,
          remote: `ws://${host}:${netSocket.remotePort ?? 0}${req.url ?? '/'}`,
        })
      } catch {
        ws.terminate()
        return
      }
      this.addChannel(channel, socket, { transport: 'websocket', remoteAddress: address, request: req })
    })
  }

  private addChannel(channel: FrameChannel, socket: Duplex, info: Omit<HubPeerInfo, 'authenticated'>): void {
    this.channelSockets.add(socket)
    this.socketChannels.set(socket, channel)
    this.channels.add(channel)
    channel.on('close', () => {
      this.channels.delete(channel)
      this.socketChannels.delete(socket)
    })
    channel.setMaxIncomingFrameSize?.(this.options.maxFrameSizeBeforeAuth!)
    const authenticated = () => {
      if (channel.closed) return
      clearTimeout(this.authTimers.get(socket))
      this.authTimers.delete(socket)
      this.limits.authenticated(socket)
      channel.setMaxIncomingFrameSize?.(channel.maxFrameSize)
    }
    try {
      this.options.onChannel(channel, { ...info, authenticated })
    } catch (err) {
      channel.close(err instanceof Error ? err : new Error(String(err)))
    }
  }
}

function ignore(): void {}

function pathMatches(req: http.IncomingMessage, path: string | undefined): boolean {
  if (path === undefined) return true
  const url = req.url ?? '/'
  const query = url.indexOf('?')
  return (query === -1 ? url : url.slice(0, query)) === path
}

/** Answer an upgrade request with a bare HTTP error and drop the connection. */
function refuse(socket: Duplex, status: number, text: string): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy())
  // A client that never reads would keep the response (and the socket) pending forever.
  setTimeout(() => socket.destroy(), 1000).unref()
}
