//! Decoding and preprocessing, shared by `extract` and `predict` so they cannot drift apart.

use std::path::Path;

use image::RgbImage;

mod decode;
mod jpeg;
mod resize;

pub use decode::load_rgb;
pub use resize::{resize_bilinear, resize_for_network};

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

/// Decode and resize: the unaugmented network-sized image of a file.
pub fn load_for_network(path: &Path, options: DecodeOptions) -> Result<RgbImage, String> {
    load_rgb(path, options).map(|image| resize_for_network(&image))
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
}
