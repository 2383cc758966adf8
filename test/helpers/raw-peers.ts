/**
 * Raw protocol clients for the replication tests: a TCP socket or a `ws`
 * WebSocket that the test drives frame by frame (or byte by byte), recording
 * every frame the other side sends.
 */
import * as net from 'node:net'
import WebSocket from 'ws'
import { decodeFrame, handshakeFrame, type FrameBody } from '../../src/sync/protocol.js'
import { identityFor, type Signing } from './signing.js'
import { encodeFrame as lengthPrefixed, FrameDecoder } from '../../src/transport/tcp.js'

export interface RawClient {
  readonly frames: FrameBody[]
  /** The byte length of every frame received, in order (undecodable ones too). */
  readonly sizes: number[]
  /** Resolves when the connection is gone (either side closed it). */
  readonly closed: Promise<void>
  /** Send one whole frame. */
  send(frame: Uint8Array): void
  /** Send raw bytes (TCP) or one raw binary message (WebSocket). */
  sendRaw(bytes: Uint8Array): void
  /** Resolves with the first frame of `kind` received (rejects after `ms`, or when closed without one). */
  next<C extends NonNullable<FrameBody['case']>>(kind: C, ms?: number): Promise<Extract<FrameBody, { case: C }>['value']>
  end(): void
  destroy(): void
}

class Recorder {
  readonly frames: FrameBody[] = []
  readonly sizes: number[] = []
  private waiters = new Set<() => void>()
  isClosed = false

  push(bytes: Uint8Array): void {
    this.sizes.push(bytes.byteLength)
    try {
      this.frames.push(decodeFrame(bytes))
    } catch {
      // A test that cares about undecodable frames looks at the count of decoded ones.
    }
    this.wake()
  }

  wake(): void {
    for (const w of [...this.waiters]) w()
  }

  next<C extends NonNullable<FrameBody['case']>>(kind: C, ms = 10_000): Promise<Extract<FrameBody, { case: C }>['value']> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.frames.find((f) => f.case === kind)
        if (found) {
          done()
          resolve(found.value as never)
        } else if (this.isClosed) {
          done()
          reject(new Error(`closed without a ${kind} frame (got ${this.frames.map((f) => f.case).join(', ')})`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out waiting for a ${kind} frame`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }
}

/** A raw TCP client of a hub on 127.0.0.1:`port`; resolves once connected. */
export async function rawTcp(port: number): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.on('error', () => {})
  const recorder = new Recorder()
  const decoder = new FrameDecoder(64 * 1024 * 1024)
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.decode(chunk, (frame) => recorder.push(frame))
    } catch {
      socket.destroy()
    }
  })
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      recorder.isClosed = true
      recorder.wake()
      resolve()
    }),
  )
  return {
    frames: recorder.frames,
    sizes: recorder.sizes,
    closed,
    send: (frame) => {
      if (!socket.destroyed) socket.write(lengthPrefixed(frame))
    },
    sendRaw: (bytes) => {
      if (!socket.destroyed) socket.write(bytes)
    },
    next: ((kind: never, ms?: number) => recorder.next(kind, ms)) as RawClient['next'],
    end: () => socket.end(),
    destroy: () => socket.destroy(),
  }
}

/** A raw WebSocket client of `url`; resolves once open. */
export async function rawWebSocket(url: string, headers: Record<string, string> = {}): Promise<RawClient> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  ws.binaryType = 'arraybuffer'
  ws.on('error', () => {})
  // Listening before 'open': the hub's Handshake may come in the same packet as the upgrade.
  const recorder = new Recorder()
  ws.on('message', (data: ArrayBuffer) => recorder.push(new Uint8Array(data)))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused with HTTP ${res.statusCode}`)))
    ws.once('close', () => reject(new Error('closed before opening')))
  })
  const closed = new Promise<void>((resolve) =>
    ws.once('close', () => {
      recorder.isClosed = true
      recorder.wake()
      resolve()
    }),
  )
  const send = (bytes: Uint8Array) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(bytes)
  }
  return {
    frames: recorder.frames,
    sizes: recorder.sizes,
    closed,
    send,
    sendRaw: send,
    next: ((kind: never, ms?: number) => recorder.next(kind, ms)) as RawClient['next'],
    end: () => ws.close(1000),
    destroy: () => ws.terminate(),
  }
}

/** Handshakes as `as` on a raw client: our challenge, then an Identity signing the other side's. */
export async function rawHandshake(raw: RawClient, as: Signing, opts: { token?: string; version?: number; maxFrameSize?: number } = {}): Promise<void> {
  raw.send(handshakeFrame(true, crypto.getRandomValues(new Uint8Array(32)), opts.version, opts.maxFrameSize))
  const theirs = await raw.next('handshake')
  raw.send(await identityFor(as, theirs.challenge, opts.token))
}
