// The page's classifier: classifier.json read and checked; the model downloaded, checked against
// its size and SHA-256 and opened with onnxruntime-web (the global `ort` that
// ort/ort.wasm.min.js defines, WebAssembly only); and run on a preprocessed photo.

import { EXPORT_AGAIN, MB, PageError, megabytes, messageOf } from './messages.js';

export const CONFIG_FILE = 'classifier.json';
const SUPPORTED_FORMAT = 1;
// The graph's input and output names (incept-export's IMAGE_INPUT and OUTPUT).
const INPUT_NAME = 'image';
const OUTPUT_NAME = 'probabilities';
const DEFAULT_INPUT_SIZE = 224;
// incept refuses wider or taller images (incept_core::MAX_IMAGE_DIMENSION).
const DEFAULT_MAX_DIMENSION = 16384;
// The smallest module using a SIMD instruction (from wasm-feature-detect): onnxruntime-web's
// WebAssembly needs SIMD (Chrome 91, Firefox 89, Safari 16.4 and later).
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15,
  253, 98, 11,
]);
const SERVE_IT =
  'This page must be served, not opened as a file: run e.g. `python3 -m http.server 8000` in its folder ' +
  'and open http://localhost:8000/';
const CURRENT_BROWSER = 'open the page in a current Chrome, Edge, Firefox or Safari';

/** Throws a PageError when this browser, or the way the page was opened, cannot run the classifier. */
export function checkBrowser() {
  if (typeof WebAssembly !== 'object') {
    throw new PageError(`This browser cannot run WebAssembly, which the classifier needs; ${CURRENT_BROWSER}.`);
  }
  if (!WebAssembly.validate(SIMD_PROBE)) {
    throw new PageError(`This browser’s WebAssembly lacks SIMD, which the classifier needs; ${CURRENT_BROWSER}.`);
  }
  // index.html's message: browsers refuse fetch() (classifier.json, the model) to file: pages.
  if (location.protocol === 'file:') throw new PageError(SERVE_IT);
  if (typeof ort === 'undefined') throw new PageError(`ort/ort.wasm.min.js did not load: ${EXPORT_AGAIN}`);
}

// ---------------------------------------------------------------- classifier.json

/** classifier.json, checked, with defaults for what it leaves out. */
export async function loadConfig() {
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

// ---------------------------------------------------------------- the model

/** The onnxruntime-web session of config's model; showStatus(text) tells how the loading goes. */
export async function loadSession(config, showStatus) {
  const name = config.model;
  const expected = config.model_bytes;
  const broken = (reason) => new PageError(`${name} could not be loaded (${reason}): ${EXPORT_AGAIN}`);
  showStatus(`Loading the classifier…${expected != null ? ` (${megabytes(expected)})` : ''}`);

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
      showStatus(`Loading the classifier… ${(loaded / MB).toFixed(1)}${of}`);
    });
  } catch (error) {
    throw broken(`download failed: ${messageOf(error)}`);
  }
  if (expected != null && bytes.length !== expected) {
    throw broken(`${bytes.length} bytes, ${CONFIG_FILE} says ${expected}`);
  }

  showStatus('Preparing the classifier…');
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

// ---------------------------------------------------------------- running it

/** The class probabilities for `rgb`, a photo resized to config.input_size square (RGB bytes). */
export async function runClassifier(session, config, rgb) {
  const side = config.input_size;
  const outputs = await session.run({ [INPUT_NAME]: new ort.Tensor('uint8', rgb, [1, side, side, 3]) });
  const probabilities = Array.from(outputs[OUTPUT_NAME].data, Number);
  if (probabilities.length !== config.classes.length) {
    const counts = `${probabilities.length} probabilities for the ${config.classes.length} classes of ${CONFIG_FILE}`;
    throw new PageError(`${config.model} gives ${counts}: ${EXPORT_AGAIN}`);
  }
  return probabilities;
}
