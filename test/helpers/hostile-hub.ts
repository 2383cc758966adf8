// A hub in a process of its own, for the hostile-load tests and bench:
// `node --import tsx test/helpers/hostile-hub.ts '<json options>'`. It holds
// `events` chat events, listens on 127.0.0.1, serves a one-line page when
// `page` is set, and prints one JSON line `{"port": …}` once ready.
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { HyperEmitter, type ListenOptions, type ReplicationOptions } from '../../src/index.js'

export interface HostileHubOptions {
  events?: number
  page?: boolean
  replication?: ReplicationOptions
  listen?: Omit<ListenOptions, 'onRequest'>
}

export const HOSTILE_SCHEMA = 'syntax = "proto3"; package chat; message Message { string author = 1; string text = 2; }'

async function main(): Promise<void> {
  const options: HostileHubOptions = JSON.parse(process.argv[2] ?? '{}')
  const hub = HyperEmitter(null, HOSTILE_SCHEMA, { reconnectKnown: false, ...options.replication })
  // Peers misbehave on purpose here: their errors are expected, not news.
  hub.status.on('error', () => {})
  await hub.ready()
  const pending: Promise<void>[] = []
  for (let i = 0; i < (options.events ?? 0); i++) pending.push(hub.emit('chat.Message', { author: 'hub', text: `event ${i}` }))
  await Promise.all(pending)
  const address = await hub.listen({
    port: 0,
    host: '127.0.0.1',
    ...options.listen,
    onRequest: options.page ? (_req, res) => res.end('<!doctype html><p>hub</p>') : undefined,
  })
  process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)
  const stop = () => void hub.close().then(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

// Run as a script only: the tests import HOSTILE_SCHEMA from here.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main()
