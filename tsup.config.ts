import { defineConfig } from 'tsup'

// Inlined (tree-shaken) into the Node ESM builds: as packages they are
// dozens of small ES modules, whose loading was most of a process's start
// before its first event. Browser builds leave them to the app's bundler.
const INLINED_IN_NODE_ESM = ['@bufbuild/protobuf', '@noble/hashes', 'protocol-buffers-schema']

// No `clean`: the builds run in parallel and one cleaning would race the
// others' output; `npm run build` empties dist/ first instead. No source
// maps: the package ships no sources for them to point at, and they were
// two thirds of its size; the output is unminified, readable JavaScript.
export default defineConfig([
  {
    // Node, ESM: the library and the hypem binary (package.json "bin"), which
    // share their code through chunks instead of each carrying a copy.
    // src/cli.ts starts with a hashbang, which esbuild keeps.
    entry: { index: 'src/index.ts', cli: 'src/cli.ts' },
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    // The declarations of every ESM entry in one pass, so the types they share ship once.
    dts: { entry: { index: 'src/index.ts', browser: 'src/browser.ts', lean: 'src/lean.ts' } },
    splitting: true,
    noExternal: INLINED_IN_NODE_ESM,
  },
  {
    // Node, CJS: the library for require(), which loads packages' files fast enough.
    entry: { index: 'src/index.ts' },
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    dts: true,
  },
  {
    // Browsers: the core, WebSocket sync and browser-level; no Node built-ins.
    // hyperemitter/lean is the same without the .proto text parser. ESM only:
    // bundlers take ESM for require() too, and CommonJS copies would add a
    // third to the package for no runtime that needs them.
    entry: { browser: 'src/browser.ts', lean: 'src/lean.ts' },
    format: ['esm'],
    platform: 'browser',
    target: 'es2022',
  },
])
