// A bare page for tests and benchmarks that need the library in a real
// browser without the demo's UI: it exposes the browser entry, browser-level
// and the portable Log conformance cases on globalThis.
import { BrowserLevel } from 'browser-level'
import * as hyperemitter from '../../src/browser.js'
import { logCases, runCase, type Backend, type CaseResult } from '../../test/browser-conformance.js'

let dbCounter = 0

/**
 * browser-level (IndexedDB) as the browser entry sets it up (indexedDb(): its
 * pipelined batches), one fresh database per create().
 */
const indexedDbBackend: Backend = {
  name: 'browser-level',
  create: () => hyperemitter.indexedDb(`conformance-${Date.now()}-${dbCounter++}`),
  reopen: (db) => hyperemitter.indexedDb((db as BrowserLevel).location),
}

async function runConformance(): Promise<CaseResult[]> {
  const results: CaseResult[] = []
  for (const c of logCases) results.push(await runCase(indexedDbBackend, c))
  return results
}

Object.assign(globalThis, { hyperemitter, BrowserLevel, runConformance, logCaseNames: logCases.map((c) => c.name) })
document.getElementById('state')!.textContent = 'ready'
