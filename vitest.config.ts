import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // Explicit, so vitest never picks up the Playwright specs in e2e/.
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/helpers/text-schemas.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
})
