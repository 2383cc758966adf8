// Byte-level codecs, in one process: the hand-rolled Node codec against
// protobuf-es on ~100-byte nodes (one link, 40-byte value), and the plain
// encoder's writer against protobuf-es' BinaryWriter writing a Hello (the
// emit path hands the writer's buffer on without a copy; BinaryWriter's
// finish() copies). One JSON line per scenario; bench/index.ts runs it.
// Run: npx tsx bench/codec.ts
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { BinaryWriter } from '@bufbuild/protobuf/wire'
import { decodeNode, encodeNode } from '../src/core/codec/node.js'
import { Writer } from '../src/core/codec/plain-writer.js'
import { NodeSchema } from '../src/gen/hyperemitter/v1/log_pb.js'
import { helloMessage, opsPerSecond, printJson } from './common.js'

const N = 300_000
const writer = crypto.getRandomValues(new Uint8Array(16))
const nodes = Array.from({ length: 1024 }, (_, i) => ({
  writer,
  seq: i + 1,
  links: [crypto.getRandomValues(new Uint8Array(32))],
  value: crypto.getRandomValues(new Uint8Array(40)),
}))
const encoded = nodes.map((n) => encodeNode(n))
const hellos = Array.from({ length: 1024 }, (_, i) => helloMessage(i))

// Hello's two fields, tags 1 and 2 (length-delimited): 0x0a and 0x12.
const own = new Writer()
const binary = new BinaryWriter()

/** Hello `i` written into the plain encoder's reused writer. */
function writeHello(i: number): Writer {
  const m = hellos[i & 1023]
  own.pos = 0
  own.varint32(0x0a)
  own.string(m.from)
  own.varint32(0x12)
  own.string(m.message)
  return own
}

const scenarios: Array<[string, (i: number) => unknown]> = [
  ['encodeNode (hand-rolled)', (i) => encodeNode(nodes[i & 1023])],
  [
    'protobuf-es toBinary(create(...))',
    (i) => {
      const n = nodes[i & 1023]
      return toBinary(NodeSchema, create(NodeSchema, { writer: n.writer, seq: BigInt(n.seq), links: n.links, value: n.value }))
    },
  ],
  ['decodeNode (hand-rolled)', (i) => decodeNode(encoded[i & 1023])],
  ['protobuf-es fromBinary', (i) => fromBinary(NodeSchema, encoded[i & 1023])],
  ['Hello: plain writer, buffer handed on', (i) => writeHello(i).pos],
  [
    'Hello: plain writer, copied out',
    (i) => {
      const w = writeHello(i)
      return w.buf.slice(0, w.pos)
    },
  ],
  [
    'Hello: protobuf-es BinaryWriter, reused',
    (i) => {
      const m = hellos[i & 1023]
      return binary.uint32(0x0a).string(m.from).uint32(0x12).string(m.message).finish()
    },
  ],
]

for (const [scenario, fn] of scenarios) printJson({ bench: 'codec', scenario, opsPerSecond: opsPerSecond(fn, N, 30_000) })
