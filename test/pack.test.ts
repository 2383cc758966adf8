// The package as a user gets it: `npm pack` (which builds), install the
// tarball into a fresh project, then run from there the README's quick start
// (the exact block), a CommonJS require, a TypeScript check of ESM and CJS
// consumers, and the hypem binary. The same quick start also runs in this
// clone, where `import 'hyperemitter'` resolves to the build.
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const ROOT = resolve(__dirname, '..')
/** Bounds for each child process: building and installing take seconds, a stuck one must not hang the suite. */
const BUILD_TIMEOUT = 120_000
const STEP_TIMEOUT = 60_000
/** tsc checks the shipped declarations and @types/node too: over ten seconds on a busy machine. */
const TSC_TIMEOUT = 120_000
// 400 kB was issue 18's mark; refusals per writer and fork healing (issue 14)
// added about 25 kB of code across the three builds (ESM, CJS, browser).
const MAX_PACKED_BYTES = 430_000

/** The README's first ```js block after "## Quick start", verbatim. */
function quickStart(readme: string): string {
  const section = readme.slice(readme.indexOf('## Quick start'))
  const match = /```js\n([\s\S]*?)```/.exec(section)
  if (!match) throw new Error('README has no js block under "## Quick start"')
  return match[1]
}

const SNIPPET = quickStart(readFileSync(join(ROOT, 'README.md'), 'utf8'))
const EXPECTED = "one received UserAdded { id: 1, name: 'ada' }\n"

const CJS = `
const { HyperEmitter, HyperEmitterError, ErrorCodes } = require('hyperemitter')
const hyper = HyperEmitter(null, 'syntax = "proto3"; message Ping { uint32 n = 1; }')
hyper.on('Ping', (msg) => console.log('ping', msg.n))
hyper.emit('Ping', { n: 7 })
  .then(() => hyper.emit('Nope', {}))
  .catch((err) => console.log(err instanceof HyperEmitterError, err.code === ErrorCodes.UNKNOWN_EVENT))
  .then(() => hyper.close())
`

// Descriptors made with the app's own copy of @bufbuild/protobuf (the peer
// dependency), used by the library's build, which inlines its copy in Node ESM.
const DESCRIPTORS = `
import { HyperEmitter } from 'hyperemitter'
import { TimestampSchema } from '@bufbuild/protobuf/wkt'
const hyper = new HyperEmitter(null, [TimestampSchema])
const got = new Promise((resolve) => hyper.on('google.protobuf.Timestamp', resolve))
await hyper.emit('google.protobuf.Timestamp', { seconds: 5n, nanos: 1 })
const ts = await got
console.log(ts.seconds, ts.nanos)
await hyper.close()
`

const DESCRIPTORS_CJS = `
const { HyperEmitter } = require('hyperemitter')
const { TimestampSchema } = require('@bufbuild/protobuf/wkt')
const hyper = new HyperEmitter(null, [TimestampSchema])
const got = new Promise((resolve) => hyper.on('google.protobuf.Timestamp', resolve))
hyper.emit('google.protobuf.Timestamp', { seconds: 5n, nanos: 1 })
  .then(() => got)
  .then((ts) => console.log(ts.seconds, ts.nanos))
  .then(() => hyper.close())
`

const TS_ESM = `
import { HyperEmitter, HyperEmitterError, type Peer } from 'hyperemitter'
const hyper = new HyperEmitter(null, 'message Hello { required string from = 1; }')
const done: Promise<void> = hyper.emit('Hello', { from: 'ts' })
const peers: Peer[] = hyper.peers
const id: Promise<string> = hyper.getId()
// @ts-expect-error: a port is a number or a URL string, not an object
hyper.connect({ port: 1 })
export { done, peers, id, HyperEmitterError }
`

const TS_CJS = `
import { HyperEmitter, type NodeHyperEmitter } from 'hyperemitter'
const hyper: NodeHyperEmitter = HyperEmitter({ schema: 'message A { optional int32 n = 1; }' })
export const closed: Promise<void> = hyper.close()
`

