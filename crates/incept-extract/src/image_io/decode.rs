//! Reading a file into RGB8: format detection, decode limits, EXIF orientation, error messages.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use super::jpeg::decode_jpeg;
use super::{DecodeOptions, MAX_DECODE_BYTES, MAX_DIMENSION};

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

#[cfg(test)]
mod tests {
    use super::*;

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
