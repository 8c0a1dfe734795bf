//! Decoding and preprocessing, shared by `extract` and `predict` so they cannot drift apart.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

/// Side of the square network input, pixels.
pub const INPUT_SIZE: u32 = 224;
/// InceptionV3 expects RGB in [-1, 1]: x / 127.5 − 1 (not the 1/255 of the original blog post).
pub const PIXEL_SCALE: f32 = 127.5;
pub const PIXEL_OFFSET: f32 = 1.0;
/// Largest width or height decoded; bigger images are refused before any pixel is allocated.
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest decode buffer, bytes.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;
/// Description stored in the cache's `preprocessing` attribute.
pub const PREPROCESSING: &str = "decode, EXIF orientation, RGB8, resize to 224x224 with an \
antialiased bilinear (triangle) filter as PIL's BILINEAR, then x/127.5-1 (RGB in [-1, 1]), NCHW";

/// Decodes any format the `image` crate reads, applies EXIF orientation and converts to RGB8
/// (greyscale, alpha, 16-bit and CMYK inputs included). Refuses images above [`MAX_DIMENSION`].
///
/// JPEGs are decoded with libjpeg-turbo (accurate integer IDCT, fancy upsampling), the decoder
/// behind PIL, so features match those of a PIL pipeline; formats and JPEG colour spaces it
/// cannot decode to RGB (CMYK) go through the `image` crate.
pub fn load_rgb(path: &Path) -> Result<RgbImage, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.is_empty() {
        return Err("empty file".to_owned());
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let Some(format) = reader.format() else {
        return Err("not an image in a format incept reads".to_owned());
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    // Reading the header checks the limits before any pixel is allocated.
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let turbo = (format == ImageFormat::Jpeg)
        .then(|| turbojpeg::decompress(&bytes, turbojpeg::PixelFormat::RGB).ok())
        .flatten()
        .and_then(|decoded| {
            let width = decoded.width as u32;
            let height = decoded.height as u32;
            let row = decoded.width * 3;
            let pixels: Vec<u8> =
                decoded.pixels.chunks(decoded.pitch).flat_map(|r| &r[..row]).copied().collect();
            RgbImage::from_raw(width, height, pixels)
        });
    let mut image = match turbo {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?,
    };
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

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
    (0..out_size)
        .map(|out| {
            let center = (f64::from(out) + 0.5) * scale;
            let min = ((center - support + 0.5) as i64).max(0) as usize;
            let max = ((center + support + 0.5) as i64).min(i64::from(in_size)) as usize;
            let weights: Vec<f64> = (min..max)
                .map(|x| {
                    let distance = ((x as f64 - center + 0.5) / filter_scale).abs();
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
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// Decode and resize: the unaugmented network-sized image of a file.
pub fn load_for_network(path: &Path) -> Result<RgbImage, String> {
    load_rgb(path).map(|image| resize_for_network(&image))
}

/// The unaugmented network input of a file: decode, resize, scale. Used by `extract` (variant
/// 0) and `predict` alike, so the two cannot drift apart.
///
/// # Shapes
/// Returns [3 × S × S], planar RGB in [-1, 1].
pub fn network_input(path: &Path) -> Result<Vec<f32>, String> {
    let image = load_for_network(path)?;
    let mut tensor = vec![0.0; 3 * image.width() as usize * image.height() as usize];
    to_network_input(&image, &mut tensor);
    Ok(tensor)
}

/// Scales one pixel value to the network's range.
#[inline]
pub fn scale_pixel(value: f32) -> f32 {
    value / PIXEL_SCALE - PIXEL_OFFSET
}

/// Writes `image` into `out` as planar RGB in [-1, 1].
///
/// # Shapes
/// `image`: S×S RGB8; `out`: [3 × S × S] (CHW).
pub fn to_network_input(image: &RgbImage, out: &mut [f32]) {
    let plane = (image.width() * image.height()) as usize;
    for (index, pixel) in image.pixels().enumerate() {
        for channel in 0..3 {
            out[channel * plane + index] = scale_pixel(f32::from(pixel[channel]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_maps_bytes_to_minus_one_one() {
        assert_eq!(scale_pixel(0.0), -1.0);
        assert_eq!(scale_pixel(255.0), 1.0);
        assert!((scale_pixel(127.5)).abs() < 1e-7);
    }

    #[test]
    fn planar_layout_puts_channels_first() {
        let mut image = RgbImage::new(2, 1);
        image.put_pixel(1, 0, image::Rgb([255, 0, 0]));
        let mut out = vec![0.0; 6];
        to_network_input(&image, &mut out);
        assert_eq!(out, [-1.0, 1.0, -1.0, -1.0, -1.0, -1.0]);
    }

    /// A valid PNG signature and IHDR chunk claiming 20000×20000 RGB pixels, and no data.
    fn huge_png_header() -> Vec<u8> {
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&20_000u32.to_be_bytes());
        chunk.extend_from_slice(&20_000u32.to_be_bytes());
        chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d".to_vec();
        bytes.extend_from_slice(&chunk);
        bytes.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
        bytes
    }

    #[test]
    fn oversized_header_is_refused_before_decoding() {
        // A PNG whose header claims 20000×20000 pixels: refused by the limit, not allocated.
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("huge.png");
        std::fs::write(&path, huge_png_header()).expect("write");
        let error = load_rgb(&path).unwrap_err();
        assert!(error.to_lowercase().contains("limit"), "{error}");
    }
}
