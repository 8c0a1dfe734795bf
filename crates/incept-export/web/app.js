// The page `incept export --web DIR` writes: classifies photos in the browser with
// classifier.onnx (onnxruntime-web, WebAssembly), preprocessing them exactly as incept does.
//
// For scripts/test-web.mjs the page reports on <body data-…>: ready, result (JSON of the last
// answer), classified (answers so far), error (the last error's message), errors (their count),
// offline ("1" once a service worker for this export controls the page).

import { resizeBilinear } from './resize.js';

const CONFIG_FILE = 'classifier.json';
const SUPPORTED_FORMAT = 1;
const SERVICE_WORKER = 'sw.js';
// The graph's input and output names (incept-export's IMAGE_INPUT and OUTPUT).
const INPUT_NAME = 'image';
const OUTPUT_NAME = 'probabilities';
const DEFAULT_INPUT_SIZE = 224;
// incept refuses wider or taller images (incept_core::MAX_IMAGE_DIMENSION).
const DEFAULT_MAX_DIMENSION = 16384;
// Refused before decoding: a phone's photo is a few MB; far larger files would only exhaust memory.
const MAX_FILE_BYTES = 100 * 1024 * 1024;
// How much of a file is read to find its size in its header (JPEG EXIF blocks can be long).
const HEADER_BYTES = 256 * 1024;
const TOP_SHOWN = 3;
const THUMBNAIL_SIDE = 160;
// As incept decodes: EXIF orientation applied, no colour management (libjpeg-turbo's raw RGB),
// no premultiplication that would change colours under alpha.
const DECODE_OPTIONS = {
  imageOrientation: 'from-image',
  colorSpaceConversion: 'none',
  premultiplyAlpha: 'none',
};
// The smallest module using a SIMD instruction (from wasm-feature-detect): onnxruntime-web's
// WebAssembly needs SIMD (Chrome 91, Firefox 89, Safari 16.4 and later).
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15,
  253, 98, 11,
]);
const EXPORT_AGAIN =
  "the page's folder is incomplete or damaged; export it again with `incept export RUN --web DIR`";
const SERVE_IT =
  'This page must be served, not opened as a file: run e.g. `python3 -m http.server 8000` in its folder ' +
  'and open http://localhost:8000/';
const CURRENT_BROWSER = 'open the page in a current Chrome, Edge, Firefox or Safari';
const MAY_DIFFER = 'the answer may differ slightly from incept’s';
const MB = 1e6;

const data = document.body.dataset;
const $ = (id) => document.getElementById(id);
data.started = '1'; // from here on this script reports errors (index.html did before)

/** An error whose message is complete as it is: shown without a prefix. */
class PageError extends Error {}

let config;
let session;
let answered = 0;
// Photos are classified one at a time, in the order they were chosen.
let queue = Promise.resolve();

// Anything else that goes wrong is shown too, unless a more telling message already is (an
// abort inside onnxruntime-web is also reported here, besides the failure the page explains).
const showUnexpected = (text) => $('message').hidden && showError(text);
window.addEventListener('error', (event) => showUnexpected(event.message || String(event.error)));
window.addEventListener('unhandledrejection', (event) => showUnexpected(messageOf(event.reason)));

start().catch((error) => {
  showError(messageOf(error));
  $('status').textContent = 'The classifier could not be loaded.';
});

async function start() {
  if (typeof WebAssembly !== 'object') {
    throw new PageError(`This browser cannot run WebAssembly, which the classifier needs; ${CURRENT_BROWSER}.`);
  }
  if (!WebAssembly.validate(SIMD_PROBE)) {
    throw new PageError(`This browser’s WebAssembly lacks SIMD, which the classifier needs; ${CURRENT_BROWSER}.`);
  }
  // index.html's message: browsers refuse fetch() (classifier.json, the model) to file: pages.
  if (location.protocol === 'file:') throw new PageError(SERVE_IT);
  if (typeof ort === 'undefined') throw new PageError(`ort/ort.wasm.min.js did not load: ${EXPORT_AGAIN}`);
  config = await loadConfig();
  showConfig();
  if (await replacedByNewExport()) return; // the page reloads itself
  session = await loadSession();
  const readyMs = performance.now();
  for (const input of [$('photo'), $('camera')]) {
    input.disabled = false;
    input.addEventListener('change', () => {
      const files = [...input.files];
      input.value = ''; // choosing the same photo again is a new change
      for (const file of files) queue = queue.then(() => classifyAndShow(file));
    });
  }
  $('status').textContent = 'Ready: choose or take a photo.';
  $('details').textContent += ` Ready ${seconds(readyMs)} after the page opened.`;
  data.ready = '1';
  setUpOffline(); // after the model is loaded, so its download is not competing with the first
}

