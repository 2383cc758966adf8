// `npm start`: a hyperemitter hub with an embedded LevelDB (classic-level),
// serving the demo chat page and its browser bundle over plain HTTP on the
// same port where WebSocket (browsers) and raw TCP (Node) peers connect.
//
//   PORT      port to listen on (default 8080; 0 picks a free one)
//   HOST      interface (default 127.0.0.1; 0.0.0.0 to share on your network)
//   DATA_DIR  where the hub keeps its log (default ./.data/hub, created if missing)
//   ALLOWED_ORIGINS  comma-separated origins of other sites whose pages may connect
//             (default: only the demo page this hub serves)
//   SOURCEMAP=1  also serve the page's source map (off by default)
//
// The page is bundled from examples/demo/main.ts with esbuild when the hub
// starts, so a fresh clone needs nothing built beforehand.
import { mkdirSync, readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ClassicLevel } from 'classic-level'
import { MemoryLevel } from 'memory-level'
import { HyperEmitter, type NodeHyperEmitter } from '../src/index.js'

const here = dirname(fileURLToPath(import.meta.url))
export const DEMO_DIR = join(here, 'demo')
export const CHAT_SCHEMA = readFileSync(join(DEMO_DIR, 'chat.proto'), 'utf8')

export interface Asset {
  type: string
  body: Uint8Array | string
}

/** The demo page's files: static ones from examples/demo, main.js bundled from main.ts (with its source map only when asked). Rejects if esbuild fails. */
export async function buildDemo(options: { minify?: boolean; sourcemap?: boolean } = {}): Promise<Map<string, Asset>> {
  const esbuild = await import('esbuild')
  const result = await esbuild.build({
    entryPoints: [join(DEMO_DIR, 'main.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: options.minify ?? true,
    sourcemap: options.sourcemap === true ? 'linked' : false,
    write: false,
    outdir: join(DEMO_DIR, 'out'),
    logLevel: 'warning',
  })
  const assets = new Map<string, Asset>()
  for (const file of result.outputFiles) {
    const name = `/${file.path.slice(join(DEMO_DIR, 'out').length + 1)}`
    assets.set(name, { type: name.endsWith('.map') ? 'application/json' : 'text/javascript; charset=utf-8', body: file.contents })
  }
  const statics: Array<[string, string, string]> = [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/style.css', 'style.css', 'text/css; charset=utf-8'],
    ['/chat.proto', 'chat.proto', 'text/plain; charset=utf-8'],
    // The service worker that keeps the shell above for offline loads: a script type, or the browser refuses it.
    ['/sw.js', 'sw.js', 'text/javascript; charset=utf-8'],
  ]
  for (const [path, file, type] of statics) assets.set(path, { type, body: readFileSync(join(DEMO_DIR, file)) })
  return assets
}

/**
 * Sent with every response: no content-type sniffing, no framing by other
 * sites, and pages that run only this site's own scripts and styles and
 * talk only to it and to WebSocket hubs.
 */
export const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const

/** An onRequest handler that serves `assets` (GET and HEAD only). */
export function serveAssets(assets: Map<string, Asset>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const asset = assets.get(path === '/index.html' ? '/' : path)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: 'GET, HEAD' }).end()
      return
    }
    if (!asset) {
      res.writeHead(404, { ...SECURITY_HEADERS, 'content-type': 'text/plain' }).end('not found\n')
      return
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': asset.type, 'cache-control': 'no-cache' })
    res.end(req.method === 'HEAD' ? undefined : asset.body)
  }
}

/**
 * `text` safe to print on a terminal: control characters (ANSI escapes, a
 * carriage return that would overwrite the line, a newline that would fake
 * a log line) and bidi overrides shown as \u escapes.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

export interface HubOptions {
  port?: number
  host?: string
  /** Directory of the hub's LevelDB; null keeps the log in memory (tests). */
  dataDir?: string | null
  /** Prebuilt demo assets (tests build them once); default: built now. */
  assets?: Map<string, Asset>
  /** Print each chat message as it arrives. */
  log?: boolean
  /** Origins of other sites whose pages may connect (the page this hub serves always may). */
  allowedOrigins?: string[]
}

