// Schema codecs on a Hello-sized event (the seed's `Hello { from, message }`):
// plain-object encode/decode vs protobuf-es create+toBinary / fromBinary. Prints JSON.
// Run: npx tsx bench/schema.ts   (a bundle runs faster still: npx esbuild bench/schema.ts --bundle --platform=node --format=esm | node --input-type=module)
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { Codecs } from '../src/core/codec/schema.js'
import { registryFromProto } from '../src/core/codec/proto-parse.js'

const PROTO = 'message Hello { required string from = 1; optional string message = 2; }'
const N = 500_000
const codecs = Codecs.fromSync(PROTO)
const desc = registryFromProto(PROTO).registry.getMessage('Hello')!
const value = { from: 'Matteo', message: 'hello world, how are you' }
const bytes = codecs.encode('Hello', value)

function bench(name: string, fn: () => unknown) {
  for (let i = 0; i < 50_000; i++) fn()
  const t0 = performance.now()
  for (let i = 0; i < N; i++) fn()
  const ms = performance.now() - t0
  return { name, opsPerSec: Math.round((N / ms) * 1000), usPerOp: +((ms * 1000) / N).toFixed(3) }
}

const results = [
  bench('Codecs.encode (validate + write)', () => codecs.encode('Hello', value)),
  // Payloads arrive as fresh small Uint8Arrays (sliced out of envelopes).
  bench('Codecs.decode (fresh bytes each time)', () => codecs.decode('Hello', bytes.slice())),
  bench('Codecs encode+decode', () => codecs.decode('Hello', codecs.encode('Hello', value))),
  bench('protobuf-es toBinary(create(...))', () => toBinary(desc, create(desc, value))),
  bench('protobuf-es fromBinary (fresh bytes)', () => fromBinary(desc, bytes.slice())),
]
console.log(JSON.stringify({ bench: 'schema', event: 'Hello', bytes: bytes.length, n: N, results }, null, 2))
