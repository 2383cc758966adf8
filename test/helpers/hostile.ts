/**
 * The attacks of issue 15 against a hub in a child process (hostile-hub.ts),
 * and an honest peer timed while they run: shared by the hostile-load tests
 * (small figures) and the bench (the figures). Loopback only:
 * attackers come from 127.0.0.2 and up, the honest peer from 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import * as net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { HyperEmitter } from '../../src/index.js'
import { encodeNode } from '../../src/core/codec/node.js'
import { clockFrame, decodeFrame, handshakeFrame, pingFrame } from '../../src/sync/protocol.js'
import { encodeFrame as lengthPrefixed, FrameDecoder } from '../../src/transport/tcp.js'
import { identityFor, signedNodes, testWriter } from './signing.js'
import { HOSTILE_SCHEMA, type HostileHubOptions } from './hostile-hub.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export type Transport = 'tcp' | 'websocket'

export interface ChildHub {
  port: number
  pid: number
  /** Resident memory now, MB (from /proc). */
  rssMb(): number
  /** Peak resident memory since start or resetPeak(), MB. */
  peakRssMb(): number
  /** Start measuring the peak afresh (Linux: /proc/<pid>/clear_refs). */
  resetPeak(): void
  /** CPU time (user + system) the hub has used so far, ms (from /proc, 10 ms steps). */
  cpuMs(): number
  /** Resolves with the exit code/signal; the hub must still be running when asked. */
  alive(): boolean
  close(): Promise<void>
}

/** Start a hub process; resolves once it listens. Rejects after `timeout` ms. */
export async function spawnHub(options: HostileHubOptions, timeout = 30_000): Promise<ChildHub> {
  // HOSTILE_HUB_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles the hub (the bench's way to see where its time goes).
  const nodeArgs = process.env.HOSTILE_HUB_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(ROOT, 'test/helpers/hostile-hub.ts'), JSON.stringify(options)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let exited = false
  const closed = new Promise<void>((r) => child.once('close', () => ((exited = true), r())))
  const port = await new Promise<number>((resolvePort, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('hub did not start')), timeout)
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split('\n').find((l) => l.startsWith('{'))
      if (line) {
        clearTimeout(timer)
        resolvePort(JSON.parse(line).port)
      }
    })
    child.once('close', () => reject(new Error('hub exited before listening')))
  })
  const status = (field: string) => Number(/(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(field)) ?? '')?.[1] ?? NaN) / 1024
  return {
    port,
    pid: child.pid!,
    rssMb: () => status('VmRSS:'),
    peakRssMb: () => status('VmHWM:'),
    resetPeak: () => writeFileSync(`/proc/${child.pid}/clear_refs`, '5'),
    cpuMs: () => {
      // Fields 14 and 15 of /proc/<pid>/stat, counted after the command name's closing parenthesis.
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
    },
    alive: () => !exited,
    async close() {
      if (!exited) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await closed
      clearTimeout(timer)
    },
  }
}

/** ms for a fresh peer on 127.0.0.1 to connect and hold `events` events of the hub's. */
export async function honestSync(port: number, transport: Transport, events: number, timeout = 60_000): Promise<number> {
  const peer = HyperEmitter(null, HOSTILE_SCHEMA, { reconnectKnown: false, discover: false })
  peer.status.on('error', () => {})
  const start = performance.now()
  try {
    let got = 0
    const all = new Promise<void>((r) => peer.on('chat.Message', () => void (++got >= events && r()), { from: 'beginning' }))
    await (transport === 'tcp' ? peer.connect(port, '127.0.0.1', { remember: false }) : peer.connect(`ws://127.0.0.1:${port}/`, { remember: false }))
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([all, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`honest peer got ${got}/${events} in ${timeout} ms`)), timeout)))])
    clearTimeout(timer)
    return performance.now() - start
  } finally {
    await peer.close()
  }
}

/** An honest peer in its own process (honest-peer.ts), so attackers in this process cannot delay it on this event loop. */
export interface HonestPeerProcess {
  /** As honestSync(), run in the peer's process; rejects with its error. */
  sync(port: number, transport: Transport, events: number, timeout?: number): Promise<number>
  close(): void
}

