//! PIL-exact antialiased bilinear resizing to the network's input size.

use image::RgbImage;

use super::INPUT_SIZE;

/// Resizes to [`INPUT_SIZE`]² exactly as PIL's `Image.resize(size, Image.BILINEAR)`: a triangle
/// filter whose support widens when downscaling (antialiased), separable (horizontal pass
/// first, rounded to 8 bits in between), in PIL's 22-bit fixed point.
pub fn resize_for_network(image: &RgbImage) -> RgbImage {
    resize_bilinear(image, INPUT_SIZE, INPUT_SIZE)
}

/// Fixed-point precision of PIL's 8-bit resampling (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Per output pixel: first input index and the fixed-point weights (PIL's `precompute_coeffs`
/// for the bilinear filter, `normalize_coeffs_8bpc`).
fn resample_coefficients(in_size: u32, out_size: u32) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // bilinear support 1.0, widened when downscaling
    // PIL multiplies by the reciprocal rather than dividing by `filter_scale`; so does this, so
    // the float weights are PIL's bit for bit (for 224 outputs the rounded weights agree either
    // way, checked for every input size below 2000).
    let inverse_scale = 1.0 / filter_scale;
    (0..out_size)
        .map(|out| {
            let center = (f64::from(out) + 0.5) * scale;
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize;
            let weights: Vec<f64> = (min..max)
                .map(|x| {
                    let distance = ((x as f64 - center + 0.5) * inverse_scale).abs();
                    if distance < 1.0 { 1.0 - distance } else { 0.0 }
                })
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let w = if total == 0.0 { *w } else { w / total };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    (if scaled < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
                })
                .collect();
            (min, fixed)
        })
        .collect()
}

fn clip8(value: i32) -> u8 {
    if value >= (1 << PRECISION_BITS) << 8 {
        255
    } else if value <= 0 {
        0
    } else {
        (value >> PRECISION_BITS) as u8
    }
}

/// PIL-exact bilinear resize of an RGB8 image.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_width, in_height) = image.dimensions();
    let horizontal = resample_coefficients(in_width, width);
    let vertical = resample_coefficients(in_height, height);
    let rounding = 1i32 << (PRECISION_BITS - 1);
    let source = image.as_raw();
    // Horizontal pass: [in_height, width, 3]
    let mut temporary = vec![0u8; in_height as usize * width as usize * 3];
    for y in 0..in_height as usize {
        let row = &source[y * in_width as usize * 3..];
        for (x, (min, weights)) in horizontal.iter().enumerate() {
            for channel in 0..3 {
                let sum = weights.iter().enumerate().fold(rounding, |acc, (i, w)| {
                    acc + i32::from(row[(min + i) * 3 + channel]) * w
                });
                temporary[(y * width as usize + x) * 3 + channel] = clip8(sum);
            }
        }
    }
    // Vertical pass: [height, width, 3]
    let mut out = vec![0u8; height as usize * width as usize * 3];
    let stride = width as usize * 3;
    for (y, (min, weights)) in vertical.iter().enumerate() {
        for index in 0..stride {
            let sum = weights.iter().enumerate().fold(rounding, |acc, (i, w)| {
                acc + i32::from(temporary[(min + i) * stride + index]) * w
            });
            out[y * stride + index] = clip8(sum);
        }
    }
    RgbImage::from_raw(width, height, out)
        .expect("invariant: `out` was allocated as height × width × 3 bytes")
}
