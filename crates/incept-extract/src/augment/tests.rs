//! Tests of the draws and of the affine transform.

use super::*;
use crate::image_io::to_network_input;

#[test]
fn the_json_description_reads_back_as_the_same_parameters() {
    let augmentation =
        Augmentation { rotation_range_degrees: 12.5, zoom_min: 0.7, ..Augmentation::default() };
    assert_eq!(Augmentation::from_json(&augmentation.to_json()), Some(augmentation));
    assert_eq!(Augmentation::from_json("{\"enabled\":false}"), None);
}

fn gradient(size: u32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 17]))
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
    assert_eq!(serde_json::from_str::<Augmentation>(&flipping_form).ok(), Some(flipping.clone()));
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
     zy: 0.9232856891472974, flip_horizontal: false, flip_vertical: false, \
     channel_shift: 0.0, brightness: None }",
    "Transform { theta_degrees: -18.418470667081355, tx: 12.918093651457562, \
     ty: 43.1013559941658, shear_degrees: 0.0922563336442358, zx: 0.8778375679070898, \
     zy: 1.1928997054594843, flip_horizontal: false, flip_vertical: false, \
     channel_shift: 0.0, brightness: None }",
];

#[test]
fn colour_options_leave_the_other_draws_and_the_default_description_as_they_were() {
    let keras = Augmentation::default();
    let colour = Augmentation {
        channel_shift_range: 20.0,
        brightness_range: Some([0.8, 1.2]),
        ..keras.clone()
    };
    for variant in 1..=200 {
        let (plain, coloured) = (
            keras.draw(5, "a/b.jpg", variant, 224, 224),
            colour.draw(5, "a/b.jpg", variant, 224, 224),
        );
        assert_eq!(Transform { channel_shift: 0.0, brightness: None, ..coloured }, plain);
        assert!(coloured.channel_shift.abs() <= 20.0);
        assert!(coloured.brightness.is_some_and(|b| (0.8..=1.2).contains(&b)));
    }
    // Caches and plans made before the options existed describe the same augmentation.
    let description = keras.to_json();
    assert!(!description.contains("channel_shift") && !description.contains("brightness"));
    let plan_form = serde_json::to_string(&keras).expect("serializable");
    assert!(!plan_form.contains("channel_shift") && !plan_form.contains("brightness"));
    let colour_form = serde_json::to_string(&colour).expect("serializable");
    assert_eq!(serde_json::from_str::<Augmentation>(&colour_form).ok(), Some(colour.clone()));
    assert_eq!(Augmentation::from_json(&colour.to_json()), Some(colour));
}

#[test]
fn ranges_that_cannot_be_drawn_from_are_refused_not_drawn() {
    let keras = Augmentation::default();
    assert_eq!(keras.check(), Ok(()));
    let bad = [
        Augmentation { channel_shift_range: -1.0, ..keras.clone() },
        Augmentation { brightness_range: Some([1.2, 0.8]), ..keras.clone() },
        Augmentation { brightness_range: Some([f64::NAN, 1.0]), ..keras.clone() },
        Augmentation { rotation_range_degrees: f64::INFINITY, ..keras.clone() },
        Augmentation { zoom_min: 1.3, ..keras.clone() },
    ];
    for augmentation in bad {
        assert!(augmentation.check().is_err(), "{augmentation:?}");
        // A cache's description holding such ranges (edited by hand) is not read as one.
        assert_eq!(Augmentation::from_json(&augmentation.to_json()), None, "{augmentation:?}");
    }
}