export function spawnHonestPeer(): HonestPeerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/honest-peer.ts')], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  let out = ''
  const waiting: Array<(reply: { ms?: number; error?: string }) => void> = []
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString()
    let newline: number
    while ((newline = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, newline)
      out = out.slice(newline + 1)
      if (line.startsWith('{')) waiting.shift()?.(JSON.parse(line))
    }
  })
  child.once('close', () => {
    for (const reply of waiting.splice(0)) reply({ error: 'honest peer process exited' })
  })
  return {
    sync(port, transport, events, timeout = 60_000) {
      return new Promise((resolveSync, reject) => {
        waiting.push((reply) => (reply.ms === undefined ? reject(new Error(reply.error)) : resolveSync(reply.ms)))
        child.stdin!.write(`${JSON.stringify({ port, transport, events, timeout })}\n`)
      })
    },
    close: () => void child.kill('SIGTERM'),
  }
}

/** One raw attacker connection: frames or bytes out, nothing read unless asked. */
export interface Attacker {
  /** Write bytes; false when the local send buffer is full (stop and wait for drain). */
  write(bytes: Uint8Array): boolean
  /** Send one frame as the transport carries it. */
  frame(frame: Uint8Array): boolean
  /** Resolves on 'drain', on close, or after `ms`, whichever comes first. */
  drained(ms?: number): Promise<void>
  closed: Promise<void>
  isClosed(): boolean
  /** Bytes the hub sent that were read (0 while not reading). */
  received(): number
  /** The hub's first frame (its Handshake), read even by an attacker that reads nothing else. */
  first: Promise<Uint8Array>
  destroy(): void
}

let nextLocal = 2
/** A loopback source address other than 127.0.0.1, cycling 127.0.0.2-127.0.0.250, so per-address limits see many attackers. */
export function attackerAddress(): string {
  const address = `127.0.0.${nextLocal}`
  nextLocal = nextLocal >= 250 ? 2 : nextLocal + 1
  return address
}

/** Open a raw connection; `read: false` leaves the socket unread (the hub's writes back up). */
export async function attacker(port: number, transport: Transport, options: { read?: boolean; localAddress?: string; headers?: Record<string, string> } = {}): Promise<Attacker> {
  const localAddress = options.localAddress ?? attackerAddress()
  let received = 0
  let closedFlag = false
  if (transport === 'tcp') {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress })
    socket.on('error', () => {})
    await new Promise<void>((r, reject) => {
      socket.once('connect', r)
      socket.once('close', () => reject(new Error('refused')))
    })
    const decoder = new FrameDecoder(64 * 1024 * 1024)
    const first = new Promise<Uint8Array>((resolveFirst) => {
      const onData = (c: Buffer) => {
        received += c.length
        const frames = decoder.push(c)
        if (frames.length === 0) return
        resolveFirst(frames[0])
        if (options.read === false) {
          socket.off('data', onData)
          socket.pause()
        }
      }
      socket.on('data', onData)
    })
    const closed = new Promise<void>((r) => socket.once('close', () => ((closedFlag = true), r())))
    return {
      first,
      write: (b) => !socket.destroyed && socket.write(b),
      frame: (f) => !socket.destroyed && socket.write(lengthPrefixed(f)),
      drained: (ms) => drainOf(socket, ms),
      closed,
      isClosed: () => closedFlag,
      received: () => received,
      destroy: () => socket.destroy(),
    }
  }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { localAddress, headers: options.headers, perMessageDeflate: false })
  ws.on('error', () => {})
  // Listening before 'open': the hub's Handshake may come in the same read as its 101.
  const first = new Promise<Uint8Array>((resolveFirst) => {
    ws.on('message', (d: Buffer) => {
      received += d.length
      resolveFirst(new Uint8Array(d))
      if (options.read === false) ws.pause()
    })
  })
  await new Promise<void>((r, reject) => {
    ws.once('open', () => r())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    ws.once('close', () => reject(new Error('closed before opening')))
  })
  const socket = (ws as unknown as { _socket: net.Socket })._socket
  const closed = new Promise<void>((r) => ws.once('close', () => ((closedFlag = true), r())))
  const send = (b: Uint8Array) => {
    if (ws.readyState !== WebSocket.OPEN) return false
    ws.send(b)
    return socket.writableLength < 1024 * 1024
  }
  return {
    first,
    // Raw bytes go straight to the socket: already framed (see maskedMessage()).
    write: (b) => !socket.destroyed && socket.write(b),
    frame: send,
    drained: (ms) => drainOf(socket, ms),
    closed,
    isClosed: () => closedFlag,
    received: () => received,
    destroy: () => ws.terminate(),
  }
}

