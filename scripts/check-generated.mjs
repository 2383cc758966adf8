// Fails when src/gen is stale: regenerates into a temp dir and compares.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const out = mkdtempSync(join(tmpdir(), 'hyperemitter-gen-'))
const template = join(out, 'buf.gen.yaml')
writeFileSync(
  template,
  readFileSync(join(root, 'buf.gen.yaml'), 'utf8')
    .replace('local: node_modules/.bin/protoc-gen-es', `local: ${join(root, 'node_modules/.bin/protoc-gen-es')}`)
    .replace('out: src/gen', `out: ${join(out, 'gen')}`),
)
try {
  execFileSync(join(root, 'node_modules/.bin/buf'), ['generate', '--template', template], { cwd: root, stdio: 'inherit' })
  const list = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name)
      return statSync(path).isDirectory() ? list(path) : [path]
    })
  const fresh = list(join(out, 'gen')).map((p) => relative(join(out, 'gen'), p)).sort()
  const committed = list(join(root, 'src/gen')).map((p) => relative(join(root, 'src/gen'), p)).sort()
  const stale = [...new Set([...fresh, ...committed])].filter((file) => {
    try {
      return readFileSync(join(out, 'gen', file), 'utf8') !== readFileSync(join(root, 'src/gen', file), 'utf8')
    } catch {
      return true
    }
  })
  if (stale.length > 0) {
    console.error(`src/gen is stale (run npm run generate): ${stale.join(', ')}`)
    process.exit(1)
  }
  console.log(`src/gen is up to date (${fresh.length} files)`)
} finally {
  rmSync(out, { recursive: true, force: true })
}
