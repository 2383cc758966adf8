// Compares SHA-256 implementations on node-sized (~100-byte) inputs; prints JSON.
// Run: npx tsx bench/hash.ts
import crypto from 'node:crypto'
import { sha256 as noble } from '@noble/hashes/sha2'
import { sha256 as core } from '../src/core/bytes/hash.js'

const N = 200_000
const SIZE = Number(process.argv[2] ?? 100)
const inputs = Array.from({ length: 1024 }, () => crypto.randomBytes(SIZE))

function bench(name: string, fn: (d: Uint8Array) => unknown): { name: string; opsPerSec: number; usPerOp: number } {
  for (let i = 0; i < 20_000; i++) fn(inputs[i & 1023]) // warm-up, so JIT tiers settle before timing
  const t0 = performance.now()
  for (let i = 0; i < N; i++) fn(inputs[i & 1023])
  const ms = performance.now() - t0
  return { name, opsPerSec: Math.round((N / ms) * 1000), usPerOp: +((ms * 1000) / N).toFixed(3) }
}

async function benchAsync(name: string, fn: (d: Uint8Array) => Promise<unknown>, n: number) {
  for (let i = 0; i < 5000; i++) await fn(inputs[i & 1023])
  let t0 = performance.now()
  for (let i = 0; i < n; i++) await fn(inputs[i & 1023])
  const seqMs = performance.now() - t0
  t0 = performance.now()
  const ps: Promise<unknown>[] = []
  for (let i = 0; i < n; i++) ps.push(fn(inputs[i & 1023]))
  await Promise.all(ps)
  const parMs = performance.now() - t0
  return [
    { name: name + ' (awaited one by one)', opsPerSec: Math.round((n / seqMs) * 1000), usPerOp: +((seqMs * 1000) / n).toFixed(3) },
    { name: name + ' (all in flight)', opsPerSec: Math.round((n / parMs) * 1000), usPerOp: +((parMs * 1000) / n).toFixed(3) },
  ]
}

const nodeHash = (crypto as unknown as { hash?: (alg: string, d: Uint8Array, enc: 'buffer') => Buffer }).hash
const results = [
  bench('@noble/hashes sha256, one-shot', (d) => noble(d)),
  bench('core sha256 (noble, one hasher reused: what browsers use)', (d) => core(d)),
  nodeHash ? bench("node:crypto hash('sha256')", (d) => nodeHash('sha256', d, 'buffer')) : { name: 'node:crypto hash', missing: true },
  bench('node:crypto createHash', (d) => crypto.createHash('sha256').update(d).digest()),
  ...(await benchAsync('WebCrypto subtle.digest', (d) => globalThis.crypto.subtle.digest('SHA-256', d as Uint8Array<ArrayBuffer>), 50_000)),
]
console.log(JSON.stringify({ node: process.version, inputBytes: SIZE, iterations: N, results }, null, 2))
