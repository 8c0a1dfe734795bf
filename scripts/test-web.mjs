#!/usr/bin/env node
// The real-browser test of a page written by `incept export RUN --web DIR`.
//
//   node scripts/test-web.mjs --page DIR --expected EXPECTED.jsonl --photos PHOTO_DIR
//                             [--screenshot FILE] [--fixtures DIR]
//   node scripts/test-web.mjs --resize-only [--page DIR] [--fixtures DIR]
//
// EXPECTED.jsonl is `incept predict RUN PHOTO_DIR --top-k <number of classes> --format json`;
// photos are matched to its lines by file name. The page is served by a static server in this
// script and opened in the system's Chromium (CHROMIUM=path to use another) through
// puppeteer-core from web/node_modules (`just setup` installs it). Before that, the page's
// resize.js is checked against PIL's resizes in tests/fixtures/pil_resize (--fixtures).
//
// Prints one PASS/FAIL line per check and a summary line; exits 1 on any failure, 2 on wrong
// usage.

import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

import { checkResizeFixtures, DEFAULT_FIXTURES, DEFAULT_RESIZE_JS } from './test-resize.mjs';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Probabilities must agree with incept predict's within this (float32 inference in both).
const TOLERANCE = 1e-3;
const MIN_PHOTOS = 20;
const DEFAULT_MAX_DIMENSION = 16384; // as the page assumes when classifier.json has none
const TOP_SHOWN = 3;
// A phone's viewport, for the screenshot and so that the page is tested as phones show it.
const VIEWPORT = { width: 412, height: 900, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const LOAD_TIMEOUT_MS = 180_000; // a 70 MB model, compiled and parsed on a slow machine
const ANSWER_TIMEOUT_MS = 60_000;
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

// ---------------------------------------------------------------- reporting

const results = [];
function report(ok, name, detail = '') {
  results.push({ ok, name });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
  return ok;
}

/** Runs one check, whose body returns {ok, detail}; an exception fails it, not the test. */
async function check(name, body) {
  try {
    const { ok, detail } = await body();
    return report(ok, name, detail);
  } catch (error) {
    return report(false, name, error?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(error));
  }
}

// ---------------------------------------------------------------- arguments

function parseArguments(argv) {
  const options = { resizeOnly: false, fixtures: DEFAULT_FIXTURES };
  const valued = ['--page', '--expected', '--photos', '--screenshot', '--fixtures'];
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    if (argument === '--resize-only') options.resizeOnly = true;
    else if (valued.includes(argument) && i + 1 < argv.length) options[argument.slice(2)] = resolve(argv[++i]);
    else usage(`unknown or incomplete argument ${argument}`);
  }
  if (!options.resizeOnly && !(options.page && options.expected && options.photos)) {
    usage('--page, --expected and --photos are required');
  }
  return options;
}

function usage(problem) {
  console.error(`test-web: ${problem}
usage: node scripts/test-web.mjs --page DIR --expected EXPECTED.jsonl --photos PHOTO_DIR [--screenshot FILE]
       node scripts/test-web.mjs --resize-only [--page DIR] [--fixtures DIR]`);
  process.exit(2);
}

// ---------------------------------------------------------------- static server

/**
 * Serves `folder` on 127.0.0.1 at a free port. `missing` paths (relative, e.g.
 * 'classifier.onnx') answer 404; `override` maps paths to bytes sent instead of the file's.
 * @returns {Promise<{url: string, close: () => Promise<void>}>}
 */
