/**
 * Remembered peers and their tokens, end to end over real sockets on
 * 127.0.0.1 (ephemeral ports): a hub whose authenticate hook wants a token,
 * an emitter that connected with it, closed, and came back on the same
 * classic-level directory. It reconnects by itself with the stored token;
 * `remember: false` stores nothing; a later connect() replaces the token; a
 * stored token that is refused is given up on once, saying so; records
 * written before tokens were stored still load. Then the same for a page's
 * hub connections (BrowserHyperEmitter without tabs, as in Node tests).
 */
import { readFileSync } from 'node:fs'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { MemoryLevel } from 'memory-level'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { HyperEmitter as BrowserEmitter } from '../src/browser.js'
import type { Log } from '../src/core/log/log.js'
import { KnownPeerSchema } from '../src/gen/hyperemitter/v1/peer_pb.js'
import { HyperEmitter, ErrorCodes, isHyperEmitterError, type Db, type Peer, type ReplicationOptions } from '../src/index.js'
import type { IncomingPeer } from '../src/sync/peers.js'
import { DbKnownPeers } from '../src/sync/known-peers.js'
import { classicFactory } from './helpers/dbs.js'
import { until, within } from './session-helpers.js'

const SCHEMA = readFileSync(new URL('./fixtures/messages.proto', import.meta.url), 'utf8')
const HOST = '127.0.0.1'
const TOKEN = 'tok-7f3a-for-the-hub'

type Emitter = HyperEmitter

const classic = classicFactory()
const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {})
})
afterAll(() => classic.cleanup())

function logOf(e: Emitter): Log {
  return (e as unknown as { log: Log }).log
}

function make(db: Db | null, options: ReplicationOptions = {}): Emitter {
  const e = HyperEmitter(db, SCHEMA, { reconnectTimeout: 20, maxReconnectTimeout: 100, ...options })
  e.status.on('error', () => {})
  cleanups.push(() => e.close())
  return e
}

function classicDb(): Db {
  const db = classic.create()
  cleanups.push(() => db.close())
  return db
}

function reopen(db: Db): Db {
  const again = classic.reopen(db)!
  cleanups.push(() => again.close())
  return again
}

/** A hub that lets in only the tokens in `accepted` (changeable), recording every token it was shown. */
async function tokenHub(accepted: Set<string>) {
  const seen: string[] = []
  const hub = make(null, {
    authenticate: (peer: IncomingPeer) => {
      seen.push(peer.token)
      return accepted.has(peer.token)
    },
  })
  const { port } = await hub.listen(0, HOST)
  return { hub, port, seen }
}

/** Resolves at the emitter's next peer:synced; rejects with the error of a peer:failed, or after `ms`. */
function nextSync(e: Emitter, ms = 10_000): Promise<any> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer)
      e.status.off('peer:synced', onSynced)
      e.status.off('peer:failed', onFailed)
    }
    const onSynced = (info: any) => {
      done()
      resolve(info)
    }
    const onFailed = (info: any) => {
      done()
      reject(info.error)
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error('timed out waiting for peer:synced'))
    }, ms)
    e.status.on('peer:synced', onSynced)
    e.status.on('peer:failed', onFailed)
  })
}

/** What the db remembers (read after the emitter closed, on a new handle). */
async function remembered(db: Db) {
  return (await new DbKnownPeers(db).list()).sort((a, b) => a.address.localeCompare(b.address))
}

/** True if `text` appears anywhere in the db's keys or values, any sublevel. */
async function dbContains(db: Db, text: string): Promise<boolean> {
  const needle = Buffer.from(text)
  const all = await db.iterator<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' }).all()
  return all.some(([k, v]) => Buffer.from(k).includes(needle) || Buffer.from(v).includes(needle))
}

const transports = [
  { name: 'tcp', connect: (e: Emitter, port: number, o: object) => e.connect(port, HOST, o), address: (port: number) => `tcp://${HOST}:${port}` },
  {
    name: 'websocket',
    connect: (e: Emitter, port: number, o: object) => e.connect(`ws://${HOST}:${port}/`, o),
    address: (port: number) => `ws://${HOST}:${port}/`,
  },
]

