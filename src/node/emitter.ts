import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { checkCallbackLast, checkPortFirst } from '../core/arguments.js'
import { withCallback, type Callback } from '../core/callback.js'
import { MemoryLevel } from 'memory-level'
import type { Db, EventMap, EventsOptions } from '../core/emitter.js'
import { parseProtoFile } from '../core/codec/proto-parse.js'
import { useProtoParser } from '../core/codec/schema.js'
import { ErrorCodes, HyperEmitterError } from '../core/errors.js'
import { ReplicatedEmitter, type EventPeerMessage, type ReplicationOptions } from '../sync/replicated.js'
import type { FrameChannel } from '../transport/channel.js'
import { connectTcp } from '../transport/tcp.js'
import { connectWebSocket } from '../transport/websocket.js'
import { nodeEd25519 } from './ed25519.js'
import { nodeSha256 } from './hash.js'
import { checkPublicHost, publicLookup } from './public-lookup.js'
import { HubServer, type HubAddress, type HubServerOptions } from './hub-server.js'
import type { OriginPolicy } from './origin.js'
import { createEventStream } from './stream.js'

/** The hub's connection bounds (see HubServerOptions and the README's limits table). */
export type HubLimits = Pick<
  HubServerOptions,
  'maxConnections' | 'maxConnectionsPerAddress' | 'reservedConnections' | 'firstByteTimeout' | 'headersTimeout' | 'authTimeout' | 'maxFrameSizeBeforeAuth'
>

export interface AttachOptions extends HubLimits {
  /** Only WebSocket upgrades to this path become peers. Default: any path. */
  path?: string
  /** Which pages may open a WebSocket, by Origin (default 'same-origin': the server's own pages). */
  allowedOrigins?: OriginPolicy
}

export interface ListenOptions extends HubLimits {
  port?: number
  host?: string
  /** Serve plain HTTP requests on the same port (e.g. a demo page). Default: 404. */
  onRequest?: (req: IncomingMessage, res: ServerResponse) => void
  /** Only WebSocket upgrades to this path become peers. Default: any path. */
  path?: string
  /** Hosts to announce in EventPeer instead of the listening one (needed behind NAT or on 0.0.0.0). */
  announce?: string[]
  /** Which pages may open a WebSocket, by Origin (default: 'same-origin' with onRequest, else '*'). */
  allowedOrigins?: OriginPolicy
}

// Node always accepts `.proto` text schemas (the parser is small beside Node's own start-up).
useProtoParser(parseProtoFile)

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]'])
/** How long one attempt to reach a peer may take before it fails (CONNECTION_FAILED) and is retried. */
const DIAL_TIMEOUT_MS = 10_000

/**
 * HyperEmitter for Node: the core, replication over raw TCP and WebSocket
 * (one port serves both), streams and node:crypto hashing.
 */
export class NodeHyperEmitter<E extends EventMap = EventMap> extends ReplicatedEmitter<E> {
  private readonly hubs: HubServer[] = []

  /** memory-level: the db Node users know, and abstract-level's whole API. */
  protected static override defaultDb(): Db {
    return new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
  }

  protected static override defaultOptions(): ReplicationOptions {
    // Node's dbs copy a record when it is written (classic-level) or keep it
    // as it is (memory-level): shared buffers are safe, and cheaper.
    return { hash: nodeSha256, ed25519: nodeEd25519, sharedRecordBuffers: true }
  }

  /**
   * A Duplex in object mode: write `{ name, payload }` to emit, read the log's
   * events as `{ name, payload }`. `from: 'beginning'` replays the whole log;
   * the default starts at the moment of this call.
   */
  stream(options: EventsOptions = {}): Duplex {
    return createEventStream(this, options)
  }

