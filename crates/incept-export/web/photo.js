// A chosen photo as incept reads it: size limits checked (from the file's header before
// decoding, where it can be read), decoded with EXIF orientation and no colour management, its
// pixels read back exactly, and resized with resize.js to the classifier's input.

import { resizeBilinear } from './resize.js';
import { MB, PageError, megabytes, messageOf } from './messages.js';

// Refused before decoding: a phone's photo is a few MB; far larger files would only exhaust memory.
const MAX_FILE_BYTES = 100 * 1024 * 1024;
// How much of a file is read to find its size in its header (JPEG EXIF blocks can be long).
const HEADER_BYTES = 256 * 1024;
// As incept decodes: EXIF orientation applied, no colour management (libjpeg-turbo's raw RGB),
// no premultiplication that would change colours under alpha.
const DECODE_OPTIONS = {
  imageOrientation: 'from-image',
  colorSpaceConversion: 'none',
  premultiplyAlpha: 'none',
};
const MAY_DIFFER = 'the answer may differ slightly from incept’s';

/**
 * `file` resized to `side` × `side`: {rgb, width, height, notes}, where width × height is its
 * decoded size and notes say where the answer may differ from incept's. Refuses images wider or
 * taller than `maxDimension`. `onDecoded(bitmap)` is called before the bitmap is closed.
 */
export async function readPhoto(file, { side, maxDimension, onDecoded }) {
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
    onDecoded(bitmap);
  } finally {
    bitmap.close();
  }
  const rgb = resizeBilinear(rgba, width, height, side, side, 4);
  return { rgb, width, height, notes };
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
