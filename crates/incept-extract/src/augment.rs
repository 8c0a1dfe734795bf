//! Random affine augmentation with the semantics of Keras `ImageDataGenerator`
//! (`get_random_transform` + `apply_affine_transform`, `fill_mode='nearest'`, `order=1`).
//!
//! Coordinates are (row, column) as in Keras/scipy: an output pixel `o` samples the input at
//! `M · o + offset`, where `M` composes rotation · shift · shear · zoom about the image centre.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::image_io::scale_pixel;

mod colour;

/// Version of the draw in [`Augmentation::draw`]: the random number generator (ChaCha8 from
/// `rand_chacha`, seeded by a stable hash), the order in which parameters are drawn and how
/// `rand` maps its output onto a range. Stored in the cache, which refuses to mix versions;
/// raise it whenever a change (a `rand` upgrade included) alters the draws, which the pinned
/// draws in this file's tests catch.
pub const ALGORITHM_VERSION: u32 = 1;

/// The augmentation parameters; every field states its unit. Defaults are the blog post's.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augmentation {
    /// Rotation drawn uniformly in ±this, degrees.
    pub rotation_range_degrees: f64,
    /// Horizontal shift drawn uniformly in ±this, fraction of the image width.
    pub width_shift_fraction: f64,
    /// Vertical shift drawn uniformly in ±this, fraction of the image height.
    pub height_shift_fraction: f64,
    /// Shear angle drawn uniformly in ±this, degrees (Keras' unit).
    pub shear_range_degrees: f64,
    /// Zoom factors zx, zy drawn independently in [min, max]; > 1 zooms out (as in Keras).
    pub zoom_min: f64,
    pub zoom_max: f64,
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// Mirror top-bottom with probability 1/2 (Keras' `vertical_flip`; off in the blog post).
    /// Drawn after every other parameter, so turning it on leaves their draws as they were.
    /// Serialized only when on: a plan's id hashes its JSON, and plans made before this option
    /// must keep their ids.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vertical_flip: bool,
    /// Keras' `channel_shift_range`, pixel values (of 0–255): one intensity drawn uniformly in
    /// ±this is added to every channel, then clipped to the transformed image's own minimum and
    /// maximum. 0 (the blog post's) is off. Drawn after the flips; serialized only when on.
    #[serde(default, skip_serializing_if = "incept_core::is_zero")]
    pub channel_shift_range: f64,
    /// Keras' `brightness_range` [low, high]: a factor drawn uniformly in it scales the image
    /// as tf.keras does it (cut to 8 bits, then PIL's `Brightness`, clipped at 255). `None`
    /// (the blog post's) is off. Drawn last; serialized only when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brightness_range: Option<[f64; 2]>,
}

/// Keras' `zoom_range=0.2`: zoom factors uniform in [1 − 0.2, 1 + 0.2].
pub const KERAS_ZOOM_RANGE: f64 = 0.2;

impl Augmentation {
    /// The blog post's `ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
    /// height_shift_range=0.2, shear_range=0.2, zoom_range=0.2, horizontal_flip=True)`.
    pub const KERAS: Augmentation = Augmentation {
        rotation_range_degrees: 40.0,
        width_shift_fraction: 0.2,
        height_shift_fraction: 0.2,
        shear_range_degrees: 0.2,
        zoom_min: 1.0 - KERAS_ZOOM_RANGE,
        zoom_max: 1.0 + KERAS_ZOOM_RANGE,
        horizontal_flip: true,
        vertical_flip: false,
        channel_shift_range: 0.0,
        brightness_range: None,
    };
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation::KERAS
    }
}

/// One drawn transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub theta_degrees: f64,
    /// Shift along rows, pixels.
    pub tx: f64,
    /// Shift along columns, pixels.
    pub ty: f64,
    pub shear_degrees: f64,
    pub zx: f64,
    pub zy: f64,
    pub flip_horizontal: bool,
    pub flip_vertical: bool,
    /// Added to every channel, pixel values (of 0–255), before clipping; 0 = none.
    pub channel_shift: f64,
    /// Brightness factor (PIL's `ImageEnhance.Brightness`); `None` = none.
    pub brightness: Option<f64>,
}

