//! `incept extract` on a data folder with a folder linked twice and names that are not UTF-8.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::common::*;
use incept_cache::Cache;

#[test]
fn linked_folders_and_non_utf8_names_extract_each_photo_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 2)?;
    // One folder outside the data folder, linked twice into class a: not a loop.
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared)?;
    photo(0, 10, 48).save(shared.join("s0.png"))?;
    photo(0, 11, 48).save(shared.join("s1.png"))?;
    std::os::unix::fs::symlink(&shared, data.join("a/link1"))?;
    std::os::unix::fs::symlink(&shared, data.join("a/link2"))?;
    // Two real photos whose names differ only in an invalid byte: a lossy conversion would give
    // both the relative path b/bad\u{FFFD}name.png.
    for bytes in [&b"bad\xffname.png"[..], &b"bad\xfename.png"[..]] {
        let path = data.join("b").join(OsStr::from_bytes(bytes));
        photo(1, 20, 48).save_with_format(&path, image::ImageFormat::Png)?;
    }

    let cache_path = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache_path, &["--copies", "0"])?);
    let message = stderr(&output);
    assert!(!message.contains("symbolic link loop"), "{message}");
    assert_eq!(message.matches("bad\u{FFFD}name.png").count(), 2, "{message}");
    assert_eq!(message.matches("not valid UTF-8").count(), 2, "{message}");
    assert!(message.contains("rename it to UTF-8"), "{message}");
    for name in ["s0.png", "s1.png"] {
        let duplicate = format!(
            "{} is the same file as {}; extracted once, as a/link1/{name}",
            data.join("a/link2").join(name).display(),
            data.join("a/link1").join(name).display()
        );
        assert!(message.contains(&duplicate), "{duplicate} not in {message}");
    }
    assert_eq!(message.matches("is the same file as").count(), 2, "{message}");

    let cache = Cache::open(&cache_path)?;
    let expected: HashSet<&str> = HashSet::from([
        "a/img000.png",
        "a/img001.png",
        "a/link1/s0.png",
        "a/link1/s1.png",
        "b/img000.png",
        "b/img001.png",
    ]);
    let sources: Vec<&str> = (0..cache.len()).map(|i| cache.source_path(i)).collect();
    assert_eq!(sources.len(), expected.len(), "{sources:?}");
    assert_eq!(sources.iter().copied().collect::<HashSet<_>>(), expected);
    assert_eq!(cache.sources.len(), expected.len(), "{:?}", cache.sources);
    assert!(cache.variant.iter().all(|&variant| variant == 0));

    // Nothing is extracted again: no photo was lost to a merged name or counted twice.
    let rerun = ok(extract(&data, &cache_path, &["--copies", "0"])?);
    assert!(stderr(&rerun).contains(" 0 to extract"), "{}", stderr(&rerun));
    assert_eq!(Cache::open(&cache_path)?.len(), expected.len());
    Ok(())
}
