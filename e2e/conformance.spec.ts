// The same portable Log cases vitest runs on memory-level and classic-level
// (test/browser-conformance.ts), here in Chromium on browser-level.
import { expect, test } from './fixtures.js'

test('the Log conformance cases pass on browser-level (IndexedDB) in Chromium', async ({ page, site }) => {
  await page.goto(site.harness)
  await expect(page.locator('#state')).toHaveText('ready')
  const names = await page.evaluate(() => (globalThis as any).logCaseNames as string[])
  expect(names.length).toBeGreaterThanOrEqual(10)
  const results = await page.evaluate(() => (globalThis as any).runConformance() as Promise<Array<{ name: string; ok: boolean; error?: string; ms: number }>>)
  expect(results.map((r) => r.name)).toEqual(names)
  for (const result of results) expect.soft(result, result.name).toMatchObject({ ok: true })
  test.info().annotations.push({ type: 'timings', description: results.map((r) => `${r.ms} ms  ${r.name}`).join('\n') })
})
