// Schema codecs on a Hello-sized event (the seed's `Hello { from, message }`):
// plain-object encode/decode against protobuf-es create+toBinary /
// fromBinary. One JSON line per scenario; bench/index.ts runs it.
// Run: npx tsx bench/schema.ts
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { parseProtoFile, registryFromProto } from '../src/core/codec/proto-parse.js'
import { Codecs, useProtoParser } from '../src/core/codec/schema.js'
import { opsPerSecond, printJson } from './common.js'

const PROTO = 'message Hello { required string from = 1; optional string message = 2; }'
const N = 500_000
// As the full entries do: this module alone takes generated descriptors only.
useProtoParser(parseProtoFile)
const codecs = Codecs.fromSync(PROTO)
const desc = registryFromProto(PROTO).registry.getMessage('Hello')!
const value = { from: 'Matteo', message: 'hello world, how are you' }
const bytes = codecs.encode('Hello', value)

const scenarios: Array<[string, (i: number) => unknown]> = [
  ['Codecs.encode (validate + write)', () => codecs.encode('Hello', value)],
  // Payloads arrive as fresh small Uint8Arrays (sliced out of envelopes).
  ['Codecs.decode (fresh bytes each time)', () => codecs.decode('Hello', bytes.slice())],
  ['Codecs encode+decode', () => codecs.decode('Hello', codecs.encode('Hello', value))],
  ['protobuf-es toBinary(create(...))', () => toBinary(desc, create(desc, value))],
  ['protobuf-es fromBinary (fresh bytes)', () => fromBinary(desc, bytes.slice())],
]

for (const [scenario, fn] of scenarios) printJson({ bench: 'schema', scenario, event: 'Hello', bytes: bytes.length, opsPerSecond: opsPerSecond(fn, N, 50_000) })
