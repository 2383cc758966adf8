import { afterEach, describe, expect, it } from 'vitest'
import { HyperEmitter } from '../src/index.js'
import { within } from './helpers/within.js'

const SCHEMA = 'syntax = "proto3"; message Hello { string text = 1; }'
const HOST = '127.0.0.1'
const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const e of open.splice(0)) await e.close()
})
function make() {
  const e = HyperEmitter(null, SCHEMA)
  open.push(e)
  return e
}

describe('verified authors', () => {
  it('listeners (third argument), events() and stream() tell who wrote each event, as verified over the wire', async () => {
    const hub = make()
    const alice = make()
    const { port } = await hub.listen(0, HOST)
    await within((await alice.connect(port, HOST)).synced, 10_000, 'alice synced')

    const seen: Array<{ text: string; publicKey?: string; writer?: string }> = []
    hub.on('Hello', (m: { text: string }, done, author) => {
      seen.push({ text: m.text, publicKey: author?.publicKey, writer: author?.writer })
      done()
    })
    const iterator = hub.events()
    const stream = (hub as any).stream()
    await alice.emit('Hello', { text: 'from alice' })
    await within(
      (async () => {
        while (seen.length < 1) await new Promise((r) => setTimeout(r, 5))
      })(),
      5000,
      "alice's event at the hub",
    )
    await hub.emit('Hello', { text: 'from the hub' })

    const first = (await iterator.next()).value
    expect(first).toEqual({ name: 'Hello', payload: { text: 'from alice' } })
    expect(first.author).toEqual({ writer: await alice.getId(), publicKey: await alice.getPublicKey() })
    expect((await iterator.next()).value.author).toEqual({ writer: await hub.getId(), publicKey: await hub.getPublicKey() })
    const streamed = await new Promise<any>((resolve) => stream.once('data', resolve))
    expect(streamed.author.publicKey).toBe(await alice.getPublicKey())
    await within(
      (async () => {
        while (seen.length < 2) await new Promise((r) => setTimeout(r, 5))
      })(),
      5000,
      'listener',
    )
    expect(seen).toEqual([
      { text: 'from alice', publicKey: await alice.getPublicKey(), writer: await alice.getId() },
      { text: 'from the hub', publicKey: await hub.getPublicKey(), writer: await hub.getId() },
    ])
    await iterator.return?.()
    stream.destroy()
  })
})
