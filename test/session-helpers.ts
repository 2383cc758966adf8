/**
 * Shared scaffolding for the sync session tests: logs, connected sessions,
 * a raw protocol endpoint the test drives by hand, and bounded waits.
 */
import { create } from '@bufbuild/protobuf'
import { MemoryLevel } from 'memory-level'
import { Log } from '../src/core/log/log.js'
import { toHex } from '../src/core/bytes/bytes.js'
import { createMemoryPair } from '../src/transport/memory.js'
import type { FrameChannel, FrameChannelOptions } from '../src/transport/channel.js'
import { SyncSession, type SessionOptions } from '../src/sync/session.js'
import { decodeFrame, encodeFrame, handshakeFrame, type FrameBody } from '../src/sync/protocol.js'
import { ClockSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'
import { identityFor, type Signing, testWriter } from './helpers/signing.js'

export type TestLog = Log

/** A fresh, open, empty log over memory-level. */
export async function makeLog(): Promise<TestLog> {
  const log = new Log(new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' }))
  await log.open()
  return log
}

/** Appends `n` small events to `log`; concurrent appends share group commits, so this is fast. */
export async function appendMany(log: TestLog, n: number, tag = 'e'): Promise<void> {
  const enc = new TextEncoder()
  const pending: Promise<unknown>[] = []
  for (let i = 0; i < n; i++) pending.push(log.append(enc.encode(`${tag}${i}`)))
  await Promise.all(pending)
}

/** Sorted hex of the log's heads. */
export function headKeys(log: TestLog): string[] {
  return log.heads().map(toHex).sort()
}

/** Resolves when `cond()` is true; rejects after `ms` (polls on macrotask turns, bounded). */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** Lets pending timers and microtasks run `turns` times. */
export async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 0))
}

/** Resolves with the session's close error (undefined for a clean close). */
export function closeOf(session: SyncSession): Promise<Error | undefined> {
  return new Promise((resolve) => session.once('close', (err?: Error) => resolve(err)))
}

/** A channel wrapper that records every frame sent through it (decoded). */
export function tap(channel: FrameChannel): { channel: FrameChannel; sent: FrameBody[] } {
  const sent: FrameBody[] = []
  const wrapped = Object.create(channel) as FrameChannel
  Object.defineProperty(wrapped, 'send', {
    value: (frame: Uint8Array) => {
      sent.push(decodeFrame(frame.slice()))
      return channel.send(frame)
    },
  })
  for (const key of ['bufferedAmount', 'closed', 'remote', 'maxFrameSize', 'kind'] as const) {
    Object.defineProperty(wrapped, key, { get: () => channel[key] })
  }
  for (const key of ['pause', 'resume', 'close', 'on', 'off'] as const) {
    Object.defineProperty(wrapped, key, { value: (channel[key] as (...a: unknown[]) => unknown).bind(channel) })
  }
  return { channel: wrapped, sent }
}

export interface Connected {
  a: SyncSession
  b: SyncSession
  sentByA: FrameBody[]
  sentByB: FrameBody[]
  closedA: Promise<Error | undefined>
  closedB: Promise<Error | undefined>
}

/** Two sessions over a memory pair, started, keep-alive off unless asked. */
export function connect(
  logA: TestLog,
  logB: TestLog,
  optsA: SessionOptions = {},
  optsB: SessionOptions = {},
  channelOpts: FrameChannelOptions = {},
): Connected {
  const [ca, cb] = createMemoryPair(channelOpts)
  const ta = tap(ca)
  const tb = tap(cb)
  const a = new SyncSession(logA, ta.channel, { keepAliveInterval: 0, ...optsA })
  const b = new SyncSession(logB, tb.channel, { keepAliveInterval: 0, ...optsB })
  const closedA = closeOf(a)
  const closedB = closeOf(b)
  a.start()
  b.start()
  return { a, b, sentByA: ta.sent, sentByB: tb.sent, closedA, closedB }
}

/** Node bytes carried by the Nodes frames in `frames`. */
export function nodesIn(frames: FrameBody[]): Uint8Array[] {
  return frames.flatMap((f) => (f.case === 'nodes' ? f.value.nodes : []))
}

/** One end of a memory pair driven by the test: records decoded frames, sends raw bytes. */
export class RawPeer {
  readonly frames: FrameBody[] = []
  readonly undecodable: Uint8Array[] = []
  closed = false
  closeError?: Error

  constructor(readonly channel: FrameChannel) {
    channel.on('frame', (bytes) => {
      try {
        this.frames.push(decodeFrame(bytes))
      } catch {
        this.undecodable.push(bytes)
      }
    })
    channel.on('close', (err) => {
      this.closed = true
      this.closeError = err
    })
  }

  send(frame: Uint8Array): void {
    if (!this.channel.closed) this.channel.send(frame)
  }

  /** Sends our Handshake, waits for the session's, and proves `as`'s key with an Identity. */
  async handshake(as: Signing, opts: { live?: boolean; token?: string; version?: number } = {}): Promise<void> {
    this.send(handshakeFrame(opts.live ?? true, crypto.getRandomValues(new Uint8Array(32)), opts.version))
    await until(() => this.frames.some((f) => f.case === 'handshake') || this.closed, 5000, "the session's handshake")
    const theirs = this.of('handshake')[0]
    if (theirs) this.send(await identityFor(as, theirs.challenge, opts.token))
  }

  emptyClock(): void {
    this.send(encodeFrame({ case: 'clock', value: create(ClockSchema, { entries: [] }) }))
  }

  of<C extends NonNullable<FrameBody['case']>>(kind: C): Extract<FrameBody, { case: C }>['value'][] {
    return this.frames.filter((f) => f.case === kind).map((f) => f.value) as never
  }
}

/** A session on `log` whose other end is a RawPeer. */
export function withRawPeer(
  log: TestLog,
  opts: SessionOptions = {},
  channelOpts: FrameChannelOptions = {},
): { session: SyncSession; peer: RawPeer; closed: Promise<Error | undefined> } {
  const [ca, cb] = createMemoryPair(channelOpts)
  const peer = new RawPeer(cb)
  const session = new SyncSession(log, ca, { keepAliveInterval: 0, ...opts })
  const closed = closeOf(session)
  session.start()
  return { session, peer, closed }
}

/** A writer with a fresh key, backed by no log. */
export const randomWriter = testWriter

export { within } from './helpers/within.js'
