// Fails if any import cycle exists among src/ modules, counting type-only
// imports too: a cycle of types still ties two files' designs together.
// Reads each file's import list with TypeScript's preProcessFile (no type
// check) and reports every strongly connected group of files.
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

const ROOT = 'src'

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name)
    if (d.isDirectory()) return listFiles(p)
    return /\.ts$/.test(d.name) && !d.name.endsWith('.d.ts') ? [p] : []
  })
}

/** The src file a relative specifier names ('./x.js' is './x.ts'), or undefined. */
function resolve(from, spec) {
  if (!spec.startsWith('.')) return undefined
  const base = path.join(path.dirname(from), spec).replace(/\.js$/, '')
  for (const candidate of [`${base}.ts`, path.join(base, 'index.ts')]) if (existsSync(candidate)) return candidate
  return undefined
}

const files = listFiles(ROOT)
const edges = new Map()
for (const file of files) {
  const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true)
  edges.set(file, [...new Set(importedFiles.map((i) => resolve(file, i.fileName)).filter(Boolean))])
}

// Tarjan's strongly connected components; any with more than one file (or a self-import) is a cycle.
let counter = 0
const index = new Map()
const low = new Map()
const stack = []
const onStack = new Set()
const cycles = []
function visit(v) {
  index.set(v, counter)
  low.set(v, counter++)
  stack.push(v)
  onStack.add(v)
  for (const w of edges.get(v) ?? []) {
    if (!index.has(w)) {
      visit(w)
      low.set(v, Math.min(low.get(v), low.get(w)))
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)))
  }
  if (low.get(v) === index.get(v)) {
    const group = []
    let w
    do {
      w = stack.pop()
      onStack.delete(w)
      group.push(w)
    } while (w !== v)
    if (group.length > 1 || (edges.get(v) ?? []).includes(v)) cycles.push(group.sort())
  }
}
for (const file of files) if (!index.has(file)) visit(file)

if (cycles.length > 0) {
  console.error(`import cycles in ${ROOT}/ (type-only imports count):`)
  for (const group of cycles) console.error(`  ${group.join(' <-> ')}`)
  process.exit(1)
}
console.log(`no import cycles among ${files.length} files in ${ROOT}/`)