impl Augmentation {
    /// JSON with every parameter and its unit, stored in the cache's `augmentation` attribute.
    /// `vertical_flip`, `channel_shift_range` and `brightness_range` are written only when on, so
    /// caches made before they existed keep matching.
    pub fn to_json(&self) -> String {
        let mut optional = String::new();
        if self.vertical_flip {
            optional.push_str("\"vertical_flip\":{\"value\":true,\"unit\":\"probability 1/2\"},");
        }
        if self.channel_shift_range != 0.0 {
            optional.push_str(&format!(
                "\"channel_shift_range\":{{\"value\":{},\"unit\":\"pixel values of 0-255\"}},",
                self.channel_shift_range
            ));
        }
        if let Some([low, high]) = self.brightness_range {
            optional.push_str(&format!(
                "\"brightness_range\":{{\"value\":[{low},{high}],\"unit\":\"factor of 8-bit values\"}},"
            ));
        }
        format!(
            concat!(
                "{{\"semantics\":\"keras ImageDataGenerator\",",
                "\"rotation_range\":{{\"value\":{},\"unit\":\"degrees\"}},",
                "\"width_shift_range\":{{\"value\":{},\"unit\":\"fraction of width\"}},",
                "\"height_shift_range\":{{\"value\":{},\"unit\":\"fraction of height\"}},",
                "\"shear_range\":{{\"value\":{},\"unit\":\"degrees\"}},",
                "\"zoom_range\":{{\"value\":[{},{}],\"unit\":\"factor, >1 zooms out\"}},",
                "\"horizontal_flip\":{{\"value\":{},\"unit\":\"probability 1/2\"}},",
                "{}",
                "\"fill_mode\":\"nearest\",\"interpolation\":\"bilinear\"}}"
            ),
            self.rotation_range_degrees,
            self.width_shift_fraction,
            self.height_shift_fraction,
            self.shear_range_degrees,
            self.zoom_min,
            self.zoom_max,
            self.horizontal_flip,
            optional
        )
    }

    /// Why these parameters cannot be drawn from, if they cannot: every range a finite number,
    /// none negative, and zoom and brightness ranges with low ≤ high.
    pub fn check(&self) -> std::result::Result<(), String> {
        let symmetric = [
            ("rotation_range", self.rotation_range_degrees),
            ("width_shift_range", self.width_shift_fraction),
            ("height_shift_range", self.height_shift_fraction),
            ("shear_range", self.shear_range_degrees),
            ("channel_shift_range", self.channel_shift_range),
        ];
        for (name, value) in symmetric {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!("{name} {value} must be a number >= 0"));
            }
        }
        let zoom = ("zoom_range", [self.zoom_min, self.zoom_max]);
        let ordered = std::iter::once(zoom)
            .chain(self.brightness_range.map(|range| ("brightness_range", range)));
        for (name, [low, high]) in ordered {
            if !(low.is_finite() && high.is_finite() && 0.0 <= low && low <= high) {
                return Err(format!("{name} [{low}, {high}] must have 0 <= low <= high"));
            }
        }
        Ok(())
    }

    /// The parameters [`Self::to_json`] wrote (a cache's `augmentation` attribute); `None` if
    /// `text` is not such a description, or describes ranges that cannot be drawn from.
    pub fn from_json(text: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let number = |name: &str| value.get(name)?.get("value")?.as_f64();
        let zoom = value.get("zoom_range")?.get("value")?.as_array()?;
        let augmentation = Augmentation {
            rotation_range_degrees: number("rotation_range")?,
            width_shift_fraction: number("width_shift_range")?,
            height_shift_fraction: number("height_shift_range")?,
            shear_range_degrees: number("shear_range")?,
            zoom_min: zoom.first()?.as_f64()?,
            zoom_max: zoom.get(1)?.as_f64()?,
            horizontal_flip: value.get("horizontal_flip")?.get("value")?.as_bool()?,
            vertical_flip: match value.get("vertical_flip") {
                None => false,
                Some(flip) => flip.get("value")?.as_bool()?,
            },
            channel_shift_range: match value.get("channel_shift_range") {
                None => 0.0,
                Some(_) => number("channel_shift_range")?,
            },
            brightness_range: match value.get("brightness_range") {
                None => None,
                Some(range) => {
                    let range = range.get("value")?.as_array()?;
                    let [low, high] = range.as_slice() else { return None };
                    Some([low.as_f64()?, high.as_f64()?])
                }
            },
        };
        augmentation.check().ok()?;
        Some(augmentation)
    }

    /// Draws the transform of variant `variant` of the image at `relative_path`: it depends only
    /// on `seed`, the path and the variant, never on threads, batches or order.
    pub fn draw(
        &self,
        seed: u64,
        relative_path: &str,
        variant: u32,
        height: u32,
        width: u32,
    ) -> Transform {
        let key = incept_core::stable_hash(&[
            &seed.to_le_bytes(),
            relative_path.as_bytes(),
            &variant.to_le_bytes(),
        ]);
        let mut rng = ChaCha8Rng::seed_from_u64(key);
        let mut symmetric =
            |range: f64| if range > 0.0 { rng.random_range(-range..=range) } else { 0.0 };
        let theta_degrees = symmetric(self.rotation_range_degrees);
        let tx = symmetric(self.height_shift_fraction) * f64::from(height);
        let ty = symmetric(self.width_shift_fraction) * f64::from(width);
        let shear_degrees = symmetric(self.shear_range_degrees);
        let (zx, zy) = if self.zoom_min == 1.0 && self.zoom_max == 1.0 {
            (1.0, 1.0)
        } else {
            (
                rng.random_range(self.zoom_min..=self.zoom_max),
                rng.random_range(self.zoom_min..=self.zoom_max),
            )
        };
        let flip_horizontal = self.horizontal_flip && rng.random::<f64>() < 0.5;
        let flip_vertical = self.vertical_flip && rng.random::<f64>() < 0.5;
        // Keras' order: the colour parameters after the flips.
        let channel_shift = if self.channel_shift_range != 0.0 {
            rng.random_range(-self.channel_shift_range..=self.channel_shift_range)
        } else {
            0.0
        };
        let brightness = self.brightness_range.map(|[low, high]| rng.random_range(low..=high));
        Transform {
            theta_degrees,
            tx,
            ty,
            shear_degrees,
            zx,
            zy,
            flip_horizontal,
            flip_vertical,
            channel_shift,
            brightness,
        }
    }
}

