import { defineConfig } from 'tsup'

// Inlined (tree-shaken) into the Node ESM builds: as packages they are
// dozens of small ES modules, whose loading was most of a process's start
// before its first event. Browser builds leave them to the app's bundler.
const INLINED_IN_NODE_ESM = ['@bufbuild/protobuf', '@noble/hashes', 'protocol-buffers-schema']

// No `clean`: the builds run in parallel and one cleaning would race
// the others' output; `npm run build` empties dist/ first instead.
export default defineConfig([
  {
    // Node, ESM: the whole library (TCP + WebSocket, classic-level).
    entry: { index: 'src/index.ts' },
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    dts: true,
    sourcemap: true,
    noExternal: INLINED_IN_NODE_ESM,
  },
  {
    // Node, CJS: the same; require() loads packages' files fast enough.
    entry: { index: 'src/index.ts' },
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    dts: true,
    sourcemap: true,
  },
  {
    // The hypem binary (package.json "bin"): one ESM file, run by node directly.
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    banner: { js: '#!/usr/bin/env node' },
    noExternal: INLINED_IN_NODE_ESM,
    // One file: the lazy import in src/cli.ts (for fast errors under tsx) is inlined.
    splitting: false,
  },
  {
    // Browsers: the core, WebSocket sync and browser-level; no Node built-ins.
    // hyperemitter/lean is the same without the .proto text parser.
    entry: { browser: 'src/browser.ts', lean: 'src/lean.ts' },
    format: ['esm', 'cjs'],
    platform: 'browser',
    target: 'es2022',
    dts: true,
    sourcemap: true,
  },
])