async function serve(folder, { missing = [], override = {} } = {}) {
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

// ---------------------------------------------------------------- browser

function loadPuppeteer() {
  // puppeteer-core lives in web/node_modules, not next to this script.
  const require = createRequire(join(REPO, 'web', 'package.json'));
  try {
    return require('puppeteer-core');
  } catch (error) {
    console.error(
      `test-web: puppeteer-core not found under web/node_modules (${error.message}); ` +
        'run `just setup`, or `npm ci` in web/',
    );
    process.exit(2);
  }
}

const temporaryDirs = [];
function temporaryDir(label) {
  const dir = mkdtempSync(join(tmpdir(), `incept-test-web-${label}-`));
  temporaryDirs.push(dir);
  return dir;
}

/** A browser with a new, empty profile: no service worker or cache from another check. */
async function launch(puppeteer, label) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found; set CHROMIUM to a Chromium or Chrome`);
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: temporaryDir(`profile-${label}`),
    // As root, Chromium runs only without its sandbox.
    args: ['--no-sandbox', '--no-first-run', '--no-default-browser-check'],
  });
}

async function openPage(browser) {
  const page = await browser.newPage();
  await page.setViewport(VIEWPORT);
  page.consoleErrors = [];
  page.on('console', (message) => message.type() === 'error' && page.consoleErrors.push(message.text()));
  page.on('pageerror', (error) => page.consoleErrors.push(String(error)));
  return page;
}

/** Waits until the page is ready or shows an error: {ready, error, milliseconds}. */
async function waitReadyOrError(page) {
  const started = Date.now();
  await page.waitForFunction(
    () => document.body && (document.body.dataset.ready === '1' || document.body.dataset.error),
    { timeout: LOAD_TIMEOUT_MS, polling: 'mutation' },
  );
  const state = await page.evaluate(() => ({
    ready: document.body.dataset.ready === '1',
    error: document.body.dataset.error ?? null,
  }));
  return { ...state, milliseconds: Date.now() - started };
}

/** The page's counters: answers and errors so far. */
function counters(page) {
  return page.evaluate(() => ({
    classified: Number(document.body.dataset.classified || 0),
    errors: Number(document.body.dataset.errors || 0),
  }));
}

/**
 * Chooses `file` in #photo and waits for the page's answer or error.
 * @returns {Promise<{result: object|null, error: string|null, verdict: string, shown: number}>}
 */
async function choose(page, file) {
  const before = await counters(page);
  const input = await page.$('#photo');
  if (!input) throw new Error('the page has no #photo input');
  await input.uploadFile(file);
  await page.waitForFunction(
    (b) =>
      Number(document.body.dataset.classified || 0) > b.classified ||
      Number(document.body.dataset.errors || 0) > b.errors,
    { timeout: ANSWER_TIMEOUT_MS, polling: 'mutation' },
    before,
  );
  return page.evaluate((b) => {
    const data = document.body.dataset;
    const answered = Number(data.classified || 0) > b.classified;
    return {
      result: answered ? JSON.parse(data.result) : null,
      error: answered ? null : data.error,
      verdict: document.getElementById('verdict')?.textContent ?? '',
      shown: document.querySelectorAll('#top li').length,
    };
  }, before);
}

/** The text of #message when it is visible, else null. */
function visibleMessage(page) {
  return page.evaluate(() => {
    const message = document.getElementById('message');
    if (!message?.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return null;
    const box = message.getBoundingClientRect();
    return box.width > 0 && box.height > 0 ? message.textContent : null;
  });
}

// ---------------------------------------------------------------- test inputs

/** incept predict's JSON lines: Map of file name → Map of class → probability. */
function readExpected(path) {
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

function filesUnder(root, dir = root) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(root, path) : [relative(root, path).split(sep).join('/')];
  });
}

// ---------------------------------------------------------------- checks

async function checkResize(resizeJs, fixtures) {
  if (!existsSync(fixtures)) return report(false, 'resize', `${fixtures} not found`);
  for (const { name, ok, detail } of await checkResizeFixtures(resizeJs, fixtures)) {
    report(ok, `resize ${name}`, detail);
  }
}

/** classifier.json against the folder: each file listed exists, each file is listed; the model. */
function checkExportFiles(dir, config) {
  const present = filesUnder(dir);
  const listed = config.files ?? [];
  const unlisted = present.filter((file) => !listed.includes(file));
  const absent = listed.filter((file) => !present.includes(file));
  report(
    unlisted.length === 0 && absent.length === 0,
    'export files',
    unlisted.length || absent.length
      ? `not in classifier.json's files: [${unlisted.join(', ')}]; listed but absent: [${absent.join(', ')}]`
      : `classifier.json lists the ${present.length} files of the folder`,
  );
  const model = readFileSync(join(dir, config.model));
  const sha = createHash('sha256').update(model).digest('hex');
  const shaAgrees = sha === config.model_sha256;
  report(
    model.length === config.model_bytes && shaAgrees,
    'export model',
    `${config.model}: ${model.length} bytes (classifier.json ${config.model_bytes}), ` +
      `SHA-256 ${shaAgrees ? 'as in classifier.json' : `${sha}, classifier.json ${config.model_sha256}`}`,
  );
}

