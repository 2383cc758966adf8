// Compile-time checks of the typed API (run by `npm run typecheck`): with
// protoc-gen-es schemas, emit() and on() are checked by event name.
import { describe, expect, expectTypeOf, it } from 'vitest'
import { AddressSchema, KnownPeerSchema } from '../src/gen/hyperemitter/v1/peer_pb.js'
import { HyperEmitter } from '../src/index.js'

type Address = { ip: string; port: number; url: string }

describe('typed emitter', () => {
  it('checks event names and message shapes from generated schemas', async () => {
    const e = new HyperEmitter(null, [AddressSchema, KnownPeerSchema])
    const seen: Address[] = []
    e.on('Address', (m) => {
      expectTypeOf(m).toEqualTypeOf<Address>()
      seen.push(m)
    })
    e.on('hyperemitter.v1.KnownPeer', (m) => {
      expectTypeOf(m.last_synced).toEqualTypeOf<bigint>()
    })
    await e.emit('Address', { ip: '127.0.0.1', port: 1 })
    await e.emit('KnownPeer', { address: 'tcp://x:1', last_synced: 5 })
    // @ts-expect-error not an event of this schema
    await e.emit('Nope', {}).catch(() => {})
    // @ts-expect-error port is a number
    await e.emit('Address', { port: 'x' }).catch(() => {})
    // @ts-expect-error the handler's message is an Address
    e.on('Address', (m: { nope: number }) => void m)
    await expect.poll(() => seen.length).toBe(1)
    await e.close()
  })

  it('is untyped (any payload) without generated schemas', async () => {
    const e = HyperEmitter(null, 'message A { optional int32 n = 1; }')
    e.on('A', (m) => expectTypeOf(m).toBeAny())
    await e.emit('A', { n: 1 })
    await e.close()
  })
})
