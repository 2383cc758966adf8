import * as http from 'node:http'
import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import type { FrameChannel } from '../src/transport/channel.js'
import { connectTcp, encodeFrame } from '../src/transport/tcp.js'
import { connectWebSocket } from '../src/transport/websocket.js'
import { HubServer, type HubPeerInfo, type HubServerOptions } from '../src/node/hub-server.js'
import { until } from './session-helpers.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!()
})

/** Resolve with the first value `register` reports, or reject after `ms` (a bound, not an assertion). */
function within<T>(register: (cb: (value: T) => void) => void, what: string, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
    register((value) => {
      clearTimeout(timer)
      resolve(value)
    })
  })
}

interface Accepted {
  channel: FrameChannel
  info: HubPeerInfo
}

/** A hub on 127.0.0.1:0 whose accepted channels are queued for the test to take. */
async function startHub(options: Partial<HubServerOptions> = {}) {
  const accepted: Accepted[] = []
  const waiting: Array<(a: Accepted) => void> = []
  const hub = new HubServer({
    ...options,
    onChannel: (channel, info) => {
      // These tests are about the transport: every peer counts as authenticated at once.
      info.authenticated()
      options.onChannel?.(channel, info)
      const next = waiting.shift()
      if (next) next({ channel, info })
      else accepted.push({ channel, info })
    },
  })
  const address = await hub.listen(0, '127.0.0.1')
  cleanups.push(() => hub.close())
  const nextChannel = () =>
    within<Accepted>((cb) => {
      const ready = accepted.shift()
      if (ready) cb(ready)
      else waiting.push(cb)
    }, 'a channel')
  return { hub, port: address.port, address, nextChannel, accepted }
}

/** Poll `predicate` until true; rejects after `ms` (a bound, not an assertion). */

function nextFrame(channel: FrameChannel): Promise<Uint8Array> {
  return within<Uint8Array>((cb) => {
    const f = (frame: Uint8Array) => {
      channel.off('frame', f)
      cb(frame)
    }
    channel.on('frame', f)
  }, 'a frame')
}

function closeOf(channel: FrameChannel): Promise<Error | undefined> {
  return within<Error | undefined>((cb) => {
    if (channel.closed) cb(undefined)
    else channel.on('close', cb)
  }, 'close')
}

function httpGet(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      .on('error', reject)
  })
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