/** What the page states: run name, classes, threshold, the photo inputs. */
async function checkPageContent(page, config) {
  await check('page content', async () => {
    const shown = await page.evaluate(() => ({
      run: document.getElementById('run')?.textContent,
      classes: document.querySelectorAll('#classes li').length,
      threshold: document.getElementById('threshold')?.textContent ?? '',
      photoAccept: document.getElementById('photo')?.accept,
      camera: document.querySelector('input[type=file][capture]')?.getAttribute('capture'),
    }));
    const threshold = config.min_confidence == null ? 'threshold' : `${(config.min_confidence * 100).toFixed(1)} %`;
    const problems = [];
    if (shown.run !== config.run) problems.push(`run "${shown.run}", not "${config.run}"`);
    if (shown.classes !== config.classes.length) problems.push(`${shown.classes} classes listed`);
    if (!shown.threshold.includes(threshold)) problems.push(`threshold text "${shown.threshold}"`);
    if (shown.photoAccept !== 'image/*') problems.push(`#photo accepts "${shown.photoAccept}"`);
    if (shown.camera !== 'environment') problems.push('no camera input (capture="environment")');
    return {
      ok: problems.length === 0,
      detail: problems.length ? problems.join('; ') : `run, ${shown.classes} classes, "${shown.threshold}"`,
    };
  });
}

