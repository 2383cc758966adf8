import { defineConfig } from 'tsup'

// No `clean`: the three builds run in parallel and one cleaning would race
// the others' output; `npm run build` empties dist/ first instead.
export default defineConfig([
  {
    // Node: the whole library (TCP + WebSocket, classic-level) and the CLI.
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
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