// ---------------------------------------------------------------- classifier.json

async function loadConfig() {
  const broken = (reason) =>
    new PageError(`${CONFIG_FILE} could not be loaded (${reason}): ${EXPORT_AGAIN}`);
  let response;
  try {
    // Revalidated, so that a new export in the same folder is seen.
    response = await fetch(CONFIG_FILE, { cache: 'no-cache' });
  } catch (error) {
    throw broken(`network error: ${messageOf(error)}`);
  }
  if (!response.ok) throw broken(`HTTP ${response.status} ${response.statusText}`.trim());
  let parsed;
  try {
    parsed = await response.json();
  } catch (error) {
    throw broken(`not valid JSON: ${messageOf(error)}`);
  }
  const problem = configProblem(parsed);
  if (problem) throw broken(problem);
  return {
    run: '',
    temperature: null,
    min_confidence: null,
    input_size: DEFAULT_INPUT_SIZE,
    max_dimension: DEFAULT_MAX_DIMENSION,
    model_bytes: null,
    model_sha256: null,
    validation_accuracy: null,
    int8: false,
    incept_version: '',
    files: [],
    ...parsed,
  };
}

/** What is wrong with a parsed classifier.json, or null. */
function configProblem(c) {
  const isListOfNames = (value) => Array.isArray(value) && value.every((name) => typeof name === 'string');
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'not a JSON object';
  if (c.format !== SUPPORTED_FORMAT) {
    return `format ${JSON.stringify(c.format)}, this page reads format ${SUPPORTED_FORMAT}`;
  }
  if (!isListOfNames(c.classes) || c.classes.length === 0) return '"classes" is not a list of class names';
  if (typeof c.model !== 'string' || c.model === '') return '"model" is not a file name';
  const numbers = ['min_confidence', 'temperature', 'model_bytes', 'validation_accuracy'];
  for (const key of [...numbers, 'input_size', 'max_dimension']) {
    if (c[key] != null && typeof c[key] !== 'number') return `"${key}" is not a number`;
  }
  if (c.files != null && !isListOfNames(c.files)) return '"files" is not a list of file names';
  return null;
}

function showConfig() {
  const c = config;
  document.title = `${c.run || 'incept'}: classifier`;
  $('run').textContent = c.run;
  const about = [`${c.classes.length} classes`];
  if (c.validation_accuracy != null) about.push(`validation accuracy ${percent(c.validation_accuracy)}`);
  // incept writes temperature 1 for a classifier it did not calibrate.
  if (c.temperature === 1) about.push('probabilities not calibrated');
  else if (c.temperature != null) about.push(`probabilities calibrated (temperature ${+c.temperature.toPrecision(3)})`);
  $('about').textContent = about.join(' · ');
  $('classes').replaceChildren(...c.classes.map((name) => element('li', displayName(name))));
  $('threshold').textContent =
    c.min_confidence == null
      ? 'No confidence threshold: the most probable class is always given.'
      : `When the most probable class has less than ${percent(c.min_confidence)}, the answer is “Not sure”.`;
  const details = [`Model ${c.model}`];
  if (c.model_bytes != null) details.push(megabytes(c.model_bytes));
  if (c.int8) details.push('int8');
  if (c.model_sha256) details.push(`SHA-256 ${c.model_sha256.slice(0, 12)}…`);
  if (c.incept_version) details.push(`incept ${c.incept_version}`);
  $('details').textContent = details.join(', ') + '.';
}

// ---------------------------------------------------------------- the model

