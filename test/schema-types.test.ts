// Compile-time checks of the type helpers (run by `npx tsc -p .`; at run time
// vitest only sees the few value assertions).
import { describe, expectTypeOf, it, expect } from 'vitest'
import type { EventMapOf, InputOf, PlainOf, ProtoFieldName } from '../src/core/codec/schema.js'
import { Codecs } from '../src/core/codec/schema.js'
import { AddressSchema, EventPeerSchema, KnownPeerSchema } from '../src/gen/hyperemitter/v1/peer_pb.js'
import { ClockSchema, FrameSchema, HandshakeSchema, PingSchema } from '../src/gen/hyperemitter/v1/sync_pb.js'
import { EventSchema } from '../src/gen/hyperemitter/v1/log_pb.js'

type Address = { ip: string; port: number; url: string }

describe('PlainOf', () => {
  it('drops $typeName, recursively', () => {
    expectTypeOf<PlainOf<typeof AddressSchema>>().toEqualTypeOf<Address>()
    expectTypeOf<PlainOf<typeof EventPeerSchema>>().toEqualTypeOf<{ id: string; addresses: Address[] }>()
    expectTypeOf<PlainOf<typeof EventSchema>>().toEqualTypeOf<{ name: string; payload: Uint8Array }>()
  })

  it('uses the .proto field names, as decode() does', () => {
    expectTypeOf<ProtoFieldName<'protocolVersion'>>().toEqualTypeOf<'protocol_version'>()
    expectTypeOf<ProtoFieldName<'constructor$'>>().toEqualTypeOf<'constructor'>()
    expectTypeOf<PlainOf<typeof HandshakeSchema>>().toEqualTypeOf<{ protocol_version: number; live: boolean; challenge: Uint8Array; max_frame_size: number }>()
    expectTypeOf<PlainOf<typeof KnownPeerSchema>>().toEqualTypeOf<{ address: string; last_synced: bigint; token: string }>()
    // and it is what decode() really returns
    const c = Codecs.fromSync([HandshakeSchema])
    const h = c.decode('Handshake', c.encode('Handshake', { protocolVersion: 1 })) as PlainOf<typeof HandshakeSchema>
    expect(h.protocol_version).toBe(1)
  })

  it('flattens oneofs into optional members', () => {
    type F = PlainOf<typeof FrameSchema>
    expectTypeOf<F['ping']>().toEqualTypeOf<{ nonce: bigint } | undefined>()
    expectTypeOf<F['handshake']>().toEqualTypeOf<PlainOf<typeof HandshakeSchema> | undefined>()
    expectTypeOf<F>().not.toHaveProperty('body')
    expectTypeOf<keyof F>().toEqualTypeOf<'handshake' | 'clock' | 'nodes' | 'synced' | 'ack' | 'error' | 'ping' | 'pong' | 'identity' | 'refused'>()
    expectTypeOf<PlainOf<typeof ClockSchema>['entries']>().toEqualTypeOf<{ writer: Uint8Array; seq: bigint; tip: Uint8Array }[]>()
    const c = Codecs.fromSync([FrameSchema])
    const f = c.decode('Frame', c.encode('Frame', { ping: { nonce: 7 } })) as F
    expect(f.ping?.nonce).toBe(7n)
    expect(Object.keys(f)).toEqual(['ping'])
  })
})

describe('InputOf', () => {
  it('makes every field optional and takes 64-bit integers as bigint, number or string', () => {
    expectTypeOf<InputOf<typeof PingSchema>>().toEqualTypeOf<{ nonce?: bigint | number | string }>()
    expectTypeOf<{ addresses: [{ ip: 'h' }] }>().toMatchTypeOf<InputOf<typeof EventPeerSchema>>()
    expectTypeOf<{ id: 5 }>().not.toMatchTypeOf<InputOf<typeof EventPeerSchema>>()
  })
})

describe('EventMapOf', () => {
  it('maps full and short names to the plain shape, plus the built-in EventPeer', () => {
    type M = EventMapOf<[typeof AddressSchema, typeof HandshakeSchema]>
    expectTypeOf<M['hyperemitter.v1.Address']>().toEqualTypeOf<Address>()
    expectTypeOf<M['Address']>().toEqualTypeOf<Address>()
    expectTypeOf<M['Handshake']>().toEqualTypeOf<PlainOf<typeof HandshakeSchema>>()
    expectTypeOf<M['EventPeer']>().toEqualTypeOf<PlainOf<typeof EventPeerSchema>>()
    expectTypeOf<keyof M>().toEqualTypeOf<
      'hyperemitter.v1.Address' | 'Address' | 'hyperemitter.v1.Handshake' | 'Handshake' | 'hyperemitter.v1.EventPeer' | 'EventPeer'
    >()
  })

  it('works on `as const` arrays, as the emitter infers them', () => {
    const schemas = [PingSchema, EventSchema] as const
    type M = EventMapOf<typeof schemas>
    expectTypeOf<M['Ping']>().toEqualTypeOf<{ nonce: bigint }>()
    expectTypeOf<M['hyperemitter.v1.Event']>().toEqualTypeOf<{ name: string; payload: Uint8Array }>()
  })

  it('leaves out ambiguous short names', () => {
    // Two messages whose short names collide, as two packages would have.
    type A = typeof AddressSchema & { readonly typeName: 'a.Thing' }
    type GenThing<N extends string> = import('@bufbuild/protobuf/codegenv2').GenMessage<import('@bufbuild/protobuf').Message<N> & { x: number }>
    type M = EventMapOf<[GenThing<'a.Thing'>, GenThing<'b.Thing'>, GenThing<'c.Other'>]>
    expectTypeOf<keyof M>().toEqualTypeOf<'a.Thing' | 'b.Thing' | 'c.Other' | 'Other' | 'hyperemitter.v1.EventPeer' | 'EventPeer'>()
    expectTypeOf<M['a.Thing']>().toEqualTypeOf<{ x: number }>()
    expectTypeOf<A>().not.toBeAny()
  })
})