export interface RunningHub {
  emitter: NodeHyperEmitter
  host: string
  port: number
  /** The demo page. */
  url: string
  /** Where WebSocket peers connect. */
  wsUrl: string
  close(): Promise<void>
}

/** Start a hub: open the db, bundle the page, listen. Rejects with the cause (port in use, db locked...). */
export async function startHub(options: HubOptions = {}): Promise<RunningHub> {
  const host = options.host ?? '127.0.0.1'
  const assets = options.assets ?? (await buildDemo())
  let db
  if (options.dataDir === null) db = new MemoryLevel({ keyEncoding: 'view', valueEncoding: 'view' })
  else {
    const dir = resolve(options.dataDir ?? '.data/hub')
    mkdirSync(dir, { recursive: true })
    db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' })
  }
  const emitter = HyperEmitter(db, CHAT_SCHEMA) as NodeHyperEmitter
  // Start-up failures reach the caller; later ones (a peer misbehaving...) are printed.
  let started = false
  emitter.status.on('error', (err: Error) => {
    if (started) console.error(`hub: ${printable(err.message)}`)
  })
  try {
    await emitter.ready()
    if (options.log) {
      emitter.on('chat.Message', (m: { author: string; text: string }) => console.log(`  ${printable(m.author)}: ${printable(m.text)}`))
    }
    const allowedOrigins = options.allowedOrigins?.length
      ? (origin: string, req: IncomingMessage) => options.allowedOrigins!.includes(origin) || new URL(origin).host === req.headers.host
      : 'same-origin'
    const address = await emitter.listen({ port: options.port ?? 8080, host, onRequest: serveAssets(assets), allowedOrigins })
    started = true
    const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host
    return {
      emitter,
      host,
      port: address.port,
      url: `http://${shown}:${address.port}/`,
      wsUrl: `ws://${shown}:${address.port}/`,
      async close() {
        await emitter.close()
        await db.close()
      },
    }
  } catch (err) {
    await emitter.close().catch(() => {})
    await db.close().catch(() => {})
    throw err
  }
}

async function main(): Promise<void> {
  const port = process.env.PORT === undefined ? 8080 : Number(process.env.PORT)
  const dataDir = process.env.DATA_DIR ?? '.data/hub'
  let hub: RunningHub
  try {
    const allowedOrigins = process.env.ALLOWED_ORIGINS?.split(',').map((o) => o.trim()).filter(Boolean)
    const assets = await buildDemo({ sourcemap: process.env.SOURCEMAP === '1' })
    hub = await startHub({ port, host: process.env.HOST, dataDir, log: true, allowedOrigins, assets })
  } catch (err) {
    let text = ''
    for (let e: any = err, i = 0; e && i < 6; e = e.cause, i++) text += ` ${e.code ?? ''} ${e.message ?? String(e)}`
    if (/EADDRINUSE/.test(text)) console.error(`port ${port} is in use: try PORT=8081 npm start`)
    else if (/LEVEL_LOCKED|LOCK/.test(text)) console.error(`${dataDir} is in use by another hub (LevelDB lock): stop it, or set DATA_DIR`)
    else if (/storage format/.test(text)) console.error(`${dataDir} was written by another version of hyperemitter (${text.trim()}): move it away, or set DATA_DIR`)
    else console.error(err)
    process.exit(1)
  }
  const id = await hub.emitter.getId()
  console.log(`hyperemitter hub ${id.slice(0, 8)} · data in ${resolve(dataDir)}`)
  console.log(`demo: ${hub.url}`)
  console.log(`peers: ${hub.wsUrl} (WebSocket) or tcp://${hub.host}:${hub.port} (try: npx tsx examples/tcp-peer.ts ${hub.port})`)
  let stopping = false
  const stop = () => {
    if (stopping) process.exit(1)
    stopping = true
    console.log('\nclosing…')
    hub.close().then(
      () => process.exit(0),
      (err) => {
        console.error(err)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) void main()
