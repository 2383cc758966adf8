/**
 * An event too large for the wire is refused at emit(), so no node exists
 * that a peer could not take: replication never jams on one.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, HyperEmitter } from '../src/index.js'
import { until } from './session-helpers.js'

import type { Log } from '../src/core/log/log.js'

const logLength = (e: HyperEmitter) => (e as unknown as { log: Log }).log.length
const SCHEMA = 'syntax = "proto3"; package t; message Blob { bytes data = 1; } message Note { string text = 1; }'
const open: HyperEmitter[] = []
const make = (opts: Record<string, unknown> = {}) => {
  const e = HyperEmitter(null, SCHEMA, { reconnectKnown: false, discover: false, ...opts })
  open.push(e)
  return e
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

describe('maxEventSize', () => {
  it('refuses a 5 MiB event at emit() with EVENT_TOO_LARGE naming the limit, and stores nothing', async () => {
    const e = make()
    await e.ready()
    const before = logLength(e)
    const err = await e.emit('t.Blob', { data: new Uint8Array(5 * 1024 * 1024) }).catch((x) => x)
    expect(err).toMatchObject({ code: ErrorCodes.EVENT_TOO_LARGE, details: { maxEventSize: 4 * 1024 * 1024 - 64 * 1024 } })
    expect(err.message).toMatch(/maxEventSize/)
    await e.emit('t.Note', { text: 'after' })
    expect(logLength(e)).toBe(before + 1)
  })

  it('follows maxFrameSize, and refuses a maxEventSize no frame could carry', () => {
    expect(() => make({ maxFrameSize: 64 * 1024, maxEventSize: 60 * 1024 })).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
    expect(() => make({ maxEventSize: 0 })).toThrow(expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }))
  })

  it.each(['tcp', 'websocket'] as const)('an event at the limit reaches a peer over %s, and so do the events after it', async (transport) => {
    const opts = { maxFrameSize: 64 * 1024 }
    const hub = make(opts)
    const peer = make(opts)
    const { port } = await hub.listen(0, '127.0.0.1')
    const got: string[] = []
    peer.on('t.Note', (m: { text: string }) => void got.push(m.text))
    let blobs = 0
    peer.on('t.Blob', () => void blobs++)
    await (transport === 'tcp' ? peer.connect(port, '127.0.0.1') : peer.connect(`ws://127.0.0.1:${port}/`))
    // 48 KiB: a quarter of a 64 KiB frame is kept for links and framing.
    const limit = 48 * 1024
    const refused = await hub.emit('t.Blob', { data: new Uint8Array(limit) }).catch((x) => x)
    expect(refused).toMatchObject({ code: ErrorCodes.EVENT_TOO_LARGE })
    await hub.emit('t.Blob', { data: new Uint8Array(limit - 16) })
    await hub.emit('t.Note', { text: 'after the big one' })
    await until(() => got.length === 1 && blobs === 1, 10_000, 'both events at the peer')
    expect(got).toEqual(['after the big one'])
  })
})
