import type { Ed25519 } from '../src/core/identity/ed25519.js'
// Shared by the benchmarks: the seed's Hello message and result printing.

/** The seed README's fixture schema (proto2). */
export const HELLO_SCHEMA = `
message Hello {
  required string from = 1;
  optional string message = 2;
}
`

/** A Hello-sized message, distinct per i. */
export function helloMessage(i: number): { from: string; message: string } {
  return { from: 'Matteo', message: `hello world ${i}` }
}

/** Peak resident set size of this process so far, MiB. */
export function peakRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024)
}

/** One JSON object per line on stdout: what bench/index.ts collects. */
export function printJson(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

/** The figure at `path` in a result (a dotted path for a nested one). */
export function figure(result: Record<string, unknown> | undefined, path: string): unknown {
  return path.split('.').reduce<unknown>((value, key) => (value as Record<string, unknown> | undefined)?.[key], result)
}

/**
 * BENCH_SIGNING=off (bench only): an Ed25519 that signs with zeros and
 * accepts every signature, so a run measures what signing and verifying
 * cost against the same run with them on. Never for real use: it lets
 * anyone write as anyone.
 */
export function signingOptions(): { ed25519?: Ed25519 } {
  if (process.env.BENCH_SIGNING !== 'off') return {}
  const publicKey = crypto.getRandomValues(new Uint8Array(32))
  const signature = new Uint8Array(64)
  return {
    ed25519: {
      signer: async () => ({ publicKey, sign: async () => signature }),
      verify: async () => true,
    },
  }
}

/**
 * Operations per second of `fn` over `n` calls, after `warmup` calls, for the
 * micro-benchmarks (codec, schema); each scenario runs to its end before
 * the next, as they always have, so figures stay comparable across commits.
 */
export function opsPerSecond(fn: (i: number) => unknown, n: number, warmup: number): number {
  for (let i = 0; i < warmup; i++) fn(i)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) fn(i)
  return Math.round((n / (performance.now() - t0)) * 1000)
}
