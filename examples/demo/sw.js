// The demo's service worker: keeps the app shell (page, script, styles,
// schema) so the page loads with the hub down; the log itself is in
// IndexedDB. Network first, so a running hub always serves the newest shell;
// the cache answers only when the network fails.
const CACHE = 'hyperemitter-demo-shell'
const SHELL = ['./', './main.js', './style.css', './chat.proto']

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (event) => {
  // Control the page that registered us at once, not from its next load.
  event.waitUntil(self.clients.claim())
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== self.location.origin) return
  const shellPath = SHELL.some((path) => new URL(path, self.registration.scope).pathname === url.pathname)
  if (!shellPath) return
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone()
          // Stored without the query: the page takes ?hub= and ?db=, the shell is the same.
          void caches.open(CACHE).then((cache) => cache.put(url.pathname, copy))
        }
        return response
      })
      .catch(async () => {
        const cached = await caches.match(url.pathname, { cacheName: CACHE })
        return cached ?? Response.error()
      }),
  )
})
