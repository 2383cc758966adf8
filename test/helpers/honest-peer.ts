// An honest peer in a process of its own, for the hostile-load bench: the
// attackers' own work then cannot delay it on a shared event loop (on a
// real network they are other machines). Reads one JSON request a line on
// stdin ({port, transport, events, timeout}), answers {ms} or {error}.
import { createInterface } from 'node:readline'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { honestSync } from './hostile.js'

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (!line.startsWith('{')) continue
    const { port, transport, events, timeout } = JSON.parse(line)
    try {
      const ms = await honestSync(port, transport, events, timeout)
      process.stdout.write(`${JSON.stringify({ ms })}\n`)
    } catch (err) {
      process.stdout.write(`${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`)
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main()
