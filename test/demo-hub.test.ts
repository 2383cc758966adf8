// The demo hub (`npm start`, examples/hub.ts) run as a process, as a user
// runs it: what peers write reaches its console escaped, so chat text can
// neither move the cursor, colour the terminal nor fake a log line.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { printable, CHAT_SCHEMA } from '../examples/hub.js'
import { HyperEmitter } from '../src/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

describe('printable', () => {
  it('escapes control characters, line breaks and bidi overrides, and leaves other text alone', () => {
    expect(printable('plain text, ünïcode, 😀')).toBe('plain text, ünïcode, 😀')
    expect(printable('\x1b[2J\r\n\t\x00\x7f\x9b')).toBe('\\u001b[2J\\u000d\\u000a\\u0009\\u0000\\u007f\\u009b')
    expect(printable('a\u2028b\u2029c\u202ed\u2066e')).toBe('a\\u2028b\\u2029c\\u202ed\\u2066e')
  })
})

describe('the demo hub', () => {
  it('prints a chat message with ANSI escapes and newlines escaped, on one line', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'hyperemitter-demo-'))
    const hub = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'examples/hub.ts')], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    hub.stdout!.on('data', (c: Buffer) => (out += c.toString()))
    hub.stderr!.on('data', (c: Buffer) => (out += c.toString()))
    const peer = HyperEmitter(null, CHAT_SCHEMA, { reconnectKnown: false, discover: false })
    try {
      const waitFor = (pattern: RegExp, what: string) =>
        new Promise<RegExpExecArray>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`the hub never printed ${what}; it printed:\n${out}`)), 60_000)
          const check = () => {
            const match = pattern.exec(out)
            if (!match) return
            clearTimeout(timer)
            hub.stdout!.off('data', check)
            resolve(match)
          }
          hub.stdout!.on('data', check)
          check()
        })
      const port = Number((await waitFor(/tcp:\/\/127\.0\.0\.1:(\d+)/, 'its port'))[1])
      await peer.connect(port, '127.0.0.1', { remember: false })
      const author = 'mallory\x1b[31m'
      const text = 'hi\r\nhub: peer 127.0.0.1 was refused\x1b[2J\u202eevil'
      await peer.emit('chat.Message', { author, text, sentAt: 1 })
      const line = (await waitFor(/^ {2}mallory.*$/m, 'the message'))[0]
      expect(line).toBe(`  ${printable(author)}: ${printable(text)}`)
      expect(line).toContain('\\u001b[31m')
      expect(line).toContain('\\u000d\\u000ahub: peer')
      // Nothing raw reached the console: no escape, no carriage return, no forged line.
      expect(out).not.toMatch(/[\x1b\r\u202e]/)
      expect(out).not.toMatch(/^hub: peer/m)
    } finally {
      await peer.close()
      hub.kill('SIGTERM')
      await new Promise((r) => hub.once('close', r))
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 90_000)
})
