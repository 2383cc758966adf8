// Playwright drives Debian's Chromium (apt's /usr/bin/chromium, or
// CHROMIUM_PATH), never a browser it downloads: the test machines reach only
// the npm registry and Debian's mirrors. e2e/chromium.ts holds the flags. Hubs and the page server are started by the tests
// themselves on ephemeral ports (e2e/fixtures.ts), so nothing listens on a
// fixed port and a test can stop and restart its hub.
import { defineConfig } from '@playwright/test'
import { CHROMIUM_ARGS, CHROMIUM_PATH } from './e2e/chromium.js'

export default defineConfig({
  testDir: 'e2e',
  testMatch: '**/*.spec.ts',
  // One worker: the machine has 2 cores, and each test runs a hub and a browser.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  reporter: process.env.CI ? [['list'], ['html', { open: 'never' }]] : [['list']],
  outputDir: 'test-results',
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: CHROMIUM_PATH,
      args: CHROMIUM_ARGS,
    },
    screenshot: 'only-on-failure',
    trace: 'off',
  },
})
