// Arguments in the wrong place are refused with INVALID_ARGUMENT and a
// message that says what belongs there, instead of being silently dropped.
import { Readable } from 'node:stream'
import { MemoryLevel } from 'memory-level'
import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCodes, HyperEmitter, type NodeHyperEmitter } from '../src/index.js'
import { AddressSchema } from '../src/gen/hyperemitter/v1/peer_pb.js'

const SCHEMA = 'message Hello { required string from = 1; }'
const open: NodeHyperEmitter[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

function refused(make: () => unknown, message: RegExp): void {
  let error: unknown
  try {
    const made = make()
    if (made) open.push(made as NodeHyperEmitter)
  } catch (err) {
    error = err
  }
  expect(error, String(message)).toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT, message: expect.stringMatching(message) })
}

async function rejected(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code: ErrorCodes.INVALID_ARGUMENT, message: expect.stringMatching(message) })
}

describe('HyperEmitter(db, schema, opts): a value in the wrong place', () => {
  it('a schema where the db belongs: text, bytes, a stream, descriptors', () => {
    const why = /first argument must be an abstract-level db .* not an? .*, which looks like a schema/
    refused(() => HyperEmitter(SCHEMA as never), why)
    refused(() => HyperEmitter(Buffer.from(SCHEMA) as never), why)
    refused(() => HyperEmitter(new TextEncoder().encode(SCHEMA) as never), why)
    refused(() => HyperEmitter(Readable.from([SCHEMA]) as never), why)
    refused(() => HyperEmitter([AddressSchema] as never), why)
    refused(() => HyperEmitter(AddressSchema as never), why)
    refused(() => HyperEmitter(SCHEMA as never, null), why)
  })

  it('other values where the db belongs', () => {
    refused(() => HyperEmitter(42 as never, SCHEMA), /first argument must be an abstract-level db .* not a number/)
    refused(() => HyperEmitter(new Map() as never, SCHEMA), /not a Map/)
    refused(() => HyperEmitter({ schema: SCHEMA } as never, SCHEMA), /not an object/)
  })

  it('options where the schema belongs, and a db there', () => {
    refused(() => HyperEmitter(new MemoryLevel(), { reconnectTimeout: 10 } as never), /second argument is the schema .* not an options object/)
    refused(() => HyperEmitter(null, new MemoryLevel() as never), /second argument is the schema, not a db/)
  })

  it('a callback anywhere, a non-object as options, too many arguments', () => {
    const cb = () => {}
    refused(() => HyperEmitter(null, SCHEMA, cb as never), /takes no callback .*ready\(cb\)/)
    refused(() => HyperEmitter(cb as never), /takes no callback/)
    refused(() => HyperEmitter(null, cb as never), /takes no callback/)
    refused(() => HyperEmitter(null, SCHEMA, SCHEMA as never), /third argument must be an options object, not a string/)
    refused(() => (HyperEmitter as (...args: unknown[]) => unknown)(null, SCHEMA, {}, {}), /at most 3 arguments, got 4/)
  })

  it('still takes every form the API documents', async () => {
    const forms = [
      HyperEmitter(),
      HyperEmitter(null, SCHEMA),
      HyperEmitter(undefined, Buffer.from(SCHEMA), { maxQueue: 10 }),
      HyperEmitter(new MemoryLevel(), SCHEMA, null as never),
      HyperEmitter(new MemoryLevel(), [AddressSchema]),
      HyperEmitter(null, Readable.from([SCHEMA])),
      HyperEmitter({ schema: SCHEMA, maxQueue: 10 }),
      HyperEmitter({ db: new MemoryLevel() }),
      new HyperEmitter(null, null, { discover: false }),
    ] as NodeHyperEmitter[]
    open.push(...forms)
    await Promise.all(forms.map((e) => e.ready()))
  })
})

describe('method arguments in the wrong place', () => {
  it('emit(name, cb): a callback where the message goes', async () => {
    const e = HyperEmitter(null, SCHEMA)
    open.push(e)
    await rejected(e.emit('Hello', (() => {}) as never), /message is a function/)
  })

  it('connect(host, port): swapped', async () => {
    const e = HyperEmitter(null, SCHEMA)
    open.push(e)
    await rejected(e.connect('127.0.0.1' as never, 9000 as never), /port comes first.*connect\(9000, "127\.0\.0\.1"\)/)
    await rejected(e.connect(9000, '127.0.0.1', () => {}, {} as never), /callback goes last/)
  })

  it('listen(host, port) swapped, listen(cb) without a port, a callback before the host', async () => {
    const e = HyperEmitter(null, SCHEMA)
    open.push(e)
    await rejected(e.listen('127.0.0.1' as never, 9000 as never), /port comes first.*listen\(9000, "127\.0\.0\.1"\)/)
    await rejected(e.listen((() => {}) as never), /listen\(port, \[host\], \[cb\]\).*port first/)
    await rejected(e.listen(0, (() => {}) as never, '127.0.0.1' as never), /callback goes last/)
  })
})