/** One answer against incept predict's probabilities for the same photo. */
function compareWithPredict(name, chosen, predicted, config, largest) {
  const { result, verdict, shown } = chosen;
  if (!predicted) return { ok: false, detail: 'not in the expected file' };
  if (result.file !== name) return { ok: false, detail: `the page answered for ${result.file}` };
  const classes = config.classes;
  if (result.probabilities.length !== classes.length) {
    return { ok: false, detail: `${result.probabilities.length} probabilities for ${classes.length} classes` };
  }
  let worst = { difference: 0, class: '-' };
  for (const [index, className] of classes.entries()) {
    if (!predicted.has(className)) {
      return { ok: false, detail: `no probability for ${className} from incept predict (use --top-k ${classes.length})` };
    }
    const difference = Math.abs(result.probabilities[index] - predicted.get(className));
    if (difference > worst.difference) worst = { difference, class: className };
  }
  if (worst.difference > largest.difference) {
    Object.assign(largest, { difference: worst.difference, where: `${name}, ${worst.class}` });
  }
  const predictTop = [...predicted.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const best = result.top[0];
  const unsure = config.min_confidence != null && best.probability < config.min_confidence;
  const problems = [];
  if (worst.difference > TOLERANCE) problems.push(`differs by more than ${TOLERANCE}`);
  if (best.class !== predictTop) problems.push(`incept predict's top class is ${predictTop}`);
  if (result.uncertain !== unsure) problems.push(`"uncertain" is ${result.uncertain}`);
  const verdictRight = unsure ? verdict.startsWith('Not sure') : verdict === best.class.replaceAll('_', ' ');
  if (!verdictRight) problems.push(`the page says "${verdict}"`);
  if (shown !== Math.min(TOP_SHOWN, classes.length)) problems.push(`${shown} classes shown`);
  return {
    ok: problems.length === 0,
    detail:
      `top ${best.class} ${(best.probability * 100).toFixed(1)} %${result.uncertain ? ' (not sure)' : ''}, ` +
      `largest difference ${worst.difference.toExponential(1)} (${worst.class}), ` +
      `${result.milliseconds} ms inference, ${result.preprocess_milliseconds} ms preprocessing` +
      (problems.length ? `; ${problems.join('; ')}` : ''),
  };
}

async function checkBadInput(page, label, file, mustMention) {
  await check(`bad input: ${label}`, async () => {
    const { result, error } = await choose(page, file);
    if (result) return { ok: false, detail: `classified as ${result.top[0].class} instead of refused` };
    const message = await visibleMessage(page);
    if (message === null) return { ok: false, detail: `#message not visible (data-error: ${error})` };
    const missing = mustMention.filter((text) => !message.includes(text));
    return {
      ok: missing.length === 0 && error === message,
      detail: `"${message}"${missing.length ? `; does not mention ${missing.join(', ')}` : ''}`,
    };
  });
}

/**
 * Damaged copies of the export (served with files missing or replaced), and a browser without
 * WebAssembly, each in a new profile (no service worker from the checks before): a clear
 * message each time, never a blank page.
 */
async function checkBrokenExports(puppeteer, dir, config) {
  const model = readFileSync(join(dir, config.model));
  const half = model.subarray(0, Math.floor(model.length / 2));
  const halfSha = createHash('sha256').update(half).digest('hex');
  const agreeing = Buffer.from(JSON.stringify({ ...config, model_bytes: half.length, model_sha256: halfSha }));
  const again = 'export it again';
  const cases = [
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
    { label: 'resize.js missing', missing: ['resize.js'], mention: ['resize.js', again] },
    // The page's WebAssembly object removed before any script runs: as in a browser without one.
    { label: 'browser without WebAssembly', withoutWebAssembly: true, mention: ['cannot run WebAssembly'] },
  ];
  for (const broken of cases) {
    const kind = broken.withoutWebAssembly ? 'unusable browser' : 'damaged export';
    await check(`${kind}: ${broken.label}`, async () => {
      const server = await serve(dir, broken);
      const browser = await launch(puppeteer, 'damaged');
      try {
        const page = await openPage(browser);
        if (broken.withoutWebAssembly) await page.evaluateOnNewDocument(() => delete globalThis.WebAssembly);
        await page.goto(server.url);
        const fresh = await page.evaluate(() => navigator.serviceWorker?.controller == null);
        const state = await waitReadyOrError(page);
        const message = await visibleMessage(page);
        const profile = fresh ? 'fresh profile' : 'a service worker controls the page';
        if (message === null) {
          return { ok: false, detail: `${profile}; no visible message (ready ${state.ready}, data-error ${state.error})` };
        }
        const missing = broken.mention.filter((text) => !message.includes(text));
        return {
          ok: fresh && !state.ready && missing.length === 0,
          detail: `${profile}; "${message}"${missing.length ? `; does not mention ${missing.join(', ')}` : ''}`,
        };
      } finally {
        await browser.close();
        await server.close();
      }
    });
  }
}

// ---------------------------------------------------------------- main

async function main() {
  const options = parseArguments(process.argv.slice(2));
  await checkResize(options.page ? join(options.page, 'resize.js') : DEFAULT_RESIZE_JS, options.fixtures);
  if (options.resizeOnly) return {};

  const dir = options.page;
  let config;
  try {
    config = JSON.parse(readFileSync(join(dir, 'classifier.json'), 'utf8'));
    config.max_dimension ??= DEFAULT_MAX_DIMENSION;
    checkExportFiles(dir, config);
  } catch (error) {
    report(false, 'export files', `${join(dir, 'classifier.json')}: ${error.message}`);
    return {};
  }
  const expected = readExpected(options.expected);
  const photos = [...expected.keys()].map((name) => ({ name, path: join(options.photos, name) }));
  const absent = photos.filter((photo) => !existsSync(photo.path)).map((photo) => photo.name);
  const enough = photos.length >= MIN_PHOTOS && absent.length === 0;
  const where = absent.length ? `; not in ${options.photos}: ${absent.join(', ')}` : '';
  if (!report(enough, 'photos', `${photos.length} in ${basename(options.expected)} (at least ${MIN_PHOTOS})${where}`)) {
    return {};
  }

  const puppeteer = loadPuppeteer();
  const summary = { largest: { difference: -1, where: '' } };
  const server = await serve(dir);
  const browser = await launch(puppeteer, 'main');
  try {
    const page = await openPage(browser);
    const opened = Date.now();
    await page.goto(server.url);
    const loaded = await waitReadyOrError(page);
    summary.readyMs = Date.now() - opened;
    const readyDetail = loaded.ready ? `classifier loaded ${seconds(summary.readyMs)} after opening the page` : '';
    if (!report(loaded.ready, 'page ready', readyDetail || `error: ${loaded.error}`)) {
      showConsoleErrors(page);
      return summary; // the browser and server close below
    }
    await checkPageContent(page, config);

    // Every photo: the page's probabilities against incept predict's.
    const answers = new Map();
    for (const photo of photos) {
      await check(`photo ${photo.name}`, async () => {
        const chosen = await choose(page, photo.path);
        summary.firstAnswerMs ??= Date.now() - opened;
        if (!chosen.result) return { ok: false, detail: `error: ${chosen.error}` };
        answers.set(photo.name, chosen.result);
        return compareWithPredict(photo.name, chosen, expected.get(photo.name), config, summary.largest);
      });
    }
    if (options.screenshot) {
      await page.screenshot({ path: options.screenshot, fullPage: true });
      console.log(`screenshot: ${options.screenshot}`);
    }

    // Bad inputs: a message naming the file; then a good photo clears it.
    const scratch = temporaryDir('inputs');
    const notImage = join(scratch, 'notes.jpg');
    writeFileSync(notImage, 'These are notes, not a photo.\n');
    await checkBadInput(page, 'not an image', notImage, ['notes.jpg', 'not an image']);
    const tooWide = config.max_dimension + 1;
    const wide = join(scratch, 'wide.png');
    writeFileSync(wide, makePng(tooWide, 1));
    await checkBadInput(page, 'too large', wide, ['wide.png', `${tooWide}×1`, String(config.max_dimension)]);
    await check('error cleared by the next photo', async () => {
      const { result, error } = await choose(page, photos[0].path);
      if (!result) return { ok: false, detail: `error: ${error}` };
      const cleared = await page.evaluate(() => document.body.dataset.error === undefined);
      const hidden = (await visibleMessage(page)) === null;
      return {
        ok: cleared && hidden,
        detail: `data-error ${cleared ? 'cleared' : 'still set'}, #message ${hidden ? 'hidden' : 'still shown'}`,
      };
    });

    // Offline: once the service worker has the files, the server goes away; the page still answers.
    await check('offline', async () => {
      await page.waitForFunction(() => document.body.dataset.offline === '1', {
        timeout: LOAD_TIMEOUT_MS,
        polling: 'mutation',
      });
      const note = await page.$eval('#offline', (element) => element.textContent);
      await server.close();
      if (await fetch(server.url).then(() => true, () => false)) {
        return { ok: false, detail: 'the static server still answers after close()' };
      }
      await page.reload();
      const reloaded = await waitReadyOrError(page);
      if (!reloaded.ready) return { ok: false, detail: `after reloading without the server: ${reloaded.error}` };
      const photo = photos[0];
      const { result, error } = await choose(page, photo.path);
      if (!result) return { ok: false, detail: `error: ${error}` };
      const before = answers.get(photo.name).probabilities;
      const difference = Math.max(...result.probabilities.map((p, i) => Math.abs(p - before[i])));
      const same = difference === 0 ? 'the same probabilities' : `probabilities differing by ${difference}`;
      return {
        ok: difference === 0,
        detail: `"${note}"; server stopped, page reloaded (ready in ${seconds(reloaded.milliseconds)}), ${photo.name} gives ${same}`,
      };
    });
    showConsoleErrors(page);
  } finally {
    await browser.close();
    await server.close();
  }

  await checkBrokenExports(puppeteer, dir, config);
  return summary;
}

function seconds(milliseconds) {
  return `${(milliseconds / 1000).toFixed(2)} s`;
}

function showConsoleErrors(page) {
  if (page.consoleErrors.length) {
    console.log(`  console errors on the page: ${page.consoleErrors.slice(0, 5).join(' | ')}`);
  }
}

/** Prints the summary and exits; called once every browser and server is closed. */
function finish(summary) {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
  const failed = results.filter((r) => !r.ok);
  const parts = [`${results.length - failed.length} of ${results.length} checks passed`];
  if (summary.largest?.difference >= 0) {
    const { difference, where } = summary.largest;
    parts.push(`largest probability difference ${difference.toExponential(2)} (${where})`);
  }
  if (summary.readyMs != null) parts.push(`ready ${seconds(summary.readyMs)}`);
  if (summary.firstAnswerMs != null) parts.push(`first answer ${seconds(summary.firstAnswerMs)} after opening the page`);
  if (failed.length) parts.push(`failed: ${failed.map((r) => r.name).join(', ')}`);
  console.log(`${failed.length ? 'FAIL' : 'PASS'} summary: ${parts.join('; ')}`);
  process.exit(failed.length ? 1 : 0);
}

finish(await main());
