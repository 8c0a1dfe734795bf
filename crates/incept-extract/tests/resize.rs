//! `resize_bilinear` against PIL's `Image.resize((224, 224), Image.BILINEAR)`, byte for byte,
//! on the inputs and outputs in tests/fixtures/pil_resize (made by models/make_resize_fixture.py).

use std::path::PathBuf;

use image::RgbImage;
use incept_extract::resize_bilinear;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pil_resize")
}

fn load(name: &str) -> Result<RgbImage, Box<dyn std::error::Error>> {
    let path = fixture_dir().join(name);
    let image = image::open(&path).map_err(|e| {
        format!("{}: {e}; regenerate with models/make_resize_fixture.py", path.display())
    })?;
    Ok(image.to_rgb8())
}

/// Resizes `NAME_in.png` to 224×224 and compares it with PIL's `NAME_out.png`.
fn matches_pil(name: &str, input_size: (u32, u32)) -> TestResult {
    let input = load(&format!("{name}_in.png"))?;
    let expected = load(&format!("{name}_out.png"))?;
    assert_eq!(input.dimensions(), input_size, "{name}: input size");
    assert_eq!(expected.dimensions(), (224, 224), "{name}: PIL output size");
    let ours = resize_bilinear(&input, 224, 224);
    assert_eq!(ours.dimensions(), (224, 224), "{name}: our output size");
    let differences: Vec<u8> =
        ours.as_raw().iter().zip(expected.as_raw()).map(|(a, b)| a.abs_diff(*b)).collect();
    let differing = differences.iter().filter(|&&d| d != 0).count();
    let largest = differences.iter().copied().max().unwrap_or(0);
    assert_eq!(
        differing,
        0,
        "{name}: {differing} of {} bytes differ from PIL's, by up to {largest} grey levels",
        differences.len()
    );
    Ok(())
}

#[test]
fn downscale_in_both_axes_matches_pil() -> TestResult {
    matches_pil("down_256x240", (256, 240))
}

#[test]
fn downscale_in_x_upscale_in_y_matches_pil() -> TestResult {
    matches_pil("mixed_300x160", (300, 160))
}

#[test]
fn upscale_in_both_axes_matches_pil() -> TestResult {
    matches_pil("up_37x23", (37, 23))
}
