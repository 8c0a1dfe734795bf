// The page `incept export --web DIR` writes: classifies photos in the browser with
// classifier.onnx (onnxruntime-web, WebAssembly), preprocessing them exactly as incept does.
// This module is the page itself: what it shows, its answers and errors, and offline use;
// classifier.js loads and runs the classifier, photo.js reads a photo as incept does.
//
// For scripts/test-web.mjs the page reports on <body data-…>: ready, result (JSON of the last
// answer), classified (answers so far), error (the last error's message), errors (their count),
// offline ("1" once a service worker for this export controls the page).

import { CONFIG_FILE, checkBrowser, loadConfig, loadSession, runClassifier } from './classifier.js';
import { megabytes, messageOf } from './messages.js';
import { readPhoto } from './photo.js';

const SERVICE_WORKER = 'sw.js';
const TOP_SHOWN = 3;
const THUMBNAIL_SIDE = 160;

const data = document.body.dataset;
const $ = (id) => document.getElementById(id);
data.started = '1'; // from here on this script reports errors (index.html did before)

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
  checkBrowser();
  config = await loadConfig();
  showConfig();
  if (await replacedByNewExport()) return; // the page reloads itself
  session = await loadSession(config, (text) => ($('status').textContent = text));
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

// ---------------------------------------------------------------- what classifier.json says

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
  if (c.int8) details.push('int8 backbone');
  const check = c.int8_check;
  if (c.int8 && check) {
    // What int8 changed, measured by `incept export --int8` on the run's validation photos.
    about.push(
      `int8 backbone: ${megabytes(c.model_bytes)} instead of ${megabytes(check.float_model_bytes)}; ` +
        `${percent(check.int8_accuracy)} right on ` +
        (check.trained_on ? `the ${check.photos} photos it trained on ` : `the run's ${check.photos} validation photos `) +
        `(${percent(check.float_accuracy)} with the float backbone)`,
    );
    $('about').textContent = about.join(' · ');
  }
  if (c.model_sha256) details.push(`SHA-256 ${c.model_sha256.slice(0, 12)}…`);
  if (c.incept_version) details.push(`incept ${c.incept_version}`);
  $('details').textContent = details.join(', ') + '.';
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
  const { rgb, width, height, notes } = await readPhoto(file, {
    side: config.input_size,
    maxDimension: config.max_dimension,
    onDecoded: drawThumbnail,
  });
  const inferenceStart = performance.now();
  const probabilities = await runClassifier(session, config, rgb);
  const milliseconds = performance.now() - inferenceStart;
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

function seconds(milliseconds) {
  return `${(milliseconds / 1000).toFixed(1)} s`;
}

function round1(value) {
  return Math.round(value * 10) / 10;
}
