// Bundles each browser entry the way an app's bundler would (esbuild,
// platform browser, code splitting on as Vite, Rollup and webpack have it)
// and fails if anything Node-only got in (a `node:` import, `net`, `fs` or
// `ws`) or abstract-level and its buffer polyfill. Reads esbuild's metafile,
// so a module counts only if the bundle really contains it. Prints each entry's size, minified and gzipped, beside
// its budget (issue 18's targets). Run by `npm test` and `npm run build`;
// `node scripts/check-browser-bundle.mjs src/x.ts` checks one.
//
// What is measured: the code a page loads for the entry, that is its chunk
// and every chunk it imports statically. Chunks reached only by a dynamic
// import() are printed apart and not counted: the one there is @noble/curves'
// Ed25519, which loads only where WebCrypto has no Ed25519 (src/core/identity/ed25519.ts).
import { gzipSync } from 'node:zlib'
import * as esbuild from 'esbuild'

// [entry, budget in KiB gzipped]: the full entry, and hyperemitter/lean (no .proto parser).
const ENTRIES = process.argv[2] ? [[process.argv[2], undefined]] : [['src/browser.ts', 90], ['src/lean.ts', 80]]
// Node built-ins the browser build must never reach, by bare or node: name.
const FORBIDDEN_BUILTINS = ['net', 'fs', 'tls', 'http', 'https', 'child_process', 'dgram', 'worker_threads', 'stream', 'crypto', 'os', 'path']
// Packages that only make sense in Node (ws is the Node WebSocket server/client),
// and abstract-level with the buffer polyfill it pulls: the entries store through
// their own db (src/core/db/, src/browser/idb.ts).
const FORBIDDEN_PACKAGES = ['ws', 'classic-level', 'node-gyp-build', 'abstract-level', 'buffer']
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
    splitting: true,
    outdir: 'browser-check',
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

  // The entry's chunk and what it imports statically: what a page loads; the rest loads on demand.
  const outputs = result.metafile.outputs
  const entryChunk = Object.keys(outputs).find((name) => outputs[name].entryPoint !== undefined)
  const loaded = new Set()
  for (const pending = [entryChunk]; pending.length > 0; ) {
    const name = pending.pop()
    if (loaded.has(name)) continue
    loaded.add(name)
    for (const imp of outputs[name].imports) if (imp.kind === 'import-statement' && !imp.external) pending.push(imp.path)
  }
  const sizes = { minified: 0, gzipped: 0, lazyMinified: 0, lazyGzipped: 0 }
  for (const file of result.outputFiles) {
    const name = Object.keys(outputs).find((output) => file.path.endsWith(`/${output}`))
    const gzipped = gzipSync(file.contents, { level: 9 }).byteLength
    if (loaded.has(name)) {
      sizes.minified += file.contents.byteLength
      sizes.gzipped += gzipped
    } else {
      sizes.lazyMinified += file.contents.byteLength
      sizes.lazyGzipped += gzipped
    }
  }
  const verdict = budget === undefined ? '' : `, budget ${budget} KiB: ${sizes.gzipped <= budget * 1024 ? 'met' : 'over'}`
  console.log(
    `browser bundle (${entry}, esbuild, minified): ${kb(sizes.minified)}, gzipped: ${kb(sizes.gzipped)}${verdict}` +
      ` (loaded on demand: ${kb(sizes.lazyMinified)}, gzipped ${kb(sizes.lazyGzipped)})`,
  )
  if (process.env.BUNDLE_REPORT) {
    // The biggest packages of what a page loads, to see where the bytes go.
    const byPackage = new Map()
    for (const name of loaded) {
      for (const [file, info] of Object.entries(outputs[name].inputs)) {
        const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)
        const key = m ? m[1] : file.split('/').slice(0, 2).join('/')
        byPackage.set(key, (byPackage.get(key) ?? 0) + info.bytesInOutput)
      }
    }
    for (const [name, bytes] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${kb(bytes).padStart(10)}  ${name}`)
  }
  if (problems.length > 0) {
    console.error(`The browser bundle of ${entry} pulls in code it must not (Node-only, or abstract-level):`)
    for (const p of problems) console.error(`  - ${p}`)
    return false
  }
  return true
}
