// The harness page (e2e/harness), bundled with esbuild for the browser, as
// assets for examples/hub.ts's serveAssets(). Used by the e2e fixtures and by
// bench/browser.ts.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Asset } from '../examples/hub.js'

const HARNESS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'harness')

/** /harness.html and /harness.js. */
export async function buildHarness(): Promise<Map<string, Asset>> {
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    entryPoints: [join(HARNESS_DIR, 'harness.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    outfile: join(HARNESS_DIR, 'out', 'harness.js'),
    logLevel: 'warning',
  })
  return new Map<string, Asset>([
    ['/harness.js', { type: 'text/javascript; charset=utf-8', body: result.outputFiles[0].contents }],
    ['/harness.html', { type: 'text/html; charset=utf-8', body: readFileSync(join(HARNESS_DIR, 'index.html')) }],
  ])
}
