// Hand-rolled Node codec vs protobuf-es on ~100-byte nodes (one link, 40-byte value); prints JSON.
// Run: npx tsx bench/codec.ts
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { NodeSchema } from '../src/gen/hyperemitter/v1/log_pb.js'
import { decodeNode, encodeNode } from '../src/core/codec/node.js'

const N = 300_000
const writer = crypto.getRandomValues(new Uint8Array(16))
const nodes = Array.from({ length: 1024 }, (_, i) => ({
  writer,
  seq: i + 1,
  links: [crypto.getRandomValues(new Uint8Array(32))],
  value: crypto.getRandomValues(new Uint8Array(40)),
}))
const encoded = nodes.map((n) => encodeNode(n))

function bench(name: string, fn: (i: number) => unknown) {
  for (let i = 0; i < 30_000; i++) fn(i & 1023)
  const t0 = performance.now()
  for (let i = 0; i < N; i++) fn(i & 1023)
  const ms = performance.now() - t0
  return { name, opsPerSec: Math.round((N / ms) * 1000), usPerOp: +((ms * 1000) / N).toFixed(3) }
}

const results = [
  bench('encodeNode (hand-rolled)', (i) => encodeNode(nodes[i])),
  bench('protobuf-es toBinary(create(...))', (i) => {
    const n = nodes[i]
    return toBinary(NodeSchema, create(NodeSchema, { writer: n.writer, seq: BigInt(n.seq), links: n.links, value: n.value }))
  }),
  bench('decodeNode (hand-rolled)', (i) => decodeNode(encoded[i])),
  bench('protobuf-es fromBinary', (i) => fromBinary(NodeSchema, encoded[i])),
]
console.log(JSON.stringify({ node: process.version, nodeBytes: encoded[0].length, iterations: N, results }, null, 2))
