// The demo page: a chat room on one hyperemitter log. Every tab reads and
// writes the one log in IndexedDB; the leader tab syncs it with the hub that
// served the page. A service worker (sw.js) keeps the page itself, so it
// loads with the hub down.
//
// Query parameters (used by the e2e tests, handy by hand):
//   ?hub=ws://host:port/   the hub to sync with (default: the page's own host)
//   ?db=name               the IndexedDB database name (default hyperemitter-demo)
//   ?maxReconnect=ms       longest wait between reconnect attempts (default 10000)
import { HyperEmitter, type ConnectionState } from '../../src/browser.js'

interface ChatMessage {
  author: string
  text: string
  sent_at: number
}

const params = new URLSearchParams(location.search)
const hubUrl = params.get('hub') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`
const dbName = params.get('db') ?? 'hyperemitter-demo'
// Longest wait between reconnect attempts, ms (the library's default is 30 s).
const maxReconnect = Number(params.get('maxReconnect') ?? 10_000)

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const statusEl = $('status')
const roleEl = $('role')
const list = $<HTMLOListElement>('messages')
const empty = $('empty')
const countEl = $('count')
const form = $<HTMLFormElement>('composer')
const nameInput = $<HTMLInputElement>('name')
const textInput = $<HTMLInputElement>('text')
$('db').textContent = `IndexedDB "${dbName}" · hub ${hubUrl}`

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register(new URL('sw.js', location.href)).catch((err: Error) => console.error('no offline page:', err))
}

nameInput.value = localStorage.getItem('hyperemitter-demo:name') ?? randomName()
nameInput.addEventListener('change', () => localStorage.setItem('hyperemitter-demo:name', nameInput.value.trim()))

const schema = await fetch(new URL('chat.proto', location.href)).then((r) => {
  if (!r.ok) throw new Error(`could not load chat.proto: HTTP ${r.status}`)
  return r.text()
})
const chat = HyperEmitter<{ 'chat.Message': ChatMessage }>({ name: dbName, schema, maxReconnectTimeout: maxReconnect })
// For the e2e tests and for poking around in the console.
Object.assign(globalThis, { chat })

let count = 0
chat.on(
  'chat.Message',
  (message) => {
    count++
    render(message)
  },
  { from: 'beginning' },
)

/** sent_at of the messages this tab sent while not synced: shown as pending until the hubs have them. */
const unsynced = new Set<number>()

chat.status.on('connection', showConnection)
chat.status.on('role', showRole)
chat.status.on('error', (err: Error) => {
  statusEl.dataset.state = 'error'
  statusEl.textContent = `error: ${err.message}`
  console.error(err)
})
chat.connect(hubUrl).catch((err: Error) => console.error('connect failed', err))

form.addEventListener('submit', (event) => {
  event.preventDefault()
  const author = nameInput.value.trim()
  const text = textInput.value.trim()
  if (!author || !text) return
  localStorage.setItem('hyperemitter-demo:name', author)
  textInput.value = ''
  const sent_at = Date.now()
  if (chat.connection.state !== 'synced') unsynced.add(sent_at)
  chat.emit('chat.Message', { author, text, sent_at }).catch((err: Error) => {
    // Nothing was stored: give the text back.
    textInput.value = text
    statusEl.dataset.state = 'error'
    statusEl.textContent = `not sent: ${err.message}`
  })
})

/**
 * Messages in an order every peer agrees on: by send time, then author and
 * text. The log's own order differs between peers for messages written
 * concurrently (each peer stores its own first), so it cannot be the display order.
 */
const rows: Array<{ key: OrderKey; li: HTMLLIElement }> = []
type OrderKey = [number, string, string]

function orderKey(message: ChatMessage): OrderKey {
  return [message.sent_at, message.author, message.text]
}

function compareKeys(a: OrderKey, b: OrderKey): number {
  if (a[0] !== b[0]) return a[0] - b[0]
  if (a[1] !== b[1]) return a[1] < b[1] ? -1 : 1
  return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0
}

/** Where a row with `key` goes: after every row that sorts before or with it. */
function rowIndex(key: OrderKey): number {
  let lo = 0
  let hi = rows.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareKeys(rows[mid].key, key) <= 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

function render(message: ChatMessage): void {
  const nearBottom = list.parentElement!.scrollHeight - list.parentElement!.scrollTop - list.parentElement!.clientHeight < 60
  const li = document.createElement('li')
  li.className = 'msg'
  if (message.author === nameInput.value.trim()) li.classList.add('mine')
  if (unsynced.has(message.sent_at)) li.classList.add('pending')
  li.dataset.author = message.author
  const avatar = document.createElement('span')
  avatar.className = 'avatar'
  avatar.textContent = (message.author[0] ?? '?').toUpperCase()
  avatar.style.background = colorOf(message.author)
  const bubble = document.createElement('div')
  bubble.className = 'bubble'
  const who = document.createElement('div')
  who.className = 'who'
  who.textContent = message.author
  who.style.color = colorOf(message.author)
  const when = document.createElement('span')
  when.className = 'when'
  when.textContent = new Date(message.sent_at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  who.append(when)
  const body = document.createElement('div')
  body.className = 'body'
  body.textContent = message.text
  bubble.append(who, body)
  li.append(avatar, bubble)
  const row = { key: orderKey(message), li }
  const at = rowIndex(row.key)
  list.insertBefore(li, rows[at]?.li ?? null)
  rows.splice(at, 0, row)
  empty.hidden = true
  countEl.textContent = `${count} event${count === 1 ? '' : 's'}`
  if (nearBottom) list.parentElement!.scrollTop = list.parentElement!.scrollHeight
}

function showConnection(c: ConnectionState): void {
  if (c.state === 'synced') {
    unsynced.clear()
    list.querySelectorAll('.pending').forEach((li) => li.classList.remove('pending'))
  }
  statusEl.dataset.state = c.state
  statusEl.dataset.pending = String(c.pending)
  const pending = c.pending > 0 ? `, ${c.pending} pending` : ''
  switch (c.state) {
    case 'synced':
      statusEl.textContent = 'synced'
      break
    case 'connecting':
      statusEl.textContent = `connecting…${pending}`
      break
    case 'offline':
      statusEl.textContent = `${c.online ? 'hub unreachable' : 'offline'}${pending}`
      break
    default:
      statusEl.textContent = `local only${pending}`
  }
  showRole(c.role)
}

function showRole(role: string | undefined): void {
  roleEl.dataset.role = role ?? ''
  roleEl.textContent =
    role === 'leader' ? 'this tab talks to the hub for all tabs' : role === 'follower' ? 'another tab talks to the hub' : role === 'single' ? 'IndexedDB, no tab sharing' : ''
}

function colorOf(name: string): string {
  let h = 0
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0
  return `hsl(${h % 360} 70% 65%)`
}

function randomName(): string {
  const animals = ['otter', 'lynx', 'heron', 'yak', 'gecko', 'puffin', 'tapir', 'ibis']
  return `${animals[Math.floor(Math.random() * animals.length)]}-${Math.floor(Math.random() * 90 + 10)}`
}