function drainOf(socket: net.Socket, ms = 1000): Promise<void> {
  if (socket.destroyed || socket.writableLength === 0) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      socket.off('drain', done)
      socket.off('close', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    socket.once('drain', done)
    socket.once('close', done)
  })
}

/** The header of one binary WebSocket message of `length` bytes as a client sends it (masked, with a zero key: the bytes stay as they are). */
export function maskedHeader(length: number): Uint8Array {
  const extra = length <= 125 ? 0 : length <= 0xffff ? 2 : 8
  const out = new Uint8Array(2 + extra + 4)
  out[0] = 0x82
  out[1] = 0x80 | (extra === 0 ? length : extra === 2 ? 126 : 127)
  const view = new DataView(out.buffer)
  if (extra === 2) view.setUint16(2, length)
  if (extra === 8) view.setBigUint64(2, BigInt(length))
  return out
}

/** One whole message as maskedHeader() frames it, for raw floods that skip the client's per-send copy. */
export function maskedMessage(payload: Uint8Array): Uint8Array {
  const header = maskedHeader(payload.length)
  const out = new Uint8Array(header.length + payload.length)
  out.set(header)
  out.set(payload, header.length)
  return out
}

/** A random 16-byte writer id (for Clock entries). */
export function randomWriter(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16))
}

/** Handshake and prove a fresh key, as any peer may on an open hub; resolves once sent. */
async function authenticateAs(a: Attacker) {
  const writer = await testWriter()
  a.frame(handshakeFrame(true, crypto.getRandomValues(new Uint8Array(32))))
  const theirs = decodeFrame(await a.first)
  if (theirs.case !== 'handshake') throw new Error(`expected the hub's handshake, got ${theirs.case}`)
  a.frame(await identityFor(writer, theirs.value.challenge))
  return writer
}

/**
 * Send frames from `make()` until `bytes` went out, the connection closed or
 * `ms` passed (a slow hub and a hub that stopped reading look alike from
 * here: only its closing the connection tells). Resolves to the bytes sent.
 */
export async function flood(a: Attacker, make: () => Uint8Array, bytes: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms
  let sent = 0
  while (sent < bytes && !a.isClosed() && Date.now() < deadline) {
    const frame = make()
    sent += frame.byteLength
    if (!a.frame(frame)) await a.drained(50)
  }
  return sent
}

/** Attack 1: a handshake, then pings, never reading a byte. */
export async function pingsWithoutReading(port: number, transport: Transport, bytes: number, ms: number): Promise<{ sent: number; dropped: boolean }> {
  const a = await attacker(port, transport, { read: false })
  await authenticateAs(a)
  // Many pings per write: the hub answers each one.
  const batch = () => {
    const one = transport === 'tcp' ? lengthPrefixed(pingFrame(1)) : maskedMessage(pingFrame(1))
    const out = new Uint8Array(one.length * 4096)
    for (let i = 0; i < 4096; i++) out.set(one, i * one.length)
    return out
  }
  const sent = await flood({ ...a, frame: a.write }, batch, bytes, ms)
  // Once the hub stopped reading it, it drops it when its stall timeout has run.
  const dropped = await Promise.race([a.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))])
  a.destroy()
  return { sent, dropped }
}

