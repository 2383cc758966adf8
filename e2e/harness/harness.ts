// A bare page for tests and benchmarks that need the library in a real
// browser without the demo's UI: it exposes the browser entry, browser-level
// (to check the storage layout against) and the portable Log conformance
// cases on globalThis.
import { BrowserLevel } from 'browser-level'
import * as hyperemitter from '../../src/browser.js'
import { memoryDb } from '../../src/browser/storage.js'
import type { IndexedDb } from '../../src/browser/idb.js'
import { logCases, runCase, type Backend, type CaseResult } from '../../test/browser-conformance.js'

let dbCounter = 0

/** IndexedDB as the browser entry opens it (indexedDb()), one fresh database per create(). */
// The cases type their db as abstract-level's; the Log calls on it only what IndexedDb has too.
const asDb = (db: IndexedDb) => db as unknown as ReturnType<Backend['create']>
const indexedDbBackend: Backend = {
  name: 'IndexedDB',
  create: () => asDb(hyperemitter.indexedDb(`conformance-${Date.now()}-${dbCounter++}`)),
  reopen: (db) => asDb(hyperemitter.indexedDb((db as unknown as IndexedDb).location)),
}

// The db the entry falls back to without IndexedDB; it keeps its data across close() and open().
const memoryBackend: Backend = { name: 'memory fallback', create: memoryDb, reopen: (db) => db }

/** The conformance cases on IndexedDB, or on the in-memory fallback. */
async function runConformance(backend?: 'memory'): Promise<CaseResult[]> {
  const results: CaseResult[] = []
  for (const c of logCases) results.push(await runCase(backend === 'memory' ? memoryBackend : indexedDbBackend, c))
  return results
}

/**
 * `?history=<db>&events=<n>&schema=<.proto text>`: open the emitter at once
 * (as globalThis.chat) and read its history from the beginning, setting
 * globalThis.historyRead to { readyMs, ms, role } (ms since navigation) after
 * the n-th event: what the benchmarks time, with nothing in between.
 */
async function readHistoryFromUrl(): Promise<void> {
  const params = new URLSearchParams(location.search)
  const name = params.get('history')
  if (name === null) return
  const events = Number(params.get('events'))
  const chat = hyperemitter.HyperEmitter({ name, schema: params.get('schema') ?? '' })
  Object.assign(globalThis, { chat })
  await chat.ready()
  const readyMs = performance.now()
  let seen = 0
  if (events > 0) for await (const _ of chat.events({ from: 'beginning' })) if (++seen === events) break
  Object.assign(globalThis, { historyRead: { readyMs, ms: performance.now(), role: chat.role } })
}

Object.assign(globalThis, { hyperemitter, BrowserLevel, runConformance, logCaseNames: logCases.map((c) => c.name) })
document.getElementById('state')!.textContent = 'ready'
readHistoryFromUrl().catch((err) => Object.assign(globalThis, { historyRead: { error: String(err) } }))
