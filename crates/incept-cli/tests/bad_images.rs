//! `incept extract` on a data folder holding truncated files: they are skipped by name, not
//! cached half grey, unless `--allow-truncated` asks for PIL's LOAD_TRUNCATED_IMAGES behaviour.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;
use incept_cache::Cache;

/// Deterministic noise, so the encoded files are several KB and a cut loses real content.
fn noisy_photo(side: u32) -> image::RgbImage {
    image::RgbImage::from_fn(side, side, |x, y| {
        let mut h = x.wrapping_mul(0x9E37_79B9) ^ y.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B_3C6D);
        image::Rgb([h as u8, (h >> 8) as u8, (h >> 16) as u8])
    })
}

/// `image` encoded as `format` and cut to a third of its bytes.
fn truncated(image: &image::RgbImage, format: image::ImageFormat) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).map_err(std::io::Error::other)?;
    let mut bytes = bytes.into_inner();
    assert!(bytes.len() > 4_000, "{format:?}: only {} bytes", bytes.len());
    bytes.truncate(bytes.len() / 3);
    Ok(bytes)
}

/// Two classes of good PNGs, plus `ant/cut.jpg` and `bee/cut.png` cut to a third.
fn data_with_truncated_files(root: &Path) -> std::io::Result<()> {
    make_dataset(root, &["ant", "bee"], 2)?;
    let photo = noisy_photo(96);
    std::fs::write(root.join("ant/cut.jpg"), truncated(&photo, image::ImageFormat::Jpeg)?)?;
    std::fs::write(root.join("bee/cut.png"), truncated(&photo, image::ImageFormat::Png)?)?;
    Ok(())
}

fn cached_sources(cache: &Path) -> Result<BTreeSet<String>, Box<dyn std::error::Error>> {
    let cache = Cache::open(cache)?;
    Ok((0..cache.len()).map(|i| cache.source_path(i).to_owned()).collect())
}

const GOOD: [&str; 4] = ["ant/img000.png", "ant/img001.png", "bee/img000.png", "bee/img001.png"];

#[test]
fn truncated_files_are_skipped_by_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    data_with_truncated_files(&data)?;
    let cache = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache, &["--copies", "0"])?);
    let log = stderr(&output);
    for name in ["cut.jpg", "cut.png"] {
        let line = log.lines().find(|line| line.contains(name));
        let line = line.ok_or_else(|| format!("{name} not named in stderr:\n{log}"))?;
        assert!(line.contains("skipped") && line.contains("truncated"), "{line}");
    }
    assert!(log.contains("--allow-truncated"), "{log}");
    assert_eq!(cached_sources(&cache)?, BTreeSet::from(GOOD.map(String::from)));
    Ok(())
}

#[test]
fn allow_truncated_caches_the_truncated_jpeg() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    data_with_truncated_files(&data)?;
    let cache = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache, &["--copies", "0", "--allow-truncated"])?);
    let log = stderr(&output);
    assert!(!log.lines().any(|line| line.contains("cut.jpg")), "{log}");
    // A PNG cannot be decoded in part: still skipped, and the message says why.
    let png_line = log.lines().find(|line| line.contains("cut.png"));
    let png_line = png_line.ok_or_else(|| format!("cut.png not named in stderr:\n{log}"))?;
    assert!(png_line.contains("skipped") && png_line.contains("only JPEGs"), "{png_line}");
    let mut expected = BTreeSet::from(GOOD.map(String::from));
    expected.insert("ant/cut.jpg".to_owned());
    assert_eq!(cached_sources(&cache)?, expected);
    Ok(())
}
