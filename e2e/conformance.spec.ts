// The same portable Log cases vitest runs on memory-level, classic-level and
// the core's memory db (test/browser-conformance.ts), here in Chromium on the
// browser entry's IndexedDB db and on its in-memory fallback.
import { expect, test } from './fixtures.js'

test('the Log conformance cases pass on IndexedDB in Chromium', async ({ page, site }) => {
  await page.goto(site.harness)
  await expect(page.locator('#state')).toHaveText('ready')
  const names = await page.evaluate(() => (globalThis as any).logCaseNames as string[])
  expect(names.length).toBeGreaterThanOrEqual(10)
  const results = await page.evaluate(() => (globalThis as any).runConformance() as Promise<Array<{ name: string; ok: boolean; error?: string; ms: number }>>)
  expect(results.map((r) => r.name)).toEqual(names)
  for (const result of results) expect.soft(result, result.name).toMatchObject({ ok: true })
  test.info().annotations.push({ type: 'timings', description: results.map((r) => `${r.ms} ms  ${r.name}`).join('\n') })
})

test('the Log conformance cases pass on the in-memory fallback in Chromium', async ({ page, site }) => {
  await page.goto(site.harness)
  await expect(page.locator('#state')).toHaveText('ready')
  const names = await page.evaluate(() => (globalThis as any).logCaseNames as string[])
  const results = await page.evaluate(() => (globalThis as any).runConformance('memory') as Promise<Array<{ name: string; ok: boolean; error?: string }>>)
  expect(results.map((r) => r.name)).toEqual(names)
  for (const result of results) expect.soft(result, result.name).toMatchObject({ ok: true })
})