describe('the packed package', () => {
  let dir: string
  let app: string
  let tarball: string
  let packed: { size: number; unpackedSize: number; files: Array<{ path: string }> }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hyperemitter-pack-'))
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, timeout: BUILD_TIMEOUT, maxBuffer: 16 << 20 })
    // npm prints the build's output before the JSON report.
    ;[packed] = JSON.parse(stdout.slice(stdout.indexOf('[\n')))
    tarball = join(dir, (packed as unknown as { filename: string }).filename)
    app = join(dir, 'app')
    mkdirSync(app)
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
    await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeout: BUILD_TIMEOUT })
  }, 2 * BUILD_TIMEOUT + 10_000)

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it(`is under ${MAX_PACKED_BYTES / 1000} kB packed, with no sources or source maps`, () => {
    expect(packed.size).toBeLessThan(MAX_PACKED_BYTES)
    const paths = packed.files.map((f) => f.path)
    expect(paths).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'dist/index.js', 'dist/index.cjs', 'dist/browser.js', 'dist/cli.js']))
    expect(paths.filter((p) => p.endsWith('.map') || p.startsWith('src/') || p.startsWith('test/'))).toEqual([])
  })

  it("runs the README's quick start, installed and in this clone", async () => {
    writeFileSync(join(app, 'quickstart.mjs'), SNIPPET)
    const installed = await run(process.execPath, ['quickstart.mjs'], { cwd: app, timeout: STEP_TIMEOUT })
    expect(installed.stdout).toBe(EXPECTED)
    // In the clone: the file sits inside the repository, where the package name resolves to dist/.
    const local = join(ROOT, '.tmp', `quickstart-${process.pid}.mjs`)
    mkdirSync(join(ROOT, '.tmp'), { recursive: true })
    writeFileSync(local, SNIPPET)
    try {
      const clone = await run(process.execPath, [local], { cwd: ROOT, timeout: STEP_TIMEOUT })
      expect(clone.stdout).toBe(EXPECTED)
    } finally {
      rmSync(local, { force: true })
    }
  }, 2 * STEP_TIMEOUT)

  it("takes descriptors made with the app's own @bufbuild/protobuf, in ESM and CommonJS", async () => {
    writeFileSync(join(app, 'descriptors.mjs'), DESCRIPTORS)
    const esm = await run(process.execPath, ['descriptors.mjs'], { cwd: app, timeout: STEP_TIMEOUT })
    expect(esm.stdout).toBe('5n 1\n')
    writeFileSync(join(app, 'descriptors.cjs'), DESCRIPTORS_CJS)
    const required = await run(process.execPath, ['descriptors.cjs'], { cwd: app, timeout: STEP_TIMEOUT })
    expect(required.stdout).toBe('5n 1\n')
  }, 2 * STEP_TIMEOUT)

  it('loads with require() and reports coded errors', async () => {
    writeFileSync(join(app, 'cjs.cjs'), CJS)
    const { stdout } = await run(process.execPath, ['cjs.cjs'], { cwd: app, timeout: STEP_TIMEOUT })
    expect(stdout).toBe('ping 7\ntrue true\n')
  }, STEP_TIMEOUT)

  it('type-checks ESM and CommonJS consumers against the shipped declarations', async () => {
    writeFileSync(join(app, 'esm.mts'), TS_ESM)
    writeFileSync(join(app, 'cjs.cts'), TS_CJS)
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules/@types')],
        },
        files: ['esm.mts', 'cjs.cts'],
      }),
    )
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc')
    const result = await run(process.execPath, [tsc, '-p', app], { cwd: app, timeout: TSC_TIMEOUT }).catch((err: { stdout: string }) => err)
    expect(result.stdout).toBe('')
  }, TSC_TIMEOUT + 5_000)

  it('installs hypem, which prints its help and example schema, and asks for classic-level when --db needs it', async () => {
    const hypem = join(app, 'node_modules/.bin/hypem')
    const help = await run(hypem, ['--help'], { cwd: app, timeout: STEP_TIMEOUT })
    expect(help.stdout).toMatch(/^Usage: hypem <schema\.proto>/)
    const schema = await run(hypem, ['--example-schema'], { cwd: app, timeout: STEP_TIMEOUT })
    expect(schema.stdout).toMatch(/message Hello \{/)
    writeFileSync(join(app, 'messages.proto'), schema.stdout)
    // classic-level is an optional peer dependency: this project did not install it.
    const noDb = await run(hypem, ['--no-repl', '--db', join(app, 'db'), 'messages.proto'], { cwd: app, timeout: STEP_TIMEOUT }).catch(
      (err: { code: number; stderr: string }) => err,
    )
    expect(noDb).toMatchObject({ code: 1 })
    expect((noDb as { stderr: string }).stderr).toMatch(/^hypem: --db needs classic-level, which is not installed: npm install/)
  }, 3 * STEP_TIMEOUT)
})
