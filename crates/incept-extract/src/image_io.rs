//! Decoding and preprocessing, shared by `extract` and `predict` so they cannot drift apart.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use turbojpeg::PixelFormat;

/// Side of the square network input, pixels.
pub const INPUT_SIZE: u32 = 224;
/// InceptionV3 expects RGB in [-1, 1]: x / 127.5 − 1 (not the 1/255 of the original blog post).
pub const PIXEL_SCALE: f32 = 127.5;
pub const PIXEL_OFFSET: f32 = 1.0;
/// Largest width or height decoded; bigger images are refused before any pixel is allocated.
pub const MAX_DIMENSION: u32 = incept_core::MAX_IMAGE_DIMENSION;
/// Largest decode buffer, bytes.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;
/// Description stored in the cache's `preprocessing` attribute.
pub const PREPROCESSING: &str = "decode, EXIF orientation, RGB8, resize to 224x224 with an \
antialiased bilinear (triangle) filter as PIL's BILINEAR, then x/127.5-1 (RGB in [-1, 1]), NCHW";

/// How strictly [`load_rgb`] treats a file whose data ends early or is corrupt.
///
/// By default a truncated file is refused, as PIL refuses it ("image file is truncated"), so a
/// half-grey photo is never cached as if it were whole. A complete JPEG that libjpeg-turbo
/// decodes with a warning of corrupt data (stray bytes before a marker, say: common in phone
/// photos) is decoded, as PIL decodes it. `allow_truncated` decodes what a truncated JPEG holds,
/// the missing part grey, like PIL's `ImageFile.LOAD_TRUNCATED_IMAGES = True`. It helps JPEGs only: the PNG, WebP, TIFF and GIF
/// decoders cannot return part of an image, so a truncated file in those formats is refused
/// either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Decode truncated or corrupt JPEGs instead of refusing them.
    pub allow_truncated: bool,
}

