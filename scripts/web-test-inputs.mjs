// What scripts/test-web.mjs feeds the page besides the photos: incept predict's expected
// answers, inputs the page must refuse, and damaged copies of the export it must explain.

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { deflateSync } from 'node:zlib';

// The page's modules: one missing fails app.js's module graph, which index.html reports.
const PAGE_MODULES = ['classifier.js', 'photo.js', 'messages.js', 'resize.js'];

/** incept predict's JSON lines: Map of file name → Map of class → probability. */
export function readExpected(path) {
  const expected = new Map();
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .forEach((line, index) => {
      const entry = JSON.parse(line);
      if (!entry.path || !Array.isArray(entry.top)) throw new Error(`${path}:${index + 1}: no "path" and "top"`);
      const name = basename(entry.path);
      if (expected.has(name)) throw new Error(`${path}: ${name} twice (photos are matched by file name)`);
      expected.set(name, new Map(entry.top.map((t) => [t.class, t.probability])));
    });
  return expected;
}

/**
 * Files the page must refuse with a message, written into `dir`: [{label, file, mention}],
 * mention being what the message must contain.
 */
export function writeBadInputs(dir, config) {
  const notImage = join(dir, 'notes.jpg');
  writeFileSync(notImage, 'These are notes, not a photo.\n');
  const tooWide = config.max_dimension + 1;
  const wide = join(dir, 'wide.png');
  writeFileSync(wide, makePng(tooWide, 1));
  return [
    { label: 'not an image', file: notImage, mention: ['notes.jpg', 'not an image'] },
    { label: 'too large', file: wide, mention: ['wide.png', `${tooWide}×1`, String(config.max_dimension)] },
  ];
}

/**
 * Damaged copies of the export in `dir` as web-test-server.mjs serves them (`missing`,
 * `override`), and a browser without WebAssembly (`withoutWebAssembly`): [{label, mention, …}].
 */
export function damagedExports(dir, config) {
  const model = readFileSync(join(dir, config.model));
  const half = model.subarray(0, Math.floor(model.length / 2));
  const halfSha = createHash('sha256').update(half).digest('hex');
  const agreeing = Buffer.from(JSON.stringify({ ...config, model_bytes: half.length, model_sha256: halfSha }));
  const again = 'export it again';
  return [
    { label: `${config.model} missing`, missing: [config.model], mention: [config.model, 'HTTP 404', again] },
    { label: `${config.model} truncated to half`, override: { [config.model]: half }, mention: [config.model, again] },
    {
      label: `${config.model} corrupt, classifier.json agreeing with it`,
      override: { [config.model]: half, 'classifier.json': agreeing },
      mention: [config.model, 'onnxruntime', again],
    },
    { label: 'classifier.json missing', missing: ['classifier.json'], mention: ['classifier.json', 'HTTP 404', again] },
    {
      label: 'classifier.json not JSON',
      override: { 'classifier.json': Buffer.from('{"format": 1, "classes": [') },
      mention: ['classifier.json', 'JSON', again],
    },
    { label: 'ort WebAssembly missing', missing: ['ort/ort-wasm-simd-threaded.wasm'], mention: ['WebAssembly', again] },
    { label: 'ort script missing', missing: ['ort/ort.wasm.min.js'], mention: ['ort/ort.wasm.min.js', again] },
    ...PAGE_MODULES.map((name) => ({ label: `${name} missing`, missing: [name], mention: [name, again] })),
    // The page's WebAssembly object removed before any script runs: as in a browser without one.
    { label: 'browser without WebAssembly', withoutWebAssembly: true, mention: ['cannot run WebAssembly'] },
  ];
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A valid grey 8-bit RGB PNG of width × height: tiny even when very wide. */
function makePng(width, height) {
  const chunk = (type, body) => {
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const framing = Buffer.alloc(8);
    framing.writeUInt32BE(body.length, 0);
    framing.writeUInt32BE(crc32(typed), 4);
    return Buffer.concat([framing.subarray(0, 4), typed, framing.subarray(4)]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit, RGB, deflate, adaptive filtering, not interlaced
  const row = Buffer.alloc(1 + width * 3, 128);
  row[0] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(Array.from({ length: height }, () => row)))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
