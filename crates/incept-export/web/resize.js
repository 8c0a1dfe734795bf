// PIL-exact antialiased BILINEAR resize, a line-by-line port of incept's
// crates/incept-extract/src/image_io/resize.rs (itself PIL's precompute_coeffs,
// normalize_coeffs_8bpc and the two 8-bit passes). The page must feed the
// network the very bytes incept feeds it, so every rounding step is kept:
// float weights in float64, then 22-bit fixed point, integer sums, clip8.
//
// Plain ES module without imports: the page imports it, and the tests import
// it in Node.

// Fixed-point precision of PIL's 8-bit resampling (32 - 8 - 2).
export const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;
// Sums start at one half so that `>> PRECISION_BITS` rounds to nearest.
const ROUNDING = 2 ** (PRECISION_BITS - 1);
// A sum at or above this is 256.0 or more: clipped to 255.
const OVERFLOW = ONE * 256;

// Rust's `as i64` / `as i32` from f64: truncation toward zero.
const truncate = Math.trunc;

/**
 * Per output index: the first input index and the fixed-point weights.
 * @returns {{min: number, weights: Int32Array}[]}
 */
export function resampleCoefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = filterScale; // bilinear support 1.0, widened when downscaling
  // PIL multiplies by the reciprocal rather than dividing: same float weights.
  const inverseScale = 1.0 / filterScale;
  const coefficients = [];
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const min = Math.max(truncate(center - support + 0.5), 0);
    const max = Math.min(truncate(center + support + 0.5), inSize);
    const weights = [];
    for (let x = min; x < max; x++) {
      const distance = Math.abs((x - center + 0.5) * inverseScale);
      weights.push(distance < 1.0 ? 1.0 - distance : 0.0);
    }
    // Summed left to right, as Rust's iter().sum(): the same float total.
    let total = 0.0;
    for (const w of weights) total += w;
    const fixed = new Int32Array(weights.length);
    weights.forEach((w, i) => {
      const normalized = total === 0.0 ? w : w / total;
      const scaled = normalized * ONE;
      fixed[i] = truncate(scaled < 0.0 ? scaled - 0.5 : scaled + 0.5);
    });
    coefficients.push({ min, weights: fixed });
  }
  return coefficients;
}

function clip8(value) {
  if (value >= OVERFLOW) return 255;
  if (value <= 0) return 0;
  return value >> PRECISION_BITS; // value < 2^30: a safe int32 shift
}

/**
 * Resizes an 8-bit image to outWidth × outHeight RGB (3 bytes a pixel, rows top to bottom).
 *
 * `pixels` holds inWidth × inHeight pixels of `stride` bytes whose first three are R, G, B:
 * stride 3 for RGB8, 4 to read a canvas's RGBA directly (its alpha ignored, as incept's
 * conversion to RGB8 drops alpha) without copying it to RGB first.
 *
 * Sums stay below 2^31 (weights sum to 2^22, pixels are at most 255), so plain JS numbers
 * hold them exactly, as Rust's i32 does.
 * @returns {Uint8Array} outHeight × outWidth × 3 bytes
 */
export function resizeBilinear(pixels, inWidth, inHeight, outWidth, outHeight, stride = 3) {
  const horizontal = resampleCoefficients(inWidth, outWidth);
  const vertical = resampleCoefficients(inHeight, outHeight);

  // Horizontal pass: [inHeight, outWidth, 3], rounded to 8 bits as PIL does in between.
  const rowStride = outWidth * 3;
  const temporary = new Uint8Array(inHeight * rowStride);
  for (let y = 0; y < inHeight; y++) {
    const row = y * inWidth * stride;
    for (let x = 0; x < outWidth; x++) {
      const { min, weights } = horizontal[x];
      // The three channels in one loop (the large image is read once); integer sums are
      // exact, so this gives the same bytes as one channel at a time.
      let red = ROUNDING;
      let green = ROUNDING;
      let blue = ROUNDING;
      for (let i = 0, p = row + min * stride; i < weights.length; i++, p += stride) {
        const weight = weights[i];
        red += pixels[p] * weight;
        green += pixels[p + 1] * weight;
        blue += pixels[p + 2] * weight;
      }
      const out = y * rowStride + x * 3;
      temporary[out] = clip8(red);
      temporary[out + 1] = clip8(green);
      temporary[out + 2] = clip8(blue);
    }
  }

  // Vertical pass: [outHeight, outWidth, 3].
  const out = new Uint8Array(outHeight * rowStride);
  for (let y = 0; y < outHeight; y++) {
    const { min, weights } = vertical[y];
    for (let index = 0; index < rowStride; index++) {
      let sum = ROUNDING;
      for (let i = 0; i < weights.length; i++) {
        sum += temporary[(min + i) * rowStride + index] * weights[i];
      }
      out[y * rowStride + index] = clip8(sum);
    }
  }
  return out;
}