async function loadSession() {
  const name = config.model;
  const expected = config.model_bytes;
  const broken = (reason) => new PageError(`${name} could not be loaded (${reason}): ${EXPORT_AGAIN}`);
  $('status').textContent = `Loading the classifier…${expected != null ? ` (${megabytes(expected)})` : ''}`;

  let response;
  try {
    response = await fetch(name);
  } catch (error) {
    throw broken(`network error: ${messageOf(error)}`);
  }
  if (!response.ok) throw broken(`HTTP ${response.status} ${response.statusText}`.trim());
  let bytes;
  try {
    bytes = await readWithProgress(response, expected, (loaded) => {
      const of = expected ? ` of ${megabytes(expected)}` : ' MB';
      $('status').textContent = `Loading the classifier… ${(loaded / MB).toFixed(1)}${of}`;
    });
  } catch (error) {
    throw broken(`download failed: ${messageOf(error)}`);
  }
  if (expected != null && bytes.length !== expected) {
    throw broken(`${bytes.length} bytes, ${CONFIG_FILE} says ${expected}`);
  }

  $('status').textContent = 'Preparing the classifier…';
  // Without cross-origin isolation (COOP/COEP headers, which a plain static server does not
  // send) WebAssembly threads are unavailable: ask for one thread rather than get a warning.
  // With it, ort's default (half the cores, at most 4).
  if (!self.crossOriginIsolated) ort.env.wasm.numThreads = 1;
  // Absolute, from the page's address: ort resolves a relative prefix against its own script.
  ort.env.wasm.wasmPaths = new URL('ort/', document.baseURI).href;
  ort.env.logLevel = 'error'; // not its warnings about this machine's CPU in the console

  // Hash and session creation run side by side; both only read the bytes.
  const [digest, created] = await Promise.allSettled([
    sha256Hex(bytes),
    ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }),
  ]);
  const sha = config.model_sha256?.toLowerCase();
  if (digest.status === 'fulfilled' && digest.value && sha && digest.value !== sha) {
    throw broken(`its SHA-256 is ${digest.value.slice(0, 12)}…, ${CONFIG_FILE} says ${sha.slice(0, 12)}…`);
  }
  if (created.status === 'rejected') {
    const reason = messageOf(created.reason);
    // onnxruntime-web's own files failed (ort/*.mjs or *.wasm missing or damaged), not the model.
    if (reason.startsWith('no available backend')) {
      throw new PageError(`onnxruntime-web could not start its WebAssembly (${reason}): ${EXPORT_AGAIN}`);
    }
    throw broken(`not a model onnxruntime-web can run: ${reason}`);
  }
  const loaded = created.value;
  if (!loaded.inputNames.includes(INPUT_NAME) || !loaded.outputNames.includes(OUTPUT_NAME)) {
    const found = `${loaded.inputNames.join(', ')} → ${loaded.outputNames.join(', ')}`;
    throw broken(`its input and output are ${found}, not ${INPUT_NAME} → ${OUTPUT_NAME}`);
  }
  return loaded;
}

/** The response's body as one Uint8Array, calling progress(bytesSoFar) as it arrives. */
async function readWithProgress(response, expectedBytes, progress) {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  let buffer = new Uint8Array(expectedBytes || 1 << 20);
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (length + value.length > buffer.length) {
      const grown = new Uint8Array(Math.max(buffer.length * 2, length + value.length));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(value, length);
    length += value.length;
    progress(length);
  }
  return buffer.subarray(0, length);
}