describe('HubServer', () => {
  it('serves TCP and WebSocket peers on the same port', async () => {
    const { port, nextChannel, hub } = await startHub()

    const tcpClient = await connectTcp(port, '127.0.0.1')
    cleanups.push(() => tcpClient.close())
    tcpClient.send(text('hello from tcp'))
    const tcpPeer = await nextChannel()
    expect(tcpPeer.info.transport).toBe('tcp')
    expect(tcpPeer.info.remoteAddress).toBe('127.0.0.1')
    expect(tcpPeer.channel.kind).toBe('tcp')
    expect(str(await nextFrame(tcpPeer.channel))).toBe('hello from tcp')

    const wsClient = await connectWebSocket(`ws://127.0.0.1:${port}/any/path`)
    cleanups.push(() => wsClient.close())
    const wsPeer = await nextChannel()
    expect(wsPeer.info.transport).toBe('websocket')
    expect(wsPeer.info.request?.url).toBe('/any/path')
    expect(wsPeer.channel.kind).toBe('websocket')
    expect(wsPeer.channel.remote).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/any\/path$/)

    // Both ways on both transports.
    const relayed = nextFrame(wsClient)
    wsPeer.channel.send(text('to ws'))
    expect(str(await relayed)).toBe('to ws')
    const back = nextFrame(tcpClient)
    tcpPeer.channel.send(text('to tcp'))
    expect(str(await back)).toBe('to tcp')
    const up = nextFrame(wsPeer.channel)
    wsClient.send(text('from ws'))
    expect(str(await up)).toBe('from ws')

    expect(hub.channels.size).toBe(2)
    const gone = closeOf(wsPeer.channel)
    wsClient.close()
    expect(await gone).toBeUndefined()
    expect(hub.channels.size).toBe(1)
  })

  it('serves plain HTTP through onRequest on the same port, and 404 without it', async () => {
    const { port } = await startHub({
      onRequest: (req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.end(`page ${req.method} ${req.url}`)
      },
    })
    expect(await httpGet(port, '/index.html')).toEqual({ status: 200, body: 'page GET /index.html' })
    // A second request on the same port; keep-alive sockets must not confuse the sniffing.
    expect(await httpGet(port, '/two')).toEqual({ status: 200, body: 'page GET /two' })

    const bare = await startHub()
    expect((await httpGet(bare.port, '/')).status).toBe(404)
  })

  it('sniffs an HTTP request that arrives one byte at a time', async () => {
    const { port } = await startHub({ onRequest: (_req, res) => res.end('ok') })
    const socket = net.connect(port, '127.0.0.1')
    cleanups.push(() => void socket.destroy())
    await within<void>((cb) => socket.once('connect', () => cb()), 'connect')
    let response = ''
    socket.setEncoding('utf8')
    socket.on('data', (d) => (response += d))
    const ended = within<void>((cb) => socket.once('end', () => cb()), 'response end')
    const request = 'GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    for (const ch of request) {
      socket.write(ch)
      await new Promise((r) => setTimeout(r, 2))
    }
    await ended
    expect(response.startsWith('HTTP/1.1 200')).toBe(true)
    expect(response.endsWith('ok')).toBe(true)
  })

  it('accepts a raw TCP peer whose first frame header arrives one byte at a time', async () => {
    const { port, nextChannel } = await startHub()
    const socket = net.connect(port, '127.0.0.1')
    cleanups.push(() => void socket.destroy())
    await within<void>((cb) => socket.once('connect', () => cb()), 'connect')
    const bytes = encodeFrame(text('split'))
    for (const b of bytes) {
      socket.write(Uint8Array.of(b))
      await new Promise((r) => setTimeout(r, 2))
    }
    const peer = await nextChannel()
    expect(str(await nextFrame(peer.channel))).toBe('split')
  })

  it('refuses upgrades on other paths when a path is set', async () => {
    const { port, accepted } = await startHub({ path: '/hub' })
    const ok = await connectWebSocket(`ws://127.0.0.1:${port}/hub?token=1`)
    cleanups.push(() => ok.close())
    const err = await rejection(connectWebSocket(`ws://127.0.0.1:${port}/elsewhere`))
    expect(isHyperEmitterError(err, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(String((err as Error).message)).toMatch(/404/)
    expect(accepted.length).toBe(1)
  })

  it('attach() mounts the WebSocket endpoint on an existing http.Server, on its path only', async () => {
    const app = http.createServer((_req, res) => res.end('app page'))
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise<void>((resolve) => app.close(() => resolve())))
    cleanups.push(() => void app.closeAllConnections())
    const { port } = app.address() as net.AddressInfo

    const channels: Array<{ channel: FrameChannel; info: HubPeerInfo }> = []
    const hub = new HubServer({ onChannel: (channel, info) => channels.push({ channel, info }) })
    cleanups.push(() => hub.close())
    hub.attach(app, { path: '/sync' })

    expect(await httpGet(port, '/')).toEqual({ status: 200, body: 'app page' })
    const client = await connectWebSocket(`ws://127.0.0.1:${port}/sync`)
    cleanups.push(() => client.close())
    await until(() => channels.length === 1, 10_000, 'onChannel')
    expect(channels[0].info.transport).toBe('websocket')
    const got = nextFrame(channels[0].channel)
    client.send(text('over attach'))
    expect(str(await got)).toBe('over attach')

    const err = await rejection(connectWebSocket(`ws://127.0.0.1:${port}/other`))
    expect(isHyperEmitterError(err, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(channels.length).toBe(1)

    // close() closes the hub's channels and detaches, but the app server keeps serving.
    const clientClosed = closeOf(client)
    await hub.close()
    await clientClosed
    expect(app.listening).toBe(true)
    expect(app.listenerCount('upgrade')).toBe(0)
    expect((await httpGet(port, '/')).body).toBe('app page')
  })

  it.each([
    ['returns false', () => false],
    ['throws', () => {
      throw new Error('no')
    }],
    ['rejects', () => Promise.reject(new Error('no'))],
    ['resolves false', () => Promise.resolve(false)],
  ])('verifyUpgrade that %s refuses with 401 and creates no channel', async (_what, verify) => {
    const seen: string[] = []
    const { port, accepted } = await startHub({
      verifyUpgrade: (req) => {
        seen.push(req.url ?? '')
        return verify()
      },
    })
    const err = await rejection(connectWebSocket(`ws://127.0.0.1:${port}/?token=bad`))
    expect(isHyperEmitterError(err, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(String((err as Error).message)).toMatch(/401/)
    expect(seen).toEqual(['/?token=bad'])
    expect(accepted.length).toBe(0)
  })

  it('verifyUpgrade resolving true lets the peer in, with the request to decide on', async () => {
    const { port, nextChannel } = await startHub({
      verifyUpgrade: async (req) => new URL(req.url ?? '/', 'http://x').searchParams.get('token') === 'good',
    })
    const client = await connectWebSocket(`ws://127.0.0.1:${port}/?token=good`)
    cleanups.push(() => client.close())
    const peer = await nextChannel()
    expect(peer.info.request?.url).toBe('/?token=good')
  })

  it('listen on a port in use rejects CONNECTION_FAILED naming the port', async () => {
    const { port } = await startHub()
    const second = new HubServer({ onChannel: () => {} })
    cleanups.push(() => second.close())
    const err = await rejection(second.listen(port, '127.0.0.1'))
    expect(isHyperEmitterError(err, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect((err as Error).message).toContain(String(port))
    expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe('EADDRINUSE')
    // The failed hub can still close cleanly.
    await second.close()
  })

  it('rejects bad arguments with INVALID_ARGUMENT', async () => {
    expect(() => new HubServer({} as HubServerOptions)).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    const hub = new HubServer({ onChannel: () => {} })
    cleanups.push(() => hub.close())
    expect(isHyperEmitterError(await rejection(hub.listen(70000)), ErrorCodes.INVALID_ARGUMENT)).toBe(true)
    expect(isHyperEmitterError(await rejection(connectWebSocket('http://127.0.0.1:1/')), ErrorCodes.INVALID_ARGUMENT)).toBe(true)
    expect(isHyperEmitterError(await rejection(connectWebSocket('not a url')), ErrorCodes.INVALID_ARGUMENT)).toBe(true)
  })

  it('a raw peer announcing an oversize first frame gets its channel closed with FRAME_TOO_LARGE', async () => {
    let closed!: Promise<Error | undefined>
    // Listen from onChannel: the header is decoded as soon as the channel exists.
    const { port } = await startHub({ maxFrameSize: 1024, onChannel: (channel) => (closed = closeOf(channel)) })
    const socket = net.connect(port, '127.0.0.1')
    cleanups.push(() => void socket.destroy())
    socket.on('error', () => {})
    socket.write(Uint8Array.of(0, 0, 0x10, 0)) // 4096 > 1024
    await within<void>((cb) => socket.once('close', () => cb()), 'socket close')
    const err = await closed
    expect(isHyperEmitterError(err, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
  })

  it('destroys connections that send nothing within firstByteTimeout', async () => {
    const { port, accepted } = await startHub({ firstByteTimeout: 100 })
    const socket = net.connect(port, '127.0.0.1')
    cleanups.push(() => void socket.destroy())
    socket.on('error', () => {})
    await within<void>((cb) => socket.once('close', () => cb()), 'idle socket closed by the hub')
    expect(accepted.length).toBe(0)
  })

  it('drops connections over maxConnections', async () => {
    const { port, nextChannel, hub } = await startHub({ maxConnections: 2 })
    const a = await connectTcp(port, '127.0.0.1')
    const b = await connectTcp(port, '127.0.0.1')
    cleanups.push(() => a.close(), () => b.close())
    a.send(new Uint8Array(1))
    b.send(new Uint8Array(1))
    await nextChannel()
    await nextChannel()
    const third = net.connect(port, '127.0.0.1')
    cleanups.push(() => void third.destroy())
    third.on('error', () => {})
    await within<void>((cb) => third.once('close', () => cb()), 'third connection dropped')
    expect(hub.channels.size).toBe(2)
  })

  it('a throwing onChannel closes that channel with the error, and the hub keeps serving', async () => {
    let calls = 0
    const boom = new Error('onChannel bug')
    const closes: Array<Error | undefined> = []
    const hub = new HubServer({
      onChannel: (channel) => {
        calls++
        channel.on('close', (err) => closes.push(err))
        if (calls === 1) throw boom
      },
    })
    cleanups.push(() => hub.close())
    const { port } = await hub.listen(0, '127.0.0.1')
    const first = await connectWebSocket(`ws://127.0.0.1:${port}/`)
    await closeOf(first)
    expect(closes).toEqual([boom])
    const second = await connectWebSocket(`ws://127.0.0.1:${port}/`)
    cleanups.push(() => second.close())
    expect(second.closed).toBe(false)
    expect(calls).toBe(2)
  })

  it('close() closes the listener, every channel and socket, leaving no open handles', async () => {
    const count = (kind: string) => process.getActiveResourcesInfo().filter((r) => r === kind).length
    const tcpHandles = () => count('TCPServerWrap') + count('TCPSocketWrap')
    // Sockets of earlier tests may still be finishing their close: start from none.
    await until(() => tcpHandles() === 0, 10_000, 'earlier sockets to close')
    const before = { servers: count('TCPServerWrap'), sockets: count('TCPSocketWrap'), timeouts: count('Timeout') }

    const closes: Array<Error | undefined> = []
    const hub = new HubServer({ onChannel: () => {}, onRequest: (_req, res) => res.end('x') })
    const { port } = await hub.listen(0, '127.0.0.1')
    const tcpClient = await connectTcp(port, '127.0.0.1')
    tcpClient.send(new Uint8Array(1))
    const wsClient = await connectWebSocket(`ws://127.0.0.1:${port}/`)
    // An idle keep-alive HTTP connection and one that never sent a byte.
    const keepAlive = new http.Agent({ keepAlive: true })
    await new Promise<void>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port, agent: keepAlive }, (res) => res.resume().on('end', resolve)).on('error', reject),
    )
    const silent = net.connect(port, '127.0.0.1')
    silent.on('error', () => {})
    await within<void>((cb) => silent.once('connect', () => cb()), 'connect')
    await until(() => hub.channels.size === 2, 10_000, 'two channels')
    const hubChannels = [...hub.channels]
    for (const c of [tcpClient, wsClient, ...hubChannels]) c.on('close', (err) => closes.push(err))
    expect(count('TCPServerWrap')).toBe(before.servers + 1)

    const silentClosed = within<void>((cb) => silent.once('close', () => cb()), 'silent socket closed')
    await hub.close()
    await Promise.all([closeOf(tcpClient), closeOf(wsClient), silentClosed])
    keepAlive.destroy()
    // Client-side handles (ours, in this process) finish closing asynchronously.
    await until(() => tcpHandles() === 0, 10_000, 'every TCP handle to close')

    expect(hub.channels.size).toBe(0)
    for (const c of [tcpClient, wsClient, ...hubChannels]) expect(c.closed).toBe(true)
    expect(closes).toHaveLength(4)
    for (const err of closes) expect(err).toBeUndefined()
    expect(count('TCPServerWrap')).toBe(before.servers)
    expect(count('TCPSocketWrap')).toBe(before.sockets)
    expect(count('Timeout')).toBeLessThanOrEqual(before.timeouts)
    // Closed is final.
    expect(isHyperEmitterError(await rejection(hub.listen(0)), ErrorCodes.CLOSED)).toBe(true)
    await hub.close()
  })
})
