// What a short-lived process pays before its first event, run by plain `node`
// in a fresh process each time (bench/small.ts times it from outside):
//
//   first-emit <ours|original>: load the library and memory-level (memdb for
//     the original), construct with a text schema, emit one event; exit the
//     moment its callback runs.
// Each prints the process's CPU time on exit (steadier than wall time on a
// shared machine; bench/small.ts takes the wall time from outside).
//   import <specifier> [require]: print how long importing (or requiring)
//     one entry takes in this process, in ms.
import { createRequire } from 'node:module'

const [mode, arg, how] = process.argv.slice(2)
const SCHEMA = 'message Hello {\n  required string from = 1;\n  optional string message = 2;\n}\n'

function done(err) {
  if (err) {
    console.error(err)
    process.exit(1)
  }
  const { user, system } = process.cpuUsage()
  process.stdout.write(`${JSON.stringify({ cpuMs: Math.round((user + system) / 100) / 10 })}\n`)
  process.exit(0)
}

if (mode === 'first-emit') {
  let emitter
  if (arg === 'ours') {
    const { HyperEmitter } = await import('../dist/index.js')
    const { MemoryLevel } = await import('memory-level')
    emitter = HyperEmitter(new MemoryLevel(), SCHEMA)
  } else if (arg === 'original') {
    const require = createRequire(new URL('./original/package.json', import.meta.url))
    emitter = require('hyperemitter')(require('memdb')(), SCHEMA)
  } else {
    done(new Error(`unknown implementation ${arg}: ours or original`))
  }
  emitter.emit('Hello', { from: 'Matteo', message: 'hello world' }, done)
} else if (mode === 'import') {
  const start = performance.now()
  if (how === 'require') createRequire(import.meta.url)(arg)
  else await import(arg)
  process.stdout.write(`${JSON.stringify({ importMs: Math.round((performance.now() - start) * 10) / 10 })}\n`)
} else {
  done(new Error(`unknown mode ${mode}: first-emit or import`))
}
