// Frames/s between two channels on 127.0.0.1: N frames of SIZE bytes, sent
// with backpressure respected (send until false, then wait for 'drain'),
// timed from the first send to the last frame received. Prints one JSON line
// per scenario. Run: npx tsx bench/transport.ts [N=100000] [SIZE=100] [reps=5]
//
// Baseline: the same frames as one socket.write each over a bare net socket,
// decoded by FrameDecoder: what a channel without write batching would do.
import * as net from 'node:net'
import type { FrameChannel } from '../src/transport/channel.js'
import { HubServer } from '../src/node/hub-server.js'
import { connectTcp, encodeFrame, FrameDecoder } from '../src/transport/tcp.js'
import { connectWebSocket } from '../src/transport/websocket.js'
import { peakRssMb, printJson } from './common.js'

const N = Number(process.argv[2] ?? 100_000)
const SIZE = Number(process.argv[3] ?? 100)
const REPS = Number(process.argv[4] ?? 5)

function frames(): Uint8Array[] {
  return Array.from({ length: N }, (_, i) => {
    const f = new Uint8Array(SIZE)
    new DataView(f.buffer).setUint32(0, i)
    return f
  })
}

/** Time N frames from `from` to `to`; checks count and order on the way. */
async function run(from: FrameChannel, to: FrameChannel, data: Uint8Array[]): Promise<number> {
  let got = 0
  let inOrder = true
  const done = new Promise<void>((resolve, reject) => {
    const onFrame = (f: Uint8Array) => {
      if (new DataView(f.buffer, f.byteOffset, f.byteLength).getUint32(0) !== got) inOrder = false
      if (++got === data.length) {
        to.off('frame', onFrame)
        resolve()
      }
    }
    to.on('frame', onFrame)
    to.on('close', (err) => reject(err ?? new Error('receiver closed')))
  })
  const start = performance.now()
  for (const f of data) {
    if (!from.send(f)) await new Promise<void>((resolve) => from.on('drain', function d() {
      from.off('drain', d)
      resolve()
    }))
  }
  await done
  const ms = performance.now() - start
  if (!inOrder) throw new Error('frames out of order')
  return ms
}

async function hubPair(kind: 'tcp' | 'websocket'): Promise<{ client: FrameChannel; server: FrameChannel; close: () => Promise<void> }> {
  let accept!: (c: FrameChannel) => void
  const accepted = new Promise<FrameChannel>((resolve) => (accept = resolve))
  const hub = new HubServer({ onChannel: (c, info) => (info.authenticated(), accept(c)) })
  const { port } = await hub.listen(0, '127.0.0.1')
  const client = kind === 'tcp' ? await connectTcp(port, '127.0.0.1') : await connectWebSocket(`ws://127.0.0.1:${port}/`)
  // The hub makes a TCP channel on the peer's first byte: say hello, and swallow it.
  client.send(new Uint8Array(0))
  const server = await accepted
  await new Promise<void>((resolve) => server.on('frame', function hello() {
    server.off('frame', hello)
    resolve()
  }))
  return {
    client,
    server,
    close: async () => {
      client.close()
      await hub.close()
    },
  }
}

function summarize(scenario: string, times: number[]): void {
  const sorted = [...times].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]
  printJson({
    bench: 'transport',
    scenario,
    frames: N,
    frameBytes: SIZE,
    reps: times.length,
    framesPerSec: Math.round(N / (median / 1000)),
    bestFramesPerSec: Math.round(N / (sorted[0] / 1000)),
    medianMs: Math.round(median),
    mbPerSec: Math.round(((N * SIZE) / (median / 1000) / 1e6) * 10) / 10,
    peakRssMb: peakRssMb(),
  })
}

async function channelScenario(kind: 'tcp' | 'websocket', direction: 'client->hub' | 'hub->client'): Promise<void> {
  const data = frames()
  const pair = await hubPair(kind)
  const [from, to] = direction === 'client->hub' ? [pair.client, pair.server] : [pair.server, pair.client]
  await run(from, to, data.slice(0, Math.min(N, 10_000))) // warm-up
  const times: number[] = []
  for (let r = 0; r < REPS; r++) times.push(await run(from, to, data))
  await pair.close()
  summarize(`${kind} ${direction}`, times)
}

/** Baseline: one socket.write per frame, no batching. */
async function rawScenario(): Promise<void> {
  const encoded = frames().map(encodeFrame)
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  const sender = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  sender.setNoDelay(true)
  await new Promise<void>((resolve) => sender.once('connect', () => resolve()))
  const receiver = await accepted
  const times: number[] = []
  for (let r = 0; r < REPS; r++) {
    const decoder = new FrameDecoder()
    let got = 0
    const done = new Promise<void>((resolve) => {
      const onData = (chunk: Buffer) => {
        got += decoder.push(chunk).length
        if (got === N) {
          receiver.off('data', onData)
          resolve()
        }
      }
      receiver.on('data', onData)
    })
    const start = performance.now()
    for (const f of encoded) {
      if (!sender.write(f)) await new Promise((resolve) => sender.once('drain', resolve))
    }
    await done
    times.push(performance.now() - start)
  }
  sender.destroy()
  receiver.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  summarize('raw net, one write per frame (baseline)', times)
}

await rawScenario()
await channelScenario('tcp', 'client->hub')
await channelScenario('tcp', 'hub->client')
await channelScenario('websocket', 'client->hub')
await channelScenario('websocket', 'hub->client')