/** Hex SHA-256, or null without Web Crypto (pages not served over https or from localhost). */
async function sha256Hex(bytes) {
  if (!self.crypto?.subtle) return null;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------- classifying a photo

async function classifyAndShow(file) {
  $('status').textContent = `Classifying ${file.name}…`;
  try {
    const answer = await classify(file);
    answered += 1;
    show(answer);
    delete data.error;
    $('message').hidden = true;
    data.result = JSON.stringify(answer);
    data.classified = String(answered);
  } catch (error) {
    $('answer').hidden = true;
    showError(messageOf(error));
  }
  $('status').textContent = 'Ready: choose or take a photo.';
}

async function classify(file) {
  const started = performance.now();
  const maxDimension = config.max_dimension;
  const tooLarge = (width, height) =>
    new PageError(`${file.name}: ${width}×${height} pixels, more than the ${maxDimension} incept reads; make it smaller`);
  if (file.size > MAX_FILE_BYTES) {
    const limit = `the ${MAX_FILE_BYTES / MB} MB this page reads`;
    throw new PageError(`${file.name}: ${megabytes(file.size)}, more than ${limit}; make it smaller`);
  }
  // The size in the header, where it can be read, refuses a huge image before it is decoded.
  const header = readHeader(new Uint8Array(await file.slice(0, HEADER_BYTES).arrayBuffer()));
  if (header && (header.width > maxDimension || header.height > maxDimension)) {
    throw tooLarge(header.width, header.height);
  }
  const notes = [];
  if (header?.sixteenBit) notes.push(`a 16-bit PNG, which this browser reduces to 8 bits its own way: ${MAY_DIFFER}`);

  let bitmap;
  try {
    bitmap = await createImageBitmap(file, DECODE_OPTIONS);
  } catch (error) {
    throw new PageError(`${file.name}: not an image this browser can decode (${messageOf(error)})`);
  }
  let width, height, rgba;
  try {
    ({ width, height } = bitmap);
    if (width > maxDimension || height > maxDimension) throw tooLarge(width, height);
    let exact;
    ({ rgba, exact } = pixelsOf(bitmap));
    if (!exact) notes.push(`transparent pixels, whose colours this browser could not read exactly: ${MAY_DIFFER}`);
    drawThumbnail(bitmap);
  } finally {
    bitmap.close();
  }
  const side = config.input_size;
  const rgb = resizeBilinear(rgba, width, height, side, side, 4);
  rgba = null; // the full-size pixels can go before inference

  const inferenceStart = performance.now();
  const outputs = await session.run({ [INPUT_NAME]: new ort.Tensor('uint8', rgb, [1, side, side, 3]) });
  const milliseconds = performance.now() - inferenceStart;
  const probabilities = Array.from(outputs[OUTPUT_NAME].data, Number);
  if (probabilities.length !== config.classes.length) {
    const counts = `${probabilities.length} probabilities for the ${config.classes.length} classes of ${CONFIG_FILE}`;
    throw new PageError(`${config.model} gives ${counts}: ${EXPORT_AGAIN}`);
  }
  const top = probabilities
    .map((probability, index) => ({ class: config.classes[index], probability }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, TOP_SHOWN);
  const uncertain = config.min_confidence != null && top[0].probability < config.min_confidence;
  return {
    file: file.name,
    probabilities,
    top,
    uncertain,
    milliseconds: round1(milliseconds),
    preprocess_milliseconds: round1(inferenceStart - started),
    width,
    height,
    notes,
  };
}

/**
 * The bitmap's pixels as RGBA bytes at its natural size: {rgba, exact}. exact is false where
 * transparent pixels' colours may have been changed.
 *
 * A 2D canvas is exact for opaque pixels. It stores colours premultiplied by alpha, which
 * rounds those of half-transparent pixels and blackens fully transparent ones, where incept
 * keeps the colour and drops alpha; so images with transparency are read again through WebGL,
 * which can keep them unpremultiplied.
 */
function pixelsOf(bitmap) {
  const { width, height } = bitmap;
  const canvas = newCanvas(width, height);
  // willReadFrequently keeps the canvas in memory, where pixels are read back as drawn.
  const context = canvas.getContext('2d', { willReadFrequently: true });
  if (!context) {
    throw new PageError(`a ${width}×${height} canvas is more than this browser can draw; make the photo smaller`);
  }
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, width, height).data;
  canvas.width = canvas.height = 0; // frees the canvas's memory now, not at garbage collection
  if (isOpaque(rgba)) return { rgba, exact: true };
  const unpremultiplied = pixelsThroughWebGL(bitmap);
  return unpremultiplied ? { rgba: unpremultiplied, exact: true } : { rgba, exact: false };
}

function newCanvas(width, height) {
  if (typeof OffscreenCanvas === 'function') return new OffscreenCanvas(width, height);
  return Object.assign(document.createElement('canvas'), { width, height });
}

function isOpaque(rgba) {
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) return false;
  return true;
}

