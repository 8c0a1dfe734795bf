#!/usr/bin/env node
// The real-browser test of a page written by `incept export RUN --web DIR`.
//
//   node scripts/test-web.mjs --page DIR --expected EXPECTED.jsonl --photos PHOTO_DIR
//                             [--screenshot FILE] [--fixtures DIR]
//   node scripts/test-web.mjs --resize-only [--page DIR] [--fixtures DIR]
//
// EXPECTED.jsonl is `incept predict RUN PHOTO_DIR --top-k <number of classes> --format json`;
// photos are matched to its lines by file name. The page is served by a static server
// (web-test-server.mjs) and opened in the system's Chromium through puppeteer-core
// (web-test-browser.mjs); web-test-inputs.mjs makes the inputs it must refuse and the damaged
// exports it must explain. Before that, the page's resize.js is checked against PIL's resizes
// in tests/fixtures/pil_resize (--fixtures).
//
// Prints one PASS/FAIL line per check and a summary line; exits 1 on any failure, 2 on wrong
// usage.

import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve, sep } from 'node:path';

import { checkResizeFixtures, DEFAULT_FIXTURES, DEFAULT_RESIZE_JS } from './test-resize.mjs';
import {
  choose,
  launch,
  LOAD_TIMEOUT_MS,
  loadPuppeteer,
  openPage,
  showConsoleErrors,
  visibleMessage,
  waitReadyOrError,
} from './web-test-browser.mjs';
import { damagedExports, readExpected, writeBadInputs } from './web-test-inputs.mjs';
import { serve } from './web-test-server.mjs';

// Probabilities must agree with incept predict's within this (float32 inference in both).
const TOLERANCE = 1e-3;
const MIN_PHOTOS = 20;
const DEFAULT_MAX_DIMENSION = 16384; // as the page assumes when classifier.json has none
const TOP_SHOWN = 3;

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

// ---------------------------------------------------------------- files

// Browser profiles and bad inputs, removed by finish().
const temporaryDirs = [];
function temporaryDir(label) {
  const dir = mkdtempSync(join(tmpdir(), `incept-test-web-${label}-`));
  temporaryDirs.push(dir);
  return dir;
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
  for (const broken of damagedExports(dir, config)) {
    const kind = broken.withoutWebAssembly ? 'unusable browser' : 'damaged export';
    await check(`${kind}: ${broken.label}`, async () => {
      const server = await serve(dir, broken);
      const browser = await launch(puppeteer, temporaryDir('profile-damaged'));
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
  const browser = await launch(puppeteer, temporaryDir('profile-main'));
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
    for (const bad of writeBadInputs(temporaryDir('inputs'), config)) {
      await checkBadInput(page, bad.label, bad.file, bad.mention);
    }
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