describe.each(transports)('known peers with a token, over $name', (T) => {
  it('a restarted emitter reconnects with the token it connected with, by itself, and catches up', async () => {
    const { hub, port, seen } = await tokenHub(new Set([TOKEN]))
    const dbB = classicDb()
    const b = make(dbB)
    const peer: Peer = await T.connect(b, port, { token: TOKEN })
    await within(peer.synced, 10_000, 'first sync')
    await b.emit('Hello', { from: 'b', message: 'before restart' })
    await until(() => logOf(hub).length === logOf(b).length, 10_000, 'hub has b')
    await b.close()
    await dbB.close()

    // Missed while b was away.
    for (let i = 0; i < 3; i++) await hub.emit('Hello', { from: 'hub', message: `missed ${i}` })
    const dbB2 = reopen(dbB)
    const b2 = make(dbB2)
    const synced = nextSync(b2)
    const got: string[] = []
    b2.on('Hello', (m: any) => void got.push(m.message))
    // No connect(): the peer and its token come from the db.
    const info = await synced
    expect(info).toMatchObject({ direction: 'outgoing', address: T.address(port), id: await hub.getId() })
    expect(seen.slice(-1)).toEqual([TOKEN])
    await until(() => got.length === 3, 10_000, 'the missed events')
    expect(got).toEqual(['missed 0', 'missed 1', 'missed 2'])
    expect(b2.peers.map((p) => [p.address, p.state])).toEqual([[T.address(port), 'synced']])
    // Stored as given, in clear.
    expect(await remembered(dbB2)).toEqual([{ address: T.address(port), lastSynced: expect.any(Number), token: TOKEN }])
  })

  it('remember: false stores neither the peer nor its token, and removes what an earlier run stored', async () => {
    const { port } = await tokenHub(new Set([TOKEN]))
    const dbB = classicDb()
    const b = make(dbB)
    await within((await T.connect(b, port, { token: TOKEN })).synced, 10_000, 'sync, remembered')
    await b.close()
    await dbB.close()
    const dbB2 = reopen(dbB)
    expect((await remembered(dbB2)).map((p) => p.token)).toEqual([TOKEN])

    // This run: remember: false. The peer from the db is being redialed; the record goes anyway.
    const b2 = make(dbB2)
    const peer = await T.connect(b2, port, { token: TOKEN, remember: false })
    await within(peer.synced, 10_000, 'sync, not remembered')
    await b2.close()
    await dbB2.close()

    const dbB3 = reopen(dbB2)
    expect(await remembered(dbB3)).toEqual([])
    expect(await dbContains(dbB3, TOKEN)).toBe(false)
    // And nothing is dialed at start-up.
    const b3 = make(dbB3)
    const connected: unknown[] = []
    b3.status.on('peer:connected', (i: unknown) => void connected.push(i))
    await b3.ready()
    await new Promise((r) => setTimeout(r, 200))
    expect(connected).toEqual([])
    expect(b3.peers).toEqual([])
  })

  it('a first connect() with remember: false stores nothing at all', async () => {
    const { port } = await tokenHub(new Set([TOKEN]))
    const dbB = classicDb()
    const b = make(dbB)
    const peer = await T.connect(b, port, { token: TOKEN, remember: false })
    await within(peer.synced, 10_000, 'sync')
    await b.close()
    await dbB.close()
    const again = reopen(dbB)
    expect(await remembered(again)).toEqual([])
    expect(await dbContains(again, TOKEN)).toBe(false)
  })

  it('a later connect() with another token replaces the stored one at once; a restart uses the new one', async () => {
    const accepted = new Set(['first', 'second'])
    const { port, seen } = await tokenHub(accepted)
    const dbB = classicDb()
    const b = make(dbB)
    const peer = await T.connect(b, port, { token: 'first' })
    await within(peer.synced, 10_000, 'sync')
    // Same address, new token: the same Peer, and the db holds the new token.
    expect(await T.connect(b, port, { token: 'second' })).toBe(peer)
    await b.close()
    await dbB.close()
    const dbB2 = reopen(dbB)
    expect((await remembered(dbB2)).map((p) => p.token)).toEqual(['second'])

    accepted.delete('first')
    const b2 = make(dbB2)
    await nextSync(b2)
    expect(seen.slice(-1)).toEqual(['second'])
  })

  it('a stored token the hub now refuses: peer:failed says so, once, no retries; connect() with a new token fixes it', async () => {
    const accepted = new Set(['old'])
    const { port, seen } = await tokenHub(accepted)
    const dbB = classicDb()
    const b = make(dbB)
    await within((await T.connect(b, port, { token: 'old' })).synced, 10_000, 'sync')
    await b.close()
    await dbB.close()

    accepted.clear()
    accepted.add('new')
    const shown = seen.length
    const dbB2 = reopen(dbB)
    const b2 = make(dbB2)
    const errors: any[] = []
    b2.status.on('peer:error', (i: any) => void errors.push(i))
    const err: any = await nextSync(b2).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isHyperEmitterError(err, ErrorCodes.UNAUTHORIZED)).toBe(true)
    expect(err.message).toContain('token stored for it in the db')
    expect(err.details).toMatchObject({ address: T.address(port), storedToken: true })
    expect(errors.some((i) => isHyperEmitterError(i.error, ErrorCodes.UNAUTHORIZED))).toBe(true)
    expect(seen.slice(shown)).toEqual(['old'])
    expect(b2.peers).toEqual([])
    // Given up: several reconnect windows (20-100 ms) pass without another attempt.
    await new Promise((r) => setTimeout(r, 400))
    expect(seen.slice(shown)).toEqual(['old'])

    const peer = await T.connect(b2, port, { token: 'new' })
    await within(peer.synced, 10_000, 'sync with the new token')
    await b2.close()
    await dbB2.close()
    const dbB3 = reopen(dbB2)
    expect((await remembered(dbB3)).map((p) => p.token)).toEqual(['new'])
  })
})

