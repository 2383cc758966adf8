// Bundles each browser entry the way an app's bundler would (esbuild,
// platform browser) and fails if anything Node-only got in: a `node:`
// import, `net`, `fs` or `ws`. Reads esbuild's metafile, so a module counts
// only if the bundle really contains it. Prints each entry's size, minified
// and gzipped, beside its budget (issue 18's targets). Run by `npm test` and
// `npm run build`; `node scripts/check-browser-bundle.mjs src/x.ts` checks one.
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'

// [entry, budget in KiB gzipped]: the full entry, and hyperemitter/lean (no .proto parser).
const ENTRIES = process.argv[2] ? [[process.argv[2], undefined]] : [['src/browser.ts', 90], ['src/lean.ts', 80]]
// Node built-ins the browser build must never reach, by bare or node: name.
const FORBIDDEN_BUILTINS = ['net', 'fs', 'tls', 'http', 'https', 'child_process', 'dgram', 'worker_threads', 'stream', 'crypto', 'os', 'path']
// Packages that only make sense in Node (ws is the Node WebSocket server/client).
const FORBIDDEN_PACKAGES = ['ws', 'classic-level', 'node-gyp-build']
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`

let failed = false
for (const [entry, budget] of ENTRIES) failed = !(await check(entry, budget)) || failed
if (failed) process.exit(1)

/** Bundles `entry`, prints its size; false when Node-only code got in. */
async function check(entry, budget) {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    write: false,
    metafile: true,
    outfile: 'browser-check.js',
    logLevel: 'silent',
    // A Node built-in that slipped in must be reported, not fail resolution halfway.
    external: ['node:*', ...FORBIDDEN_BUILTINS],
  })

  const problems = []
  for (const [file, input] of Object.entries(result.metafile.inputs)) {
    for (const imp of input.imports) {
      const path = imp.path
      if (path.startsWith('node:') || FORBIDDEN_BUILTINS.includes(path)) problems.push(`${file} imports the Node built-in "${path}"`)
    }
    const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)
    if (match && FORBIDDEN_PACKAGES.includes(match[1])) problems.push(`${file} (package ${match[1]}) is in the browser bundle`)
  }
  // What the output itself still imports: a browser bundle must be self-contained.
  for (const output of Object.values(result.metafile.outputs)) {
    for (const imp of output.imports) if (imp.external) problems.push(`the bundle keeps an import of "${imp.path}"`)
  }

  const code = result.outputFiles[0].contents
  const gzipped = gzipSync(code, { level: 9 }).byteLength
  const verdict = budget === undefined ? '' : `, budget ${budget} KiB: ${gzipped <= budget * 1024 ? 'met' : 'over'}`
  console.log(`browser bundle (${entry}, esbuild, minified): ${kb(code.byteLength)}, gzipped: ${kb(gzipped)}${verdict}`)
  if (process.env.BUNDLE_REPORT) {
    // The biggest packages, to see where the bytes go.
    const byPackage = new Map()
    for (const [file, info] of Object.entries(result.metafile.outputs[Object.keys(result.metafile.outputs)[0]].inputs)) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)
      const key = m ? m[1] : file.split('/').slice(0, 2).join('/')
      byPackage.set(key, (byPackage.get(key) ?? 0) + info.bytesInOutput)
    }
    for (const [name, bytes] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${kb(bytes).padStart(10)}  ${name}`)
  }
  if (problems.length > 0) {
    console.error(`The browser bundle of ${entry} pulls in Node-only code:`)
    for (const p of problems) console.error(`  - ${p}`)
    return false
  }
  return true
}
