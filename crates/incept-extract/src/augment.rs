//! Random affine augmentation with the semantics of Keras `ImageDataGenerator`
//! (`get_random_transform` + `apply_affine_transform`, `fill_mode='nearest'`, `order=1`).
//!
//! Coordinates are (row, column) as in Keras/scipy: an output pixel `o` samples the input at
//! `M · o + offset`, where `M` composes rotation · shift · shear · zoom about the image centre.

use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::image_io::scale_pixel;

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
}

impl Augmentation {
    /// JSON with every parameter and its unit, stored in the cache's `augmentation` attribute.
    /// `vertical_flip` is written only when on, so caches made before it existed keep matching.
    pub fn to_json(&self) -> String {
        let vertical_flip = if self.vertical_flip {
            "\"vertical_flip\":{\"value\":true,\"unit\":\"probability 1/2\"},"
        } else {
            ""
        };
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
            vertical_flip
        )
    }

    /// The parameters [`Self::to_json`] wrote (a cache's `augmentation` attribute); `None` if
    /// `text` is not such a description.
    pub fn from_json(text: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let number = |name: &str| value.get(name)?.get("value")?.as_f64();
        let zoom = value.get("zoom_range")?.get("value")?.as_array()?;
        Some(Augmentation {
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
        })
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
        Transform { theta_degrees, tx, ty, shear_degrees, zx, zy, flip_horizontal, flip_vertical }
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
    /// then the flips (as Keras: after the affine transform), writing planar RGB already scaled
    /// to [-1, 1].
    ///
    /// # Shapes
    /// `image`: H×W RGB8; `out`: [3 × H × W] (CHW).
    pub fn apply(&self, image: &RgbImage, out: &mut [f32]) {
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
                    out[channel * plane + target] = scale_pixel(top * (1.0 - fr) + bottom * fr);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_description_reads_back_as_the_same_parameters() {
        let augmentation =
            Augmentation { rotation_range_degrees: 12.5, zoom_min: 0.7, ..Augmentation::default() };
        assert_eq!(Augmentation::from_json(&augmentation.to_json()), Some(augmentation));
        assert_eq!(Augmentation::from_json("{\"enabled\":false}"), None);
    }
    use crate::image_io::to_network_input;

    fn gradient(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 17])
        })
    }

    #[test]
    fn identity_reproduces_the_image() {
        let image = gradient(16);
        let mut expected = vec![0.0; 3 * 256];
        to_network_input(&image, &mut expected);
        let mut out = vec![0.0; 3 * 256];
        Transform::IDENTITY.apply(&image, &mut out);
        for (a, b) in out.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn flip_mirrors_columns() {
        let image = gradient(8);
        let mut out = vec![0.0; 3 * 64];
        Transform { flip_horizontal: true, ..Transform::IDENTITY }.apply(&image, &mut out);
        // Red channel encodes x: the first output column holds the last input column.
        assert_eq!(out[0], scale_pixel(f32::from(image.get_pixel(7, 0)[0])));
    }

    #[test]
    fn vertical_flip_mirrors_rows() {
        let image = gradient(8);
        let mut out = vec![0.0; 3 * 64];
        Transform { flip_vertical: true, ..Transform::IDENTITY }.apply(&image, &mut out);
        // Green channel encodes y: the first output row holds the last input row.
        assert_eq!(out[64], scale_pixel(f32::from(image.get_pixel(0, 7)[1])));
        assert_eq!(out[64 + 7 * 8], scale_pixel(f32::from(image.get_pixel(0, 0)[1])));
    }

    #[test]
    fn vertical_flips_leave_the_other_draws_and_the_default_description_as_they_were() {
        let keras = Augmentation::default();
        let flipping = Augmentation { vertical_flip: true, ..keras.clone() };
        let mut flips = 0;
        for variant in 1..=200 {
            let (plain, flipped) = (
                keras.draw(5, "a/b.jpg", variant, 224, 224),
                flipping.draw(5, "a/b.jpg", variant, 224, 224),
            );
            assert_eq!(Transform { flip_vertical: false, ..flipped }, plain);
            flips += usize::from(flipped.flip_vertical);
        }
        assert!((60..=140).contains(&flips), "{flips} vertical flips in 200");
        // Caches and plans made before the option existed describe the same augmentation.
        assert!(!keras.to_json().contains("vertical_flip"));
        let plan_form = serde_json::to_string(&keras).expect("serializable");
        assert!(!plan_form.contains("vertical_flip"), "{plan_form}");
        let read: Augmentation = serde_json::from_str(&plan_form).expect("readable");
        assert_eq!(read, keras);
        let flipping_form = serde_json::to_string(&flipping).expect("serializable");
        assert_eq!(
            serde_json::from_str::<Augmentation>(&flipping_form).ok(),
            Some(flipping.clone())
        );
        assert_eq!(Augmentation::from_json(&flipping.to_json()), Some(flipping));
    }

    #[test]
    fn shift_repeats_edge_pixels() {
        let image = gradient(8);
        let mut out = vec![0.0; 3 * 64];
        // Output column c samples input column c + 3: the right edge repeats past column 4.
        Transform { ty: 3.0, ..Transform::IDENTITY }.apply(&image, &mut out);
        assert_eq!(out[1], scale_pixel(f32::from(image.get_pixel(4, 0)[0])));
        assert_eq!(out[7], scale_pixel(f32::from(image.get_pixel(7, 0)[0])));
    }

    #[test]
    fn matrix_matches_keras_for_a_rotation_about_the_centre() {
        // Keras: offset_center(rotation(90°), 10, 10) maps output (0, 0) to input (11, 0).
        let m = Transform { theta_degrees: 90.0, ..Transform::IDENTITY }.matrix(10, 10);
        let (r, c) = (m[0][2], m[1][2]);
        assert!((r - 11.0).abs() < 1e-9 && c.abs() < 1e-9, "{r} {c}");
    }

    #[test]
    fn draws_are_deterministic_and_in_range() {
        let augmentation = Augmentation::default();
        let mut flips = 0;
        for variant in 1..=200 {
            let t = augmentation.draw(42, "a/b.jpg", variant, 224, 224);
            assert_eq!(t, augmentation.draw(42, "a/b.jpg", variant, 224, 224));
            assert!(t.theta_degrees.abs() <= 40.0);
            assert!(t.tx.abs() <= 0.2 * 224.0 && t.ty.abs() <= 0.2 * 224.0);
            assert!(t.shear_degrees.abs() <= 0.2);
            assert!((0.8..=1.2).contains(&t.zx) && (0.8..=1.2).contains(&t.zy));
            flips += usize::from(t.flip_horizontal);
        }
        assert!((60..=140).contains(&flips), "{flips} flips in 200");
        assert_ne!(
            augmentation.draw(42, "a/b.jpg", 1, 224, 224),
            augmentation.draw(43, "a/b.jpg", 1, 224, 224)
        );
        assert_ne!(
            augmentation.draw(42, "a/b.jpg", 1, 224, 224),
            augmentation.draw(42, "a/c.jpg", 1, 224, 224)
        );
    }

    /// Draws of [`ALGORITHM_VERSION`] 1, to the last bit. If this fails after an upgrade (of
    /// `rand`, `rand_chacha` or this code), caches of version 1 must not be extended with the new
    /// draws: raise [`ALGORITHM_VERSION`] and pin the new draws here.
    #[test]
    fn draws_are_pinned_for_this_algorithm_version() {
        assert_eq!(ALGORITHM_VERSION, 1);
        let augmentation = Augmentation::default();
        let drawn: Vec<String> = [(0, "ant/1.jpg", 1, 256, 256), (7, "b/x.png", 3, 200, 300)]
            .iter()
            .map(|&(seed, path, variant, height, width)| {
                format!("{:?}", augmentation.draw(seed, path, variant, height, width))
            })
            .collect();
        assert_eq!(drawn, PINNED_DRAWS);
    }

    const PINNED_DRAWS: [&str; 2] = [
        "Transform { theta_degrees: 9.200095984238885, tx: -48.450913495087185, \
         ty: -42.02857780463481, shear_degrees: -0.14465568203383825, zx: 1.105466302729585, \
         zy: 0.9232856891472974, flip_horizontal: false, flip_vertical: false }",
        "Transform { theta_degrees: -18.418470667081355, tx: 12.918093651457562, \
         ty: 43.1013559941658, shear_degrees: 0.0922563336442358, zx: 0.8778375679070898, \
         zy: 1.1928997054594843, flip_horizontal: false, flip_vertical: false }",
    ];
}
