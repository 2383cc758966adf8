// Runs before `npm test`: the browser tests drive Debian's Chromium through
// Playwright (which never downloads a browser here). On a fresh machine, as
// root, install it with apt; otherwise say exactly what is missing.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'

const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
if (existsSync(path)) process.exit(0)
if (process.env.CHROMIUM_PATH) {
  console.error(`CHROMIUM_PATH=${path} does not exist`)
  process.exit(1)
}
if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
  console.error('Chromium is missing: install it with `sudo apt-get install -y chromium`, or set CHROMIUM_PATH')
  process.exit(1)
}
console.error('Chromium is missing: installing Debian\'s chromium package (about 30 s)')
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: ['ignore', 'ignore', 'inherit'], env })