/** Attack 2: `sessions` handshakes, each followed by a Clock naming `writers` random writers. */
export async function hugeClocks(port: number, transport: Transport, sessions: number, writers: number): Promise<number> {
  const clock = new Map<string, number>()
  for (let i = 0; i < writers; i++) clock.set(Buffer.from(randomWriter()).toString('hex'), i + 1)
  // Framed once and written raw: hundreds of sessions share one copy of the ~4 MiB.
  const frame = clockFrame(clock)
  const wire = transport === 'tcp' ? lengthPrefixed(frame) : maskedMessage(frame)
  const attackers = await Promise.all(Array.from({ length: sessions }, () => attacker(port, transport).catch(() => undefined)))
  let accepted = 0
  await Promise.all(
    attackers.map(async (a) => {
      if (!a) return
      accepted++
      await authenticateAs(a).catch(() => {})
      a.write(wire)
    }),
  )
  await Promise.all(attackers.map((a) => a && Promise.race([a.closed, new Promise((r) => setTimeout(r, 3000))])))
  for (const a of attackers) a?.destroy()
  return accepted
}

/** Attack 6: connections that announce a frame of `frameBytes` and send `sendBytes` of it, unauthenticated. */
export async function bigFramesBeforeAuth(port: number, transport: Transport, connections: number, frameBytes: number, sendBytes: number): Promise<number> {
  const attackers = await Promise.all(Array.from({ length: connections }, () => attacker(port, transport).catch(() => undefined)))
  const body = new Uint8Array(Math.min(sendBytes, 1024 * 1024))
  let dropped = 0
  await Promise.all(
    attackers.map(async (a) => {
      if (!a) return
      // A length that announces frameBytes, then sendBytes of it from one shared buffer.
      let header = maskedHeader(frameBytes)
      if (transport === 'tcp') {
        header = new Uint8Array(4)
        new DataView(header.buffer).setUint32(0, frameBytes)
      }
      a.write(header)
      for (let sent = 0; sent < sendBytes && !a.isClosed(); sent += body.length) {
        if (!a.write(body.subarray(0, Math.min(body.length, sendBytes - sent)))) await a.drained()
      }
      await Promise.race([a.closed, new Promise((r) => setTimeout(r, 3000))])
      if (a.isClosed()) dropped++
      a.destroy()
    }),
  )
  return dropped
}

/** Attack 8: an accepted session sending Nodes frames of nodes with `links` random links each, `frames` times. */
export async function costlyFrames(port: number, transport: Transport, frames: number, linksPerNode: number): Promise<boolean> {
  const a = await attacker(port, transport)
  const signer = await authenticateAs(a)
  a.frame(clockFrame(new Map()))
  const writer = signer.writer
  const links = Array.from({ length: linksPerNode }, () => crypto.getRandomValues(new Uint8Array(32)))
  const nodes = []
  let size = 0
  for (let seq = 1; size < 3.5 * 1024 * 1024; seq++) {
    const node = encodeNode({ writer, seq, links, value: new Uint8Array(0) })
    nodes.push(node)
    size += node.length + 4
  }
  const frame = await signedNodes(nodes, [signer])
  const wire = transport === 'tcp' ? lengthPrefixed(frame) : maskedMessage(frame)
  for (let i = 0; i < frames && !a.isClosed(); i++) {
    if (!a.write(wire)) await a.drained()
  }
  await Promise.race([a.closed, new Promise((r) => setTimeout(r, 3000))])
  const dropped = a.isClosed()
  a.destroy()
  return dropped
}

/**
 * Attack 3: `count` sockets that connect and send nothing, or (`slowloris`)
 * an HTTP header byte every `every` ms, from 127.0.1.x: addresses that never
 * authenticated (others' attackers do).
 */
export async function idleSockets(port: number, count: number, slowloris = false, every = 500): Promise<{ open: () => number; stop: () => void }> {
  const sockets: net.Socket[] = []
  let open = 0
  const timers: ReturnType<typeof setInterval>[] = []
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.1.${1 + (i % 250)}` })
      socket.on('error', () => {})
      sockets.push(socket)
      await new Promise<void>((r) => {
        socket.once('connect', () => {
          open++
          r()
        })
        socket.once('close', () => r())
      })
      socket.once('close', () => open--)
      if (slowloris) {
        const header = 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: '
        let i = 0
        socket.write(header)
        timers.push(setInterval(() => !socket.destroyed && socket.write(String(i++ % 10)), every))
      }
    }),
  )
  return {
    open: () => open,
    stop: () => {
      for (const t of timers) clearInterval(t)
      for (const s of sockets) s.destroy()
    },
  }
}
