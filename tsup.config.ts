import { defineConfig } from 'tsup'

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
    dts: { entry: { index: 'src/index.ts' } },
    splitting: true,
  },
  {
    // Node, CommonJS: the library for require().
    entry: { index: 'src/index.ts' },
    format: ['cjs'],
    platform: 'node',
    target: 'node20',
    dts: true,
  },
  {
    // Browsers: the core, WebSocket sync and browser-level; no Node built-ins.
    // ESM only: bundlers take ESM for require() too, and a CommonJS copy
    // would add a sixth of the package for no runtime that needs it.
    entry: { browser: 'src/browser.ts' },
    format: ['esm'],
    platform: 'browser',
    target: 'es2022',
    dts: true,
  },
])
