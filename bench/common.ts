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