describe('known peer records', () => {
  it('records written before tokens were stored still load, and reconnect without a token', async () => {
    const open = make(null)
    const { port } = await open.listen(0, HOST)
    const db = classicDb()
    // The record exactly as the code before tokens wrote it: KnownPeer { address, lastSynced }.
    const known = db
      .sublevel<string, Uint8Array>('hyperemitter-peers', { keyEncoding: 'utf8', valueEncoding: 'view' })
      .sublevel<string, Uint8Array>('known', { keyEncoding: 'utf8', valueEncoding: 'view' })
    const address = `tcp://${HOST}:${port}`
    await known.put(address, toBinary(KnownPeerSchema, create(KnownPeerSchema, { address, lastSynced: 1234n })))
    // Next to one written now, with a token.
    await new DbKnownPeers(db).remember('ws://127.0.0.1:1/', 99, 'secret')
    expect(await remembered(db)).toEqual([
      { address, lastSynced: 1234 },
      { address: 'ws://127.0.0.1:1/', lastSynced: 99, token: 'secret' },
    ])
    // A new record still reads as a KnownPeer for code that knows only address and lastSynced.
    const plain = fromBinary(KnownPeerSchema, (await known.get('ws://127.0.0.1:1/'))!)
    expect([plain.address, plain.lastSynced]).toEqual(['ws://127.0.0.1:1/', 99n])

    const b = make(db)
    const info = await nextSync(b)
    expect(info).toMatchObject({ address, id: await open.getId() })
  })
})

describe('a page remembers its hub with the token', () => {
  function page(db: Db) {
    const p = BrowserEmitter(db, SCHEMA, { reconnectTimeout: 20, maxReconnectTimeout: 100 })
    cleanups.push(() => p.close())
    return p
  }

  it('reconnects to the hub with the stored token after a reload; remember: false stores nothing', async () => {
    const { port, seen } = await tokenHub(new Set([TOKEN]))
    const url = `ws://${HOST}:${port}/`
    const db = new MemoryLevel()
    cleanups.push(() => db.close())
    const first = page(db)
    await within((await first.connect(url, { token: TOKEN })).synced, 10_000, 'page sync')
    await first.close()

    // A reload on the same db: no connect() call.
    const second = page(db)
    const failed: any[] = []
    second.status.on('peer:failed', (i: any) => void failed.push(i))
    await until(() => second.connection.state === 'synced' || failed.length > 0, 10_000, 'synced with the remembered hub')
    expect(failed).toEqual([])
    expect(second.connection.state).toBe('synced')
    expect(seen.slice(-1)).toEqual([TOKEN])
    await second.close()
    expect(await remembered(db)).toEqual([{ address: url, lastSynced: expect.any(Number), token: TOKEN }])

    const other = new MemoryLevel()
    cleanups.push(() => other.close())
    const third = page(other)
    await within((await third.connect(url, { token: TOKEN, remember: false })).synced, 10_000, 'sync, not remembered')
    await third.close()
    expect(await remembered(other)).toEqual([])
  })
})