type Matrix = [[f64; 3]; 3];

fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

impl Transform {
    /// The identity (variant 0).
    pub const IDENTITY: Transform = Transform {
        theta_degrees: 0.0,
        tx: 0.0,
        ty: 0.0,
        shear_degrees: 0.0,
        zx: 1.0,
        zy: 1.0,
        flip_horizontal: false,
        flip_vertical: false,
        channel_shift: 0.0,
        brightness: None,
    };

    /// The 3×3 matrix from output (row, col, 1) to input coordinates, as
    /// `apply_affine_transform` builds it (rotation · shift · shear · zoom, then centred).
    pub fn matrix(&self, height: u32, width: u32) -> Matrix {
        let theta = self.theta_degrees.to_radians();
        let shear = self.shear_degrees.to_radians();
        let rotation =
            [[theta.cos(), -theta.sin(), 0.0], [theta.sin(), theta.cos(), 0.0], [0.0, 0.0, 1.0]];
        let shift = [[1.0, 0.0, self.tx], [0.0, 1.0, self.ty], [0.0, 0.0, 1.0]];
        let shear_matrix = [[1.0, -shear.sin(), 0.0], [0.0, shear.cos(), 0.0], [0.0, 0.0, 1.0]];
        let zoom = [[self.zx, 0.0, 0.0], [0.0, self.zy, 0.0], [0.0, 0.0, 1.0]];
        let transform = multiply(&multiply(&multiply(&rotation, &shift), &shear_matrix), &zoom);
        // transform_matrix_offset_center: Keras' o = size / 2 + 0.5.
        let o_x = f64::from(height) / 2.0 + 0.5;
        let o_y = f64::from(width) / 2.0 + 0.5;
        let offset = [[1.0, 0.0, o_x], [0.0, 1.0, o_y], [0.0, 0.0, 1.0]];
        let reset = [[1.0, 0.0, -o_x], [0.0, 1.0, -o_y], [0.0, 0.0, 1.0]];
        multiply(&multiply(&offset, &transform), &reset)
    }

    /// Applies the transform with bilinear sampling, edge pixels repeated outside the image,
    /// then the flips and the colour changes (as Keras' `apply_transform`: affine transform,
    /// channel shift, flips, brightness), writing planar RGB already scaled to [-1, 1].
    ///
    /// # Shapes
    /// `image`: H×W RGB8; `out`: [3 × H × W] (CHW).
    pub fn apply(&self, image: &RgbImage, out: &mut [f32]) {
        if self.channel_shift == 0.0 && self.brightness.is_none() {
            self.sample(image, out, scale_pixel);
            return;
        }
        // The colour changes need the whole transformed image (its minimum and maximum) first.
        self.sample(image, out, |value| value);
        colour::adjust(out, self.channel_shift, self.brightness);
        for value in out.iter_mut() {
            *value = scale_pixel(*value);
        }
    }

    /// The affine transform and the flips, each sampled value (0–255) passed through `map`.
    fn sample(&self, image: &RgbImage, out: &mut [f32], map: impl Fn(f32) -> f32) {
        let (width, height) = image.dimensions();
        let (w, h) = (width as usize, height as usize);
        let plane = w * h;
        let m = self.matrix(height, width);
        let raw = image.as_raw();
        let max_row = (h - 1) as f64;
        let max_col = (w - 1) as f64;
        for row in 0..h {
            for col in 0..w {
                let (r, c) = (row as f64, col as f64);
                // 'nearest' fill: clamping the coordinate repeats the edge pixel.
                let source_row = (m[0][0] * r + m[0][1] * c + m[0][2]).clamp(0.0, max_row);
                let source_col = (m[1][0] * r + m[1][1] * c + m[1][2]).clamp(0.0, max_col);
                let (r0, c0) = (source_row.floor() as usize, source_col.floor() as usize);
                let (r1, c1) = ((r0 + 1).min(h - 1), (c0 + 1).min(w - 1));
                let (fr, fc) = ((source_row - r0 as f64) as f32, (source_col - c0 as f64) as f32);
                let out_col = if self.flip_horizontal { w - 1 - col } else { col };
                let out_row = if self.flip_vertical { h - 1 - row } else { row };
                let target = out_row * w + out_col;
                for channel in 0..3 {
                    let at = |y: usize, x: usize| f32::from(raw[(y * w + x) * 3 + channel]);
                    let top = at(r0, c0) * (1.0 - fc) + at(r0, c1) * fc;
                    let bottom = at(r1, c0) * (1.0 - fc) + at(r1, c1) * fc;
                    out[channel * plane + target] = map(top * (1.0 - fr) + bottom * fr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
