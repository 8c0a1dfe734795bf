// Service worker of the page `incept export --web DIR` writes: keeps every file the export lists
// in classifier.json so the page works offline.
//
// app.js registers it as sw.js?model=SHA256 (the model's SHA-256 from classifier.json): a new
// export has a new address, so the browser installs a new worker, whose cache replaces the old.

const MODEL = new URL(self.location.href).searchParams.get('model') || 'unknown';
const SCOPE = self.registration.scope; // the page's folder, ending in '/'
// Several exported pages can share an origin: each one's caches are named after its folder.
const CACHE_PREFIX = `incept ${SCOPE} `;
const CACHE = CACHE_PREFIX + MODEL;
const CONFIG_FILE = 'classifier.json';
// classifier.json is asked of the network first (so a new export is seen), but not for longer.
const NETWORK_TIMEOUT_MS = 4000;

self.addEventListener('install', (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

async function precache() {
  // 'no-cache' revalidates with the server: never a stale file from the HTTP cache, and little
  // traffic when the page has just downloaded the same files.
  const response = await fetch(CONFIG_FILE, { cache: 'no-cache' });
  if (!response.ok) throw new Error(`${CONFIG_FILE}: HTTP ${response.status}`);
  const config = await response.json();
  if (config.model_sha256 !== MODEL) {
    throw new Error(`${CONFIG_FILE} names model ${config.model_sha256}, this worker is for ${MODEL}`);
  }
  const files = new Set(config.files);
  files.add(CONFIG_FILE);
  const cache = await caches.open(CACHE);
  // All or nothing: addAll stores no file unless every one was fetched.
  await cache.addAll([...files].map((file) => new Request(new URL(file, SCOPE), { cache: 'no-cache' })));
}

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      // Serve the page that registered this worker now, not from its next load.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || !request.url.startsWith(SCOPE)) return;
  const path = new URL(request.url).pathname.slice(new URL(SCOPE).pathname.length);
  if (path === CONFIG_FILE) {
    event.respondWith(networkFirst(request));
  } else {
    // The folder's own address is its index.html.
    event.respondWith(cacheFirst(path === '' ? new URL('index.html', SCOPE).href : request));
  }
});

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  return (await cache.match(request, { ignoreSearch: true })) || fetch(request);
}

async function networkFirst(request) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), NETWORK_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(request, { signal: abort.signal });
    if (response.ok) return response;
  } catch {
    // Offline, or too slow: the saved copy below.
  } finally {
    clearTimeout(timer);
  }
  const cache = await caches.open(CACHE);
  return (await cache.match(request, { ignoreSearch: true })) || response || Response.error();
}
