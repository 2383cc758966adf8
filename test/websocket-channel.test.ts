// The WebSocket channel as browsers drive it: a socket with no pause(), no
// 'drain' and no maxPayload, played by a fake so each case is exact.
import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, isHyperEmitterError } from '../src/core/errors.js'
import type { FrameChannel } from '../src/transport/channel.js'
import { connectTcp } from '../src/transport/tcp.js'
import { connectWebSocket, createWebSocketChannel, WebSocketCloseCodes, type WebSocketLike } from '../src/transport/websocket.js'

type Listener = (event: unknown) => void

/** A browser-like WebSocket: no Node extras, events dispatched by the test. */
class FakeWebSocket implements WebSocketLike {
  readyState = 1
  bufferedAmount = 0
  binaryType = 'blob'
  readonly url = 'ws://fake.test/'
  sent: Uint8Array[] = []
  closedWith: Array<{ code?: number; reason?: string }> = []
  private listeners = new Map<string, Set<Listener>>()

  send(data: Uint8Array): void {
    if (this.readyState === 0) throw new Error('InvalidStateError')
    this.sent.push(data)
  }
  close(code?: number, reason?: string): void {
    this.closedWith.push({ code, reason })
    this.readyState = 2
  }
  addEventListener(type: string, listener: Listener): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set())
    this.listeners.get(type)!.add(listener)
  }
  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener)
  }
  dispatch(type: string, event: unknown = {}): void {
    for (const l of [...(this.listeners.get(type) ?? [])]) l(event)
  }
  message(data: unknown): void {
    this.dispatch('message', { data })
  }
}

const ab = (...bytes: number[]) => Uint8Array.from(bytes).buffer
const tick = () => new Promise((r) => setTimeout(r, 0))

function closeOf(channel: FrameChannel): Promise<Error | undefined> {
  return new Promise((resolve) => channel.on('close', resolve))
}

