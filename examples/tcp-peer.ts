// A Node peer that joins the demo hub over raw TCP (not WebSocket), prints
// the chat (history, then live) and sends what you type. Its messages show up
// on every open demo page, and theirs here.
//
//   npx tsx examples/tcp-peer.ts [port] [host]      (default 8080 127.0.0.1; PORT/HOST env too)
//   NAME=robot npx tsx examples/tcp-peer.ts         display name (default tcp-peer)
//   npx tsx examples/tcp-peer.ts 8080 --say "hi"    send one message and exit
//
// It keeps its log in memory: each run catches up from the hub.
import { createInterface } from 'node:readline'
import { HyperEmitter } from '../src/index.js'
import { CHAT_SCHEMA } from './hub.js'

interface ChatMessage {
  author: string
  text: string
  sent_at: number
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const sayAt = args.indexOf('--say')
  const say = sayAt >= 0 ? args.splice(sayAt, 2)[1] : undefined
  const port = Number(args[0] ?? process.env.PORT ?? 8080)
  const host = args[1] ?? process.env.HOST ?? '127.0.0.1'
  const name = process.env.NAME ?? 'tcp-peer'

  const chat = HyperEmitter<{ 'chat.Message': ChatMessage }>(null, CHAT_SCHEMA)
  chat.status.on('peer:reconnecting', (info: { delay: number }) => console.error(`(hub lost, retrying in ${info.delay} ms)`))
  chat.status.on('peer:synced', () => console.error('(synced with the hub)'))
  chat.on(
    'chat.Message',
    (m) => {
      const time = new Date(m.sent_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      console.log(`[${time}] ${m.author}: ${m.text}`)
    },
    { from: 'beginning' },
  )

  // TCP: a port and a host, as the seed's connect(port, host) did.
  const peer = await chat.connect(port, host)
  await peer.synced
  console.error(`(joined tcp://${host}:${port} as "${name}"${say === undefined ? '; type a message and press enter, ctrl-d to leave' : ''})`)

  if (say !== undefined) {
    // The node is on the socket once emit() resolves; close() lets it drain before closing.
    await chat.emit('chat.Message', { author: name, text: say, sent_at: Date.now() })
    await chat.close()
    return
  }

  const lines = createInterface({ input: process.stdin })
  for await (const line of lines) {
    const text = line.trim()
    if (text) await chat.emit('chat.Message', { author: name, text, sent_at: Date.now() })
  }
  await chat.close()
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err)
  process.exit(1)
})
