#!/usr/bin/env node
// Checks the page's resize (crates/incept-export/web/resize.js) against PIL byte for byte on
// every tests/fixtures/pil_resize/NAME_in.png → NAME_out.png pair (models/make_resize_fixture.py).
//
//   node scripts/test-resize.mjs [--resize-js FILE] [--fixtures DIR]
//
// No dependencies: the fixtures are 8-bit RGB PNGs, read by the small decoder below.
// scripts/test-web.mjs runs the same check on an exported page's resize.js.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_RESIZE_JS = join(REPO, 'crates/incept-export/web/resize.js');
export const DEFAULT_FIXTURES = join(REPO, 'tests/fixtures/pil_resize');

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COLOUR_TYPE_RGB = 2;

/** Decodes a non-interlaced 8-bit RGB PNG: {width, height, rgb}. Refuses anything else. */
export function decodePng(bytes) {
  if (!bytes.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error('not a PNG');
  let offset = 8;
  let header;
  const data = [];
  while (offset < bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const body = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      header = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        depth: body[8],
        colourType: body[9],
        interlace: body[12],
      };
    } else if (type === 'IDAT') {
      data.push(body);
    } else if (type === 'IEND') {
      break;
    }
    offset += 12 + length; // length, type, body, CRC
  }
  if (!header) throw new Error('PNG without IHDR');
  const { width, height, depth, colourType, interlace } = header;
  if (depth !== 8 || colourType !== COLOUR_TYPE_RGB || interlace !== 0) {
    const found = `depth ${depth}, colour type ${colourType}, interlace ${interlace}`;
    throw new Error(`only 8-bit RGB non-interlaced PNGs are read (${found})`);
  }
  const raw = inflateSync(Buffer.concat(data));
  const bpp = 3;
  const rowBytes = width * bpp;
  const rgb = new Uint8Array(height * rowBytes);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (rowBytes + 1)];
    const line = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    const out = y * rowBytes;
    for (let i = 0; i < rowBytes; i++) {
      const left = i >= bpp ? rgb[out + i - bpp] : 0;
      const up = y > 0 ? rgb[out - rowBytes + i] : 0;
      const upLeft = y > 0 && i >= bpp ? rgb[out - rowBytes + i - bpp] : 0;
      let predictor;
      switch (filter) {
        case 0: predictor = 0; break;
        case 1: predictor = left; break;
        case 2: predictor = up; break;
        case 3: predictor = (left + up) >> 1; break;
        case 4: predictor = paeth(left, up, upLeft); break;
        default: throw new Error(`PNG filter type ${filter} on row ${y}`);
      }
      rgb[out + i] = (line[i] + predictor) & 0xff;
    }
  }
  return { width, height, rgb };
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Imports an ES module file whatever package.json says about .js files around it. */
export async function importModuleFile(path) {
  const source = readFileSync(path, 'utf8');
  return import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);
}

/**
 * Resizes every fixture input with `resizeJs`'s resizeBilinear (from RGB and from RGBA, the
 * page's path) and compares with PIL's output.
 * @returns {{name: string, ok: boolean, detail: string}[]}
 */
export async function checkResizeFixtures(resizeJs = DEFAULT_RESIZE_JS, fixtures = DEFAULT_FIXTURES) {
  const { resizeBilinear } = await importModuleFile(resizeJs);
  const names = readdirSync(fixtures)
    .filter((file) => file.endsWith('_in.png'))
    .map((file) => file.slice(0, -'_in.png'.length))
    .sort();
  if (names.length === 0) throw new Error(`${fixtures}: no NAME_in.png fixtures`);
  const results = [];
  for (const name of names) {
    const input = decodePng(readFileSync(join(fixtures, `${name}_in.png`)));
    const expected = decodePng(readFileSync(join(fixtures, `${name}_out.png`)));
    const { width, height } = expected;
    const fromRgb = resizeBilinear(input.rgb, input.width, input.height, width, height);
    // The page reads a canvas's RGBA; give it an alpha of 7 to show alpha is ignored.
    const rgba = new Uint8ClampedArray(input.width * input.height * 4).fill(7);
    for (let p = 0; p < input.width * input.height; p++) {
      rgba.set(input.rgb.subarray(p * 3, p * 3 + 3), p * 4);
    }
    const fromRgba = resizeBilinear(rgba, input.width, input.height, width, height, 4);
    const problems = [];
    for (const [label, got] of [['RGB', fromRgb], ['RGBA', fromRgba]]) {
      let differing = 0;
      let first = -1;
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== expected.rgb[i]) {
          differing++;
          if (first < 0) first = i;
        }
      }
      if (got.length !== expected.rgb.length) {
        problems.push(`${label}: ${got.length} bytes, PIL ${expected.rgb.length}`);
      } else if (differing > 0) {
        const pixel = Math.floor(first / 3);
        problems.push(
          `${label}: ${differing} bytes differ, first at x=${pixel % width} y=${Math.floor(pixel / width)} ` +
            `channel ${first % 3} (${got[first]} vs PIL ${expected.rgb[first]})`,
        );
      }
    }
    results.push({
      name,
      ok: problems.length === 0,
      detail:
        `${input.width}x${input.height} -> ${width}x${height}` +
        (problems.length ? `: ${problems.join('; ')}` : ', identical to PIL'),
    });
  }
  return results;
}

async function main() {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const index = args.indexOf(name);
    return index >= 0 ? args[index + 1] : fallback;
  };
  const results = await checkResizeFixtures(
    resolve(option('--resize-js', DEFAULT_RESIZE_JS)),
    resolve(option('--fixtures', DEFAULT_FIXTURES)),
  );
  for (const { name, ok, detail } of results) {
    console.log(`${ok ? 'PASS' : 'FAIL'} resize ${name}: ${detail}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  console.log(
    failed
      ? `FAIL test-resize: ${failed} of ${results.length} fixtures differ from PIL`
      : `PASS test-resize: all ${results.length} fixtures identical to PIL`,
  );
  process.exit(failed ? 1 : 0);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) await main();