/// Decodes any format the `image` crate reads, applies EXIF orientation and converts to RGB8
/// (greyscale, alpha, 16-bit and CMYK inputs included). Refuses images above [`MAX_DIMENSION`],
/// and truncated or corrupt files unless `options` allows them ([`DecodeOptions`]).
///
/// JPEGs are decoded with libjpeg-turbo (accurate integer IDCT, fancy upsampling), the decoder
/// behind PIL, so features match those of a PIL pipeline; CMYK and YCCK JPEGs, which it cannot
/// convert to RGB, are checked by it and then converted by the `image` crate.
pub fn load_rgb(path: &Path, options: DecodeOptions) -> Result<RgbImage, String> {
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
    let mut decoder = reader.into_decoder().map_err(|e| describe_image_error(format, &e))?;
    let orientation = decoder.orientation().map_err(|e| describe_image_error(format, &e))?;
    let turbo = if format == ImageFormat::Jpeg {
        decode_jpeg(&bytes, decoder.dimensions(), options)?
    } else {
        None
    };
    let mut image = match turbo {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => {
            DynamicImage::from_decoder(decoder).map_err(|e| describe_image_error(format, &e))?
        }
    };
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

/// Decodes a JPEG with libjpeg-turbo. `None`: a CMYK or YCCK JPEG that libjpeg-turbo found
/// whole (or `allow_truncated`) but cannot convert to RGB; the `image` crate converts it.
/// `dimensions`: the image's size as the `image` crate read it from the same header.
///
/// TurboJPEG (libjpeg-turbo ≥ 2.0) fails with `TJERR_WARNING` when libjpeg only warned, e.g.
/// "Premature end of JPEG file" for a truncated file, whose image is then decoded in full, the
/// missing part grey. The turbojpeg crate passes no flags (so no `TJFLAG_STOPONWARNING`) and
/// reports the error only as libjpeg's message, so warnings are told from fatal errors by
/// their text ([`is_libjpeg_warning`]).
fn decode_jpeg(
    bytes: &[u8],
    dimensions: (u32, u32),
    options: DecodeOptions,
) -> Result<Option<RgbImage>, String> {
    let mut decompressor = turbojpeg::Decompressor::new()
        .map_err(|e| format!("libjpeg-turbo could not start: {}", libjpeg_message(e)))?;
    let (width, height, colorspace) = match decompressor.read_header(bytes) {
        Ok(header) => (header.width, header.height, Some(header.colorspace)),
        Err(error) => {
            let message = libjpeg_message(error);
            if !is_libjpeg_warning(&message) {
                return Err(format!(
                    "JPEG header unreadable (libjpeg-turbo: {message}); the file is corrupt"
                ));
            }
            refuse_unless_allowed(&message, options)?;
            // The turbojpeg crate drops the header it read when libjpeg warned; the `image`
            // crate read the same header. The colour space is found by trying RGB first.
            (dimensions.0 as usize, dimensions.1 as usize, None)
        }
    };
    // The `image` crate checked its own reading of the header; this checks libjpeg's.
    let fits = |side: usize| u32::try_from(side).is_ok_and(|side| side <= MAX_DIMENSION);
    if !fits(width) || !fits(height) {
        return Err(format!(
            "JPEG of {width}x{height} pixels exceeds the decoding limit of {MAX_DIMENSION} \
             pixels a side"
        ));
    }
    let cmyk =
        matches!(colorspace, Some(turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK));
    let mut decode = |format| decompress(&mut decompressor, bytes, width, height, format, options);
    let pixels = match decode(if cmyk { PixelFormat::CMYK } else { PixelFormat::RGB }) {
        // Colour space unknown (header warned) and not convertible to RGB: CMYK or YCCK.
        Err(error) if colorspace.is_none() && error.contains("Unsupported color conversion") => {
            decode(PixelFormat::CMYK)?;
            return Ok(None);
        }
        result => result?,
    };
    if cmyk {
        return Ok(None);
    }
    let rgb = RgbImage::from_raw(width as u32, height as u32, pixels)
        .expect("invariant: the buffer holds height rows of width RGB pixels, no padding");
    Ok(Some(rgb))
}

/// One libjpeg-turbo decode into a `width` × `height` buffer of `format` pixels (no padding).
/// A decode that libjpeg only warned about is refused unless `allow_truncated`.
fn decompress(
    decompressor: &mut turbojpeg::Decompressor,
    bytes: &[u8],
    width: usize,
    height: usize,
    format: PixelFormat,
    options: DecodeOptions,
) -> Result<Vec<u8>, String> {
    let pitch = width * format.size();
    let mut image =
        turbojpeg::Image { pixels: vec![0u8; height * pitch], width, pitch, height, format };
    if let Err(error) = decompressor.decompress(bytes, image.as_deref_mut()) {
        let message = libjpeg_message(error);
        if !is_libjpeg_warning(&message) {
            return Err(format!("JPEG could not be decoded (libjpeg-turbo: {message})"));
        }
        refuse_unless_allowed(&message, options)?;
    }
    Ok(image.pixels)
}

/// libjpeg's own message, without the turbojpeg crate's prefix.
fn libjpeg_message(error: turbojpeg::Error) -> String {
    match error {
        turbojpeg::Error::TurboJpegError(message) => message,
        other => other.to_string(),
    }
}

/// The refusal of a JPEG whose data libjpeg found missing (`message`), unless
/// `allow_truncated`; other warnings about a complete file pass, as they do in PIL.
fn refuse_unless_allowed(message: &str, options: DecodeOptions) -> Result<(), String> {
    // JWRN_JPEG_EOF ("Premature end of JPEG file") and JWRN_HIT_MARKER ("Corrupt JPEG data:
    // premature end of data segment") are what libjpeg says when the data runs out.
    let data_missing = message.to_lowercase().contains("premature end");
    if options.allow_truncated || !data_missing {
        return Ok(());
    }
    Err(format!(
        "truncated or corrupt JPEG (libjpeg-turbo: {message}); pass --allow-truncated to decode \
         it anyway, as PIL's LOAD_TRUNCATED_IMAGES does"
    ))
}

/// Whether a TurboJPEG error message is one of libjpeg's warnings (`JWRN_*` in jerror.h of
/// libjpeg-turbo 2.1 and 3.x) rather than a fatal error. An unknown text counts as fatal, so a
/// message this list misses refuses the file instead of letting it through.
fn is_libjpeg_warning(message: &str) -> bool {
    const WARNINGS: [&str; 7] = [
        "Premature end of JPEG file",
        "Corrupt JPEG data", // bad Huffman/arithmetic code, premature end of segment, ...
        "Unknown Adobe color transform code",
        "Inconsistent progression sequence",
        "Warning: unknown JFIF revision number",
        "Invalid SOS parameters for sequential JPEG",
        "Application transferred too many scanlines",
    ];
    WARNINGS.iter().any(|warning| message.starts_with(warning))
}

/// Names what went wrong when the `image` crate could not read a file; running out of data
/// (a truncated file) and corrupt data get a message saying the file is broken.
fn describe_image_error(format: ImageFormat, error: &image::ImageError) -> String {
    let name = format!("{format:?}").to_uppercase();
    match error {
        // The `image` crate reads only a JPEG's header (and converts CMYK ones).
        image::ImageError::Decoding(_) | image::ImageError::IoError(_)
            if format == ImageFormat::Jpeg =>
        {
            format!("truncated or corrupt JPEG ({error}); re-save the image or remove it")
        }
        image::ImageError::Decoding(_) | image::ImageError::IoError(_) => format!(
            "truncated or corrupt {name} ({error}); only JPEGs can be decoded in part \
             (--allow-truncated), so re-save the image or remove it"
        ),
        _ => error.to_string(),
    }
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

/// Decode and resize: the unaugmented network-sized image of a file.
pub fn load_for_network(path: &Path, options: DecodeOptions) -> Result<RgbImage, String> {
    load_rgb(path, options).map(|image| resize_for_network(&image))
}

/// The unaugmented network input of a file: decode, resize, scale. Used by `extract` (variant
/// 0) and `predict` alike, so the two cannot drift apart.
///
/// # Shapes
/// Returns [3 × S × S], planar RGB in [-1, 1].
pub fn network_input(path: &Path, options: DecodeOptions) -> Result<Vec<f32>, String> {
    let image = load_for_network(path, options)?;
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
        let error = load_rgb(&path, DecodeOptions::default()).unwrap_err();
        assert!(error.to_lowercase().contains("limit"), "{error}");
    }

    /// Deterministic noise (a hash per pixel and channel): compresses badly, so even small
    /// images make files of several KB whatever the format.
    fn noisy_image(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let channel = |c: u32| {
                let mut h = x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B) ^ (c << 29);
                h ^= h >> 15;
                h = h.wrapping_mul(0x2C1B_3C6D);
                h ^= h >> 12;
                (h & 0xFF) as u8
            };
            image::Rgb([channel(0), channel(1), channel(2)])
        })
    }

    fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(image.clone()).write_to(&mut bytes, format).expect("encode");
        bytes.into_inner()
    }

    /// Writes `bytes` to a file named `name` in a new temporary folder.
    fn written(name: &str, bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        (dir, path)
    }

    const ALLOW: DecodeOptions = DecodeOptions { allow_truncated: true };

    #[test]
    fn whole_jpeg_decodes_with_both_options() {
        let original = noisy_image(256, 256);
        let (_dir, path) = written("whole.jpg", &encode(&original, ImageFormat::Jpeg));
        let strict = load_rgb(&path, DecodeOptions::default()).expect("whole JPEG, default");
        let lenient = load_rgb(&path, ALLOW).expect("whole JPEG, allow_truncated");
        assert_eq!(strict.dimensions(), (256, 256));
        assert_eq!(strict, lenient);
        // Lossy, but close to the original on average: the whole image was decoded.
        let mean_difference = strict
            .as_raw()
            .iter()
            .zip(original.as_raw())
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / original.as_raw().len() as f64;
        assert!(mean_difference < 40.0, "mean difference {mean_difference}");
    }

    #[test]
    fn truncated_jpeg_is_refused_by_default_and_decoded_when_allowed() {
        let bytes = encode(&noisy_image(256, 256), ImageFormat::Jpeg);
        assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
        let (_dir, path) = written("cut.jpg", &bytes[..bytes.len() * 3 / 10]);
        let (_whole_dir, whole_path) = written("whole.jpg", &bytes);
        let error = load_rgb(&path, DecodeOptions::default()).unwrap_err();
        assert!(error.contains("truncated") && error.contains("--allow-truncated"), "{error}");
        assert!(error.contains("Premature end of JPEG file"), "{error}");

        let partial = load_rgb(&path, ALLOW).expect("allow_truncated decodes what is there");
        let whole = load_rgb(&whole_path, DecodeOptions::default()).expect("whole JPEG");
        assert_eq!(partial.dimensions(), (256, 256));
        // The top rows were in the file; the last row was not and is libjpeg's mid grey.
        let row = 256 * 3;
        assert_eq!(partial.as_raw()[..row], whole.as_raw()[..row]);
        assert!(partial.as_raw()[partial.as_raw().len() - row..].iter().all(|&v| v == 128));
    }

    #[test]
    fn jpeg_cut_inside_its_header_is_refused_either_way() {
        let bytes = encode(&noisy_image(64, 64), ImageFormat::Jpeg);
        let (_dir, path) = written("stub.jpg", &bytes[..100]);
        for options in [DecodeOptions::default(), ALLOW] {
            let error = load_rgb(&path, options).map(|i| i.dimensions()).unwrap_err();
            assert!(error.contains("truncated or corrupt JPEG"), "{options:?}: {error}");
            assert!(!error.contains("only JPEGs"), "{options:?}: {error}");
        }
    }

    #[test]
    fn corrupt_but_complete_jpeg_is_decoded_as_pil_decodes_it() {
        // Stray bytes before the start-of-scan marker: libjpeg warns ("Corrupt JPEG data: 3
        // extraneous bytes before marker 0xda") and decodes the whole image, as PIL does.
        let image = noisy_image(64, 64);
        let clean = encode(&image, ImageFormat::Jpeg);
        let mut bytes = clean.clone();
        let scan = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).expect("SOS marker");
        bytes.splice(scan..scan, [1, 2, 3]);
        let (_dir, path) = written("stray.jpg", &bytes);
        let (_clean_dir, clean_path) = written("clean.jpg", &clean);
        let decoded = load_rgb(&path, DecodeOptions::default());
        assert!(decoded.is_ok(), "{decoded:?}");
        assert_eq!(decoded, load_rgb(&clean_path, DecodeOptions::default()));
        assert_eq!(load_rgb(&path, ALLOW), decoded);
    }

    #[test]
    fn truncated_cmyk_jpeg_is_refused_before_the_image_crate_sees_it() {
        // libjpeg-turbo cannot convert CMYK to RGB; the `image` crate does, and would decode a
        // truncated file silently, so libjpeg-turbo checks it first.
        let noise = noisy_image(128, 128);
        let cmyk: Vec<u8> =
            noise.pixels().flat_map(|p| [p.0[0], p.0[1], p.0[2], p.0[0] / 2]).collect();
        let source = turbojpeg::Image {
            pixels: &cmyk[..],
            width: 128,
            pitch: 128 * 4,
            height: 128,
            format: turbojpeg::PixelFormat::CMYK,
        };
        let bytes = turbojpeg::compress(source, 90, turbojpeg::Subsamp::None).expect("encode");
        let header = turbojpeg::read_header(&bytes).expect("header");
        assert!(matches!(
            header.colorspace,
            turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
        ));
        let (_whole_dir, whole) = written("whole.jpg", &bytes);
        let decoded = load_rgb(&whole, DecodeOptions::default()).expect("whole CMYK JPEG");
        assert_eq!(decoded.dimensions(), (128, 128));

        let (_dir, path) = written("cut.jpg", &bytes[..bytes.len() / 3]);
        let error = load_rgb(&path, DecodeOptions::default()).unwrap_err();
        assert!(error.contains("truncated") && error.contains("--allow-truncated"), "{error}");
        let partial = load_rgb(&path, ALLOW).expect("allow_truncated decodes what is there");
        assert_eq!(partial.dimensions(), (128, 128));

        // A warning in the header hides the colour space: found by trying RGB, then CMYK.
        let mut stray = bytes.to_vec();
        let scan = stray.windows(2).position(|w| w == [0xFF, 0xDA]).expect("SOS marker");
        stray.splice(scan..scan, [1, 2, 3]);
        let (_stray_dir, path) = written("stray.jpg", &stray);
        assert_eq!(load_rgb(&path, DecodeOptions::default()), Ok(decoded.clone()));
        assert_eq!(load_rgb(&path, ALLOW), Ok(decoded));
    }

    /// PNG, WebP, TIFF and GIF cut to a third: refused with or without `allow_truncated`.
    #[test]
    fn truncated_png_webp_tiff_gif_are_refused_either_way() {
        for (format, side) in [
            (ImageFormat::Png, 128),
            (ImageFormat::WebP, 128),
            (ImageFormat::Tiff, 128),
            (ImageFormat::Gif, 64),
        ] {
            let bytes = encode(&noisy_image(side, side), format);
            assert!(bytes.len() > 4_000, "{format:?}: {} bytes", bytes.len());
            let name = format!("whole.{}", format.extensions_str()[0]);
            let (_whole_dir, whole) = written(&name, &bytes);
            let decoded = load_rgb(&whole, DecodeOptions::default());
            assert_eq!(decoded.map(|i| i.dimensions()), Ok((side, side)), "{format:?}");

            let (_dir, path) = written(&name, &bytes[..bytes.len() / 3]);
            for options in [DecodeOptions::default(), ALLOW] {
                let error = load_rgb(&path, options).unwrap_err();
                assert!(
                    error.contains("truncated or corrupt") && error.contains("only JPEGs"),
                    "{format:?}, {options:?}: {error}"
                );
            }
        }
    }
}