describe('WebSocket channel over a browser-like socket', () => {
  it('sets binaryType to arraybuffer and delivers binary messages as frames', () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    expect(ws.binaryType).toBe('arraybuffer')
    const got: Uint8Array[] = []
    channel.on('frame', (f) => got.push(f))
    ws.message(ab(1, 2, 3))
    ws.message(new ArrayBuffer(0))
    expect(got).toEqual([Uint8Array.of(1, 2, 3), new Uint8Array(0)])
    expect(channel.remote).toBe('ws://fake.test/')
  })

  it('closes with PROTOCOL_ERROR on a text message, sending close code 4002', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    channel.on('frame', () => {})
    const closed = closeOf(channel)
    ws.message('hello')
    const err = await closed
    expect(isHyperEmitterError(err, ErrorCodes.PROTOCOL_ERROR)).toBe(true)
    expect(ws.closedWith).toEqual([{ code: WebSocketCloseCodes.PROTOCOL_ERROR, reason: expect.any(String) }])
    expect(new TextEncoder().encode(ws.closedWith[0].reason).byteLength).toBeLessThanOrEqual(123)
  })

  it('closes with FRAME_TOO_LARGE on an oversize message (browsers have no maxPayload)', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws, { maxFrameSize: 4 })
    const got: Uint8Array[] = []
    channel.on('frame', (f) => got.push(f))
    const closed = closeOf(channel)
    ws.message(ab(1, 2, 3, 4))
    ws.message(ab(1, 2, 3, 4, 5))
    ws.message(ab(9))
    expect(isHyperEmitterError(await closed, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
    expect(got).toEqual([Uint8Array.of(1, 2, 3, 4)])
    expect(ws.closedWith[0].code).toBe(WebSocketCloseCodes.FRAME_TOO_LARGE)
  })

  it('holds frames while paused, up to maxQueuedBytes, then closes with LIMIT_EXCEEDED', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws, { maxFrameSize: 1000, maxQueuedBytes: 1000 })
    const got: number[] = []
    channel.on('frame', (f) => got.push(f.byteLength))
    channel.pause()
    for (let i = 0; i < 10; i++) ws.message(new ArrayBuffer(100))
    expect(got).toEqual([])
    expect(channel.closed).toBe(false)
    channel.resume()
    await tick()
    expect(got).toHaveLength(10)

    // Empty frames count too (64 bytes each), so a flood of them is bounded.
    channel.pause()
    const closed = closeOf(channel)
    for (let i = 0; i < 100 && !channel.closed; i++) ws.message(new ArrayBuffer(0))
    const err = await closed
    expect(isHyperEmitterError(err, ErrorCodes.LIMIT_EXCEEDED)).toBe(true)
    expect(ws.closedWith[0].code).toBe(WebSocketCloseCodes.LIMIT_EXCEEDED)
  })

  it('queues frames sent while connecting and sends them on open', () => {
    const ws = new FakeWebSocket()
    ws.readyState = 0
    const channel = createWebSocketChannel(ws)
    channel.send(Uint8Array.of(1))
    channel.send(Uint8Array.of(2, 3))
    expect(ws.sent).toEqual([])
    expect(channel.bufferedAmount).toBe(3)
    ws.readyState = 1
    ws.dispatch('open')
    expect(ws.sent).toEqual([Uint8Array.of(1), Uint8Array.of(2, 3)])
    expect(channel.bufferedAmount).toBe(0)
  })

  it('emulates drain by polling bufferedAmount while above the high-water mark', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws, { highWaterMark: 100 })
    let drains = 0
    channel.on('drain', () => drains++)
    expect(channel.send(new Uint8Array(10))).toBe(true)
    ws.bufferedAmount = 150
    expect(channel.send(new Uint8Array(10))).toBe(false)
    await new Promise((r) => setTimeout(r, 30))
    expect(drains).toBe(0)
    const drained = new Promise<void>((resolve) => channel.on('drain', () => resolve()))
    ws.bufferedAmount = 50
    await drained
    expect(drains).toBe(1)
    channel.close()
  })

  it('maps close codes from the peer to errors', async () => {
    const cases: Array<[number, string | undefined]> = [
      [1000, undefined],
      [1001, undefined],
      [1009, ErrorCodes.FRAME_TOO_LARGE],
      [4009, ErrorCodes.FRAME_TOO_LARGE],
      [4002, ErrorCodes.PROTOCOL_ERROR],
      [4008, ErrorCodes.LIMIT_EXCEEDED],
      [1006, ErrorCodes.CONNECTION_FAILED],
    ]
    for (const [code, expected] of cases) {
      const ws = new FakeWebSocket()
      const channel = createWebSocketChannel(ws)
      const closed = closeOf(channel)
      ws.readyState = 3
      ws.dispatch('close', { code, reason: 'why' })
      const err = await closed
      if (expected === undefined) expect(err).toBeUndefined()
      else expect((err as { code?: string }).code).toBe(expected)
    }
  })

  it('an error event closes with CONNECTION_FAILED, once', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    const errors: Array<Error | undefined> = []
    channel.on('close', (err) => errors.push(err))
    ws.dispatch('error', {})
    ws.dispatch('close', { code: 1006 })
    await tick()
    expect(errors).toHaveLength(1)
    expect(isHyperEmitterError(errors[0], ErrorCodes.CONNECTION_FAILED)).toBe(true)
  })

  it('delivers frames held while paused before a close that came after them', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    const events: string[] = []
    channel.on('frame', (f) => events.push(`frame ${f[0]}`))
    channel.on('close', (err) => events.push(`close ${err?.message ?? 'clean'}`))
    channel.pause()
    ws.message(ab(1))
    ws.message(ab(2))
    ws.dispatch('close', { code: 1000 })
    expect(events).toEqual([])
    channel.resume()
    await tick()
    expect(events).toEqual(['frame 1', 'frame 2', 'close clean'])
  })

  it('a listener that pauses on the last held frame keeps the close back until resume()', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    const events: string[] = []
    channel.on('frame', (f) => {
      events.push(`frame ${f[0]}`)
      if (f[0] === 2) channel.pause()
    })
    channel.on('close', (err) => events.push(`close ${err?.message ?? 'clean'}`))
    channel.pause()
    ws.message(ab(1))
    ws.message(ab(2))
    ws.dispatch('close', { code: 1000 })
    channel.resume()
    await tick()
    expect(events).toEqual(['frame 1', 'frame 2'])
    channel.resume()
    await tick()
    expect(events).toEqual(['frame 1', 'frame 2', 'close clean'])
  })

  it('a close behind frames held for no listener goes first: nobody would ever take them', async () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    const closes: Array<Error | undefined> = []
    channel.on('close', (err) => closes.push(err))
    ws.message(ab(1))
    ws.dispatch('close', { code: 1000 })
    expect(closes).toEqual([undefined])
    const got: Uint8Array[] = []
    channel.on('frame', (f) => got.push(f))
    await tick()
    expect(got).toEqual([])
  })

  it('removing the last frame listener releases a close held behind frames', () => {
    const ws = new FakeWebSocket()
    const channel = createWebSocketChannel(ws)
    const listener = () => {}
    channel.on('frame', listener)
    const closes: Array<Error | undefined> = []
    channel.on('close', (err) => closes.push(err))
    channel.pause()
    ws.message(ab(1))
    // Delivery is now scheduled but has not run: the close waits behind frame 1.
    channel.resume()
    ws.dispatch('close', { code: 1000 })
    expect(closes).toEqual([])
    channel.off('frame', listener)
    expect(closes).toEqual([undefined])
  })
})

