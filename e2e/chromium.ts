// How Playwright launches Debian's Chromium here (apt install chromium):
// never a downloaded browser, and no background networking, which would
// flood the closed network with refused connections. Shared by
// playwright.config.ts and bench/browser.ts.
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
]
