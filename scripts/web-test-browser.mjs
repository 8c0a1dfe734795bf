// Driving the page for scripts/test-web.mjs: the system's Chromium (CHROMIUM=path to use
// another) through puppeteer-core from web/node_modules, and what the page reports on
// <body data-…> (see the page's app.js).

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// A phone's viewport, for the screenshot and so that the page is tested as phones show it.
const VIEWPORT = { width: 412, height: 900, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const LOAD_TIMEOUT_MS = 180_000; // a 70 MB model, compiled and parsed on a slow machine
const ANSWER_TIMEOUT_MS = 60_000;

export function loadPuppeteer() {
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

/** A browser with the new, empty profile `profileDir`: no service worker or cache from another check. */
export async function launch(puppeteer, profileDir) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found; set CHROMIUM to a Chromium or Chrome`);
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profileDir,
    // As root, Chromium runs only without its sandbox.
    args: ['--no-sandbox', '--no-first-run', '--no-default-browser-check'],
  });
}

export async function openPage(browser) {
  const page = await browser.newPage();
  await page.setViewport(VIEWPORT);
  page.consoleErrors = [];
  page.on('console', (message) => message.type() === 'error' && page.consoleErrors.push(message.text()));
  page.on('pageerror', (error) => page.consoleErrors.push(String(error)));
  return page;
}

/** Waits until the page is ready or shows an error: {ready, error, milliseconds}. */
export async function waitReadyOrError(page) {
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
export async function choose(page, file) {
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
export function visibleMessage(page) {
  return page.evaluate(() => {
    const message = document.getElementById('message');
    if (!message?.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return null;
    const box = message.getBoundingClientRect();
    return box.width > 0 && box.height > 0 ? message.textContent : null;
  });
}

export function showConsoleErrors(page) {
  if (page.consoleErrors.length) {
    console.log(`  console errors on the page: ${page.consoleErrors.slice(0, 5).join(' | ')}`);
  }
}
