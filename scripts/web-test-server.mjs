// The static server scripts/test-web.mjs serves an exported page from: what a plain web server
// sends (content types, ETags for the service worker's revalidation), and damaged copies of the
// page (files missing or replaced) without touching the folder.

import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';

const CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
};

/**
 * Serves `folder` on 127.0.0.1 at a free port. `missing` paths (relative, e.g.
 * 'classifier.onnx') answer 404; `override` maps paths to bytes sent instead of the file's.
 * @returns {Promise<{url: string, close: () => Promise<void>}>}
 */
export async function serve(folder, { missing = [], override = {} } = {}) {
  const root = resolve(folder);
  const server = createServer((request, response) => {
    const notFound = () => {
      response.writeHead(404, { 'Content-Type': 'text/plain' });
      response.end('not found');
    };
    let path;
    try {
      path = decodeURIComponent(new URL(request.url, 'http://localhost').pathname).replace(/^\/+/, '');
    } catch {
      return notFound(); // a malformed %-escape
    }
    path ||= 'index.html';
    const file = resolve(root, path);
    if (!file.startsWith(root + sep) || missing.includes(path)) return notFound();
    const headers = {
      'Content-Type': CONTENT_TYPES[extname(path).toLowerCase()] || 'application/octet-stream',
      'Cache-Control': 'no-cache',
    };
    if (path in override) {
      response.writeHead(200, { ...headers, 'Content-Length': override[path].length });
      return response.end(request.method === 'HEAD' ? undefined : override[path]);
    }
    let stats;
    try {
      stats = statSync(file);
    } catch {
      return notFound();
    }
    if (!stats.isFile()) return notFound();
    // An ETag lets the service worker's revalidating install get 304s for files just loaded.
    const etag = `"${stats.size}-${stats.mtimeMs}"`;
    if (request.headers['if-none-match'] === etag) {
      response.writeHead(304, { ETag: etag });
      return response.end();
    }
    response.writeHead(200, { ...headers, ETag: etag, 'Content-Length': stats.size });
    if (request.method === 'HEAD') return response.end();
    createReadStream(file).pipe(response);
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () =>
      new Promise((done) => {
        server.close(() => done()); // called again on a closed server: done all the same
        server.closeAllConnections(); // keep-alive connections would keep it serving
      }),
  };
}