/** The bitmap's RGBA as uploaded to a WebGL texture without premultiplication, or null. */
function pixelsThroughWebGL(bitmap) {
  const { width, height } = bitmap;
  const gl = newCanvas(1, 1).getContext('webgl', { premultipliedAlpha: false });
  if (!gl || Math.max(width, height) > gl.getParameter(gl.MAX_TEXTURE_SIZE)) return null;
  try {
    const texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.pixelStorei(gl.UNPACK_COLORSPACE_CONVERSION_WEBGL, gl.NONE);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, bitmap);
    gl.bindFramebuffer(gl.FRAMEBUFFER, gl.createFramebuffer());
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
    if (gl.checkFramebufferStatus(gl.FRAMEBUFFER) !== gl.FRAMEBUFFER_COMPLETE) return null;
    // Texture row 0 is the image's top row, and readPixels starts at row 0: no flip needed.
    const rgba = new Uint8Array(width * height * 4);
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
    return gl.getError() === gl.NO_ERROR ? rgba : null;
  } finally {
    gl.getExtension('WEBGL_lose_context')?.loseContext(); // browsers allow only a few contexts
  }
}

function drawThumbnail(bitmap) {
  const canvas = $('thumbnail');
  const ratio = window.devicePixelRatio || 1;
  const scale = Math.min(1, THUMBNAIL_SIDE / Math.max(bitmap.width, bitmap.height));
  canvas.style.width = `${Math.round(bitmap.width * scale)}px`;
  canvas.style.height = `${Math.round(bitmap.height * scale)}px`;
  canvas.width = Math.max(1, Math.round(bitmap.width * scale * ratio));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale * ratio));
  const context = canvas.getContext('2d');
  context.imageSmoothingQuality = 'high';
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
}

/**
 * From a PNG, GIF or JPEG header: {width, height, sixteenBit} (sizes before EXIF orientation);
 * null for other formats, whose size is checked once decoded.
 */
