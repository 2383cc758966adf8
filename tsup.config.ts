import { defineConfig } from 'tsup'

export default defineConfig([
  {
    // Node: the whole library (TCP + WebSocket, classic-level) and the CLI.
    entry: { index: 'src/index.ts' },
    format: ['esm', 'cjs'],
    platform: 'node',
    target: 'node20',
    dts: true,
    sourcemap: true,
    clean: true,
  },
  {
    // Browsers: the core, WebSocket sync and browser-level; no Node built-ins.
    entry: { browser: 'src/browser.ts' },
    format: ['esm', 'cjs'],
    platform: 'browser',
    target: 'es2022',
    dts: true,
    sourcemap: true,
  },
])