  /**
   * Accept peers on `port` (0: any free port): raw TCP and WebSocket on the
   * same port, told apart by their first bytes. Resolves to the bound
   * address, then announces it in an EventPeer event if it changed since last
   * time. Rejects CONNECTION_FAILED (port in use, ...), INVALID_ARGUMENT or CLOSED.
   */
  listen(port: number | ListenOptions, host?: string | Callback<HubAddress>, cb?: Callback<HubAddress>): Promise<HubAddress> {
    try {
      if (typeof port === 'function') throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, 'listen(port, [host], [cb]): give the port first (0: any free port)')
      checkPortFirst('listen', port, host)
      checkCallbackLast('listen(port, [host], [cb])', [host, cb])
    } catch (err) {
      return Promise.reject(err)
    }
    const options: ListenOptions = typeof port === 'object' && port !== null ? { ...port } : { port: port as number }
    if (typeof host === 'function') cb = host
    else if (typeof host === 'string') options.host = host
    return withCallback(this.startListening(options), cb)
  }

  /**
   * Serve peers over WebSocket on an existing http.Server (an Express or
   * Fastify app's), on `path`. The server stays the caller's to listen and close.
   */
  attach(server: HttpServer, options: AttachOptions = {}): void {
    if (this.closed) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    const { path, allowedOrigins, ...limits } = options
    this.hub(limits).attach(server, { path, allowedOrigins })
  }

  private async startListening(options: ListenOptions): Promise<HubAddress> {
    const port = options.port ?? 0
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `port must be an integer from 0 to 65535, not ${String(port)}`)
    }
    if (this.closed) throw new HyperEmitterError(ErrorCodes.CLOSED, 'the emitter is closed')
    await this.ready()
    const hub = this.hub(options)
    const address = await hub.listen(port, options.host)
    const hosts = options.announce ?? [WILDCARDS.has(options.host ?? '') ? '127.0.0.1' : address.address]
    const path = options.path ?? '/'
    await this.announce(
      hosts.map((ip) => ({ ip, port: address.port, url: `ws://${ip.includes(':') ? `[${ip}]` : ip}:${address.port}${path}` })),
    )
    return address
  }

  private hub(options: ListenOptions): HubServer {
    this.acceptsPeers = true
    const replication = this.replication
    const { port: _port, host: _host, announce: _announce, ...hubOptions } = options
    const hub = new HubServer({
      ...hubOptions,
      maxFrameSize: replication.maxFrameSize,
      maxBufferedBytes: replication.maxBufferedBytes,
      stallTimeout: replication.stallTimeout,
      onChannel: (channel, info) => {
        try {
          this.peerManager.accept(channel, { request: info.request, authenticated: info.authenticated })
        } catch (err) {
          this.reportError(err)
        }
      },
    })
    this.hubs.push(hub)
    if (this.hubs.length === 1) this.onClose(() => Promise.all(this.hubs.map((h) => h.close())).then(() => {}))
    return hub
  }

  protected async dial(address: string, { publicOnly = false }: { publicOnly?: boolean } = {}): Promise<FrameChannel> {
    const { maxFrameSize, maxBufferedBytes, stallTimeout } = this.replication
    const url = new URL(address)
    const host = url.hostname.replace(/^\[|\]$/g, '')
    // An IP address is never looked up, so it is checked here; a name is checked on what it resolves to.
    if (publicOnly) checkPublicHost(host)
    // A peer behind a black hole would otherwise hold each attempt for the OS's
    // SYN timeout (minutes): give up sooner and let the backoff retry.
    const options = { maxFrameSize, maxBufferedBytes, stallTimeout, timeout: DIAL_TIMEOUT_MS, lookup: publicOnly ? publicLookup : undefined }
    if (address.startsWith('ws://') || address.startsWith('wss://')) return connectWebSocket(address, options)
    return connectTcp(Number(url.port), host, options)
  }

  protected pickAddress(addresses: EventPeerMessage['addresses']): string | undefined {
    const tcp = addresses.find((a) => a.ip && a.port)
    if (tcp) return formatTcp(tcp.ip, tcp.port)
    return addresses.find((a) => a.url)?.url
  }

  protected toAddress(target: string | number, host: string | undefined): string {
    if (typeof target === 'string' && /^(wss?|tcp):\/\//.test(target)) {
      try {
        new URL(target)
      } catch (cause) {
        throw new HyperEmitterError(ErrorCodes.INVALID_ARGUMENT, `not a valid address: ${target}`, { cause })
      }
      return target
    }
    const port = typeof target === 'string' && /^\d+$/.test(target) ? Number(target) : target
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new HyperEmitterError(
        ErrorCodes.INVALID_ARGUMENT,
        `connect() takes a port (1-65535) and host, or a ws://, wss:// or tcp:// address, not ${String(target)}`,
      )
    }
    return formatTcp(host || 'localhost', port)
  }
}

function formatTcp(host: string, port: number): string {
  return `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`
}