function readHeader(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ascii = (start, end) => String.fromCharCode(...bytes.subarray(start, end));
  if (bytes.length >= 25 && bytes[0] === 0x89 && ascii(1, 4) === 'PNG' && ascii(12, 16) === 'IHDR') {
    return { width: view.getUint32(16), height: view.getUint32(20), sixteenBit: bytes[24] === 16 };
  }
  if (bytes.length >= 10 && ascii(0, 4) === 'GIF8') {
    return { width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    // Walk the JPEG's segments to its start-of-frame marker (SOF0–SOF15 but DHT, JPG, DAC).
    let offset = 2;
    while (offset + 9 < bytes.length) {
      if (bytes[offset] !== 0xff) return null;
      const marker = bytes[offset + 1];
      if (marker === 0xff) {
        offset += 1; // fill byte
      } else if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
        return { width: view.getUint16(offset + 7), height: view.getUint16(offset + 5) };
      } else if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) {
        offset += 2; // a marker without a length
      } else {
        offset += 2 + view.getUint16(offset + 2);
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------- showing the answer

function show(answer) {
  const verdict = $('verdict');
  verdict.textContent = answer.uncertain ? 'Not sure' : displayName(answer.top[0].class);
  verdict.classList.toggle('unsure', answer.uncertain);
  if (answer.uncertain) {
    verdict.append(element('span', ` (top class below ${percent(config.min_confidence)})`, 'small'));
  }
  $('top').replaceChildren(
    ...answer.top.map(({ class: name, probability }) => {
      const item = element('li', '');
      item.append(element('span', displayName(name), 'name'), ` ${percent(probability)}`);
      const bar = element('div', '', 'bar');
      bar.style.width = `${(probability * 100).toFixed(1)}%`;
      item.append(bar);
      return item;
    }),
  );
  const timing = [
    `${answer.file}, ${answer.width}×${answer.height}`,
    `inference ${answer.milliseconds.toFixed(0)} ms, preprocessing ${answer.preprocess_milliseconds.toFixed(0)} ms`,
  ];
  if (answered === 1) timing.push(`first answer ${seconds(performance.now())} after the page opened`);
  $('timing').textContent = timing.join('; ') + '.';
  $('notes').replaceChildren(...answer.notes.map((note) => element('li', `${answer.file}: ${note}.`)));
  $('answer').hidden = false;
}

function showError(text) {
  const message = $('message');
  message.textContent = text;
  message.hidden = false;
  data.error = text;
  data.errors = String(Number(data.errors || 0) + 1);
}

// ---------------------------------------------------------------- offline use

/** The model a service worker serves, from the query of its script's address. */
function modelOf(worker) {
  return worker ? new URL(worker.scriptURL).searchParams.get('model') : null;
}

function offlinePossible() {
  const listed = Boolean(config.model_sha256) && config.files.length > 0;
  return 'serviceWorker' in navigator && self.isSecureContext && listed;
}

/**
 * Registers the service worker for this export and waits until it controls the page: resolves
 * true then, false if it fails to install (its precache failed and it became redundant).
 */
async function workerInControl() {
  const sha = config.model_sha256;
  const ours = () => modelOf(navigator.serviceWorker.controller) === sha;
  const controlled = new Promise((resolve) => {
    if (ours()) resolve(true);
    navigator.serviceWorker.addEventListener('controllerchange', () => ours() && resolve(true));
  });
  const registration = await navigator.serviceWorker.register(`${SERVICE_WORKER}?model=${sha}`);
  const failed = new Promise((resolve) => {
    const watch = (worker) =>
      worker?.addEventListener('statechange', () => worker.state === 'redundant' && !ours() && resolve(false));
    watch(registration.installing);
    registration.addEventListener('updatefound', () => watch(registration.installing));
  });
  return Promise.race([controlled, failed]);
}

/**
 * True when an older export's service worker served this page while the folder now holds a new
 * export: the new worker is installed, and the page reloads under it (once, so a failure cannot
 * loop) rather than mixing the old files with the new classifier.json.
 */
async function replacedByNewExport() {
  if (!offlinePossible()) return false;
  const served = modelOf(navigator.serviceWorker.controller);
  if (!served || served === config.model_sha256) return false;
  const key = 'incept-reloaded-for';
  if (sessionStorage.getItem(key) === config.model_sha256) return false;
  sessionStorage.setItem(key, config.model_sha256);
  $('status').textContent = 'A new export of this classifier was found: updating the offline copy…';
  if (!(await workerInControl().catch(() => false))) return false; // go on with what is served
  location.reload();
  return true;
}

async function setUpOffline() {
  const note = $('offline');
  if (!('serviceWorker' in navigator) || !self.isSecureContext) {
    note.textContent =
      'Offline use needs the page served over https or from localhost; here it relies on the browser’s ordinary cache.';
    return;
  }
  if (!offlinePossible()) {
    note.textContent = `Offline use is unavailable: ${CONFIG_FILE} lists no files or no model_sha256.`;
    return;
  }
  note.textContent = 'Saving the page for offline use…';
  try {
    if (await workerInControl()) {
      note.textContent = 'Ready offline: this page and its classifier are saved in this browser.';
      data.offline = '1';
    } else {
      note.textContent = 'Offline use is unavailable: the files could not be saved (storage full, or a file missing).';
    }
  } catch (error) {
    note.textContent = `Offline use is unavailable: ${messageOf(error)}.`;
  }
}

// ---------------------------------------------------------------- small helpers

function messageOf(error) {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

/** Class names are folder names: underscores read better as spaces. */
function displayName(name) {
  return name.replaceAll('_', ' ');
}

function percent(fraction) {
  const value = fraction * 100;
  return value > 0 && value < 0.1 ? '< 0.1 %' : `${value.toFixed(1)} %`;
}

function megabytes(bytes) {
  return `${(bytes / MB).toFixed(1)} MB`;
}

function seconds(milliseconds) {
  return `${(milliseconds / 1000).toFixed(1)} s`;
}

function round1(value) {
  return Math.round(value * 10) / 10;
}