describe('connect helpers', () => {
  const servers: net.Server[] = []
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()))
  })

  it('connectWebSocket rejects CONNECTION_FAILED (cause TIMEOUT) when the server never answers', async () => {
    const sockets: net.Socket[] = []
    const server = net.createServer((s) => sockets.push(s))
    servers.push(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as net.AddressInfo
    const err = await connectWebSocket(`ws://127.0.0.1:${port}/`, { timeout: 100 }).catch((e) => e)
    expect(isHyperEmitterError(err, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(isHyperEmitterError((err as Error).cause, ErrorCodes.TIMEOUT)).toBe(true)
    for (const s of sockets) s.destroy()
  })

  it('connectTcp and connectWebSocket reject CONNECTION_FAILED with the socket error when nothing listens', async () => {
    const server = net.createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as net.AddressInfo
    await new Promise<void>((resolve) => server.close(() => resolve()))
    const tcpErr = await connectTcp(port, '127.0.0.1').catch((e) => e)
    expect(isHyperEmitterError(tcpErr, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(((tcpErr as Error).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
    const wsErr = await connectWebSocket(`ws://127.0.0.1:${port}/`).catch((e) => e)
    expect(isHyperEmitterError(wsErr, ErrorCodes.CONNECTION_FAILED)).toBe(true)
    expect(((wsErr as Error).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')
    const badPort = await connectTcp(0).catch((e) => e)
    expect(isHyperEmitterError(badPort, ErrorCodes.INVALID_ARGUMENT)).toBe(true)
  })
})

describe('WebSocket channel over Node ws', () => {
  it('a peer refused for an oversize message is not read any further: its socket goes once our close frame is out', async () => {
    const { WebSocketServer } = await import('ws')
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1024, perMessageDeflate: false })
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
    const port = (wss.address() as net.AddressInfo).port
    const served = new Promise<{ channel: FrameChannel; socket: net.Socket }>((resolve) =>
      wss.once('connection', (ws) => {
        const socket = (ws as unknown as { _socket: net.Socket })._socket
        const channel = createWebSocketChannel(ws as unknown as WebSocketLike, { maxFrameSize: 1024 })
        channel.on('frame', () => {})
        resolve({ channel, socket })
      }),
    )
    // A raw client: upgrades, announces a 1 MiB message, then keeps sending and never answers a close.
    const client = net.connect(port, '127.0.0.1')
    client.on('error', () => {})
    client.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    const { channel, socket } = await served
    const closed = closeOf(channel)
    const header = Uint8Array.of(0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0)
    client.write(header)
    const chunk = new Uint8Array(64 * 1024)
    let sent = 0
    // Bounded: 8 MiB at most, or 5 s; a server still reading takes it all.
    const deadline = Date.now() + 5000
    while (!client.destroyed && !socket.destroyed && sent < 8 * 1024 * 1024 && Date.now() < deadline) {
      sent += chunk.length
      if (!client.write(chunk)) await new Promise((r) => setTimeout(r, 5))
      else await new Promise((r) => setImmediate(r))
    }
    const err = await closed
    expect(isHyperEmitterError(err, ErrorCodes.FRAME_TOO_LARGE)).toBe(true)
    await new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())))
    // What the server read of the refused message stays near one read's worth, not what the peer kept sending.
    expect(socket.bytesRead).toBeLessThan(1024 * 1024)
    client.destroy()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
  })
})
