//! JPEG decoding with libjpeg-turbo, and telling its warnings from its fatal errors.

use image::RgbImage;
use turbojpeg::PixelFormat;

use super::{DecodeOptions, MAX_DIMENSION};

/// Decodes a JPEG with libjpeg-turbo. `None`: a CMYK or YCCK JPEG that libjpeg-turbo found
/// whole (or `allow_truncated`) but cannot convert to RGB; the `image` crate converts it.
/// `dimensions`: the image's size as the `image` crate read it from the same header.
///
/// TurboJPEG (libjpeg-turbo ≥ 2.0) fails with `TJERR_WARNING` when libjpeg only warned, e.g.
/// "Premature end of JPEG file" for a truncated file, whose image is then decoded in full, the
/// missing part grey. The turbojpeg crate passes no flags (so no `TJFLAG_STOPONWARNING`) and
/// reports the error only as libjpeg's message, so warnings are told from fatal errors by
/// their text ([`is_libjpeg_warning`]).
pub(super) fn decode_jpeg(
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
