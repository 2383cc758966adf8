/**
 * Discovery that cannot be abused: an EventPeer names an address of its
 * writer's choosing, so it is dialed only when the application allows it,
 * never at a private address unless allowed, and never stored.
 */
import * as net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { HyperEmitter, type ReplicationOptions } from '../src/index.js'
import { isPrivateHost } from '../src/sync/addresses.js'
import { publicLookup } from '../src/node/public-lookup.js'
import type { KnownPeerRecord } from '../src/sync/peers.js'
import { until } from './session-helpers.js'

const SCHEMA = 'syntax = "proto3"; package t; message Note { string text = 1; }'
const HOST = '127.0.0.1'
const open: Array<{ close(): Promise<unknown> }> = []

function make(options: ReplicationOptions = {}) {
  const e = HyperEmitter(null, SCHEMA, { reconnectKnown: false, reconnectTimeout: 50, ...options })
  e.status.on('error', () => {})
  open.push(e)
  return e
}

/** A TCP server that only counts the connections it gets (what a dialed victim would see). */
async function victim(): Promise<{ port: number; connections: () => number }> {
  let count = 0
  const server = net.createServer((socket) => {
    count++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  open.push({ close: () => new Promise((resolve) => server.close(resolve)) })
  return { port: (server.address() as net.AddressInfo).port, connections: () => count }
}

/** A writer connected to `port` that announces `ip:targetPort` as its own address. */
async function announcer(port: number, ip: string, targetPort: number) {
  const writer = make({ discover: false })
  await writer.connect(port, HOST)
  await writer.emit('hyperemitter.v1.EventPeer' as never, { id: 'ff'.repeat(16), addresses: [{ ip, port: targetPort, url: '' }] } as never)
  return writer
}

const knownPeers = (e: unknown) => (e as { knownPeers: { list(): Promise<KnownPeerRecord[]> } }).knownPeers.list()
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 5))
}

afterEach(async () => {
  await Promise.all(open.splice(0).reverse().map((e) => e.close()))
})

describe('EventPeer discovery', () => {
  it('a hub (it accepts peers) dials nobody a writer names, by default', async () => {
    const target = await victim()
    const hub = make()
    const { port } = await hub.listen(0, HOST)
    let heard = 0
    hub.on('hyperemitter.v1.EventPeer' as never, () => void heard++)
    await announcer(port, HOST, target.port)
    await until(() => heard > 0, 10_000, 'the EventPeer at the hub')
    await turns(20)
    expect(target.connections()).toBe(0)
    expect(hub.peers).toEqual([])
  })

  it('discover: true (a peer that does not listen) never dials a private or loopback address a writer names', async () => {
    const target = await victim()
    const hub = make({ discover: false })
    const { port } = await hub.listen(0, HOST)
    const peer = make({ discover: true })
    let heard = 0
    peer.on('hyperemitter.v1.EventPeer' as never, () => void heard++)
    await peer.connect(port, HOST)
    for (const ip of [HOST, 'localhost', '10.1.2.3', '::1']) await announcer(port, ip, target.port)
    await until(() => heard >= 4, 10_000, 'the EventPeers at the peer')
    await turns(20)
    expect(target.connections()).toBe(0)
    expect(peer.peers.map((p) => p.address)).toEqual([`tcp://${HOST}:${port}`])
  })

  it('a discover function decides, sees private addresses flagged, and a peer it allows is dialed but never stored', async () => {
    const target = make({ discover: false })
    const { port: targetPort } = await target.listen(0, HOST)
    const hub = make({ discover: false })
    const { port } = await hub.listen(0, HOST)
    const asked: Array<{ address: string; private: boolean }> = []
    const peer = make({ discover: (p) => (asked.push({ address: p.address, private: p.private }), p.address.endsWith(`:${targetPort}`)) })
    await peer.connect(port, HOST)
    await announcer(port, HOST, targetPort)
    await until(() => peer.peers.some((p) => p.address === `tcp://${HOST}:${targetPort}` && p.state === 'synced'), 10_000, 'the allowed peer synced')
    expect(asked).toContainEqual({ address: `tcp://${HOST}:${targetPort}`, private: true })
    const stored = (await knownPeers(peer)).map((r) => r.address)
    expect(stored).toEqual([`tcp://${HOST}:${port}`])
  })
})

describe('private addresses', () => {
  it('are told from public ones', () => {
    for (const host of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.1.1', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', 'localhost', 'a.localhost', '[::1]']) {
      expect(isPrivateHost(host), host).toBe(true)
    }
    for (const host of ['8.8.8.8', '1.1.1.1', '2606:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateHost(host), host).toBe(false)
    expect(isPrivateHost('example.com')).toBeUndefined()
  })

  it('a name resolving to one fails to connect through publicLookup', async () => {
    const err = await new Promise<Error | null>((resolve) => publicLookup('localhost', { all: true }, (e) => resolve(e)))
    expect(err?.message).toMatch(/private address/)
  })
})
