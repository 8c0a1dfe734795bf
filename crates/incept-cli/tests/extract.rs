//! `incept extract` end to end on tiny generated photos and the tiny fixture model.

use std::collections::HashSet;
use std::path::Path;

use crate::common::*;
use incept_cache::Cache;

fn keys(cache: &Cache) -> Vec<(String, i32)> {
    (0..cache.len()).map(|i| (cache.source_path(i).to_owned(), cache.variant[i])).collect()
}

/// Every `step`-th sample of `cache` equals the sample of `reference` with the same
/// (source, variant), wherever each file stores it.
fn assert_same_samples(cache: &Cache, reference: &Cache, step: usize) -> TestResult {
    let by_key: std::collections::HashMap<(String, i32), usize> =
        keys(reference).into_iter().enumerate().map(|(i, key)| (key, i)).collect();
    for (i, key) in keys(cache).into_iter().enumerate().step_by(step) {
        let j = by_key[&key];
        assert_eq!(cache.read_block(i, 1)?, reference.read_block(j, 1)?, "{key:?}");
    }
    Ok(())
}

#[test]
fn builds_a_cache_in_the_documented_format_and_reuses_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["beta", "alpha"], 3)?;
    let cache_path = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache_path, &["--copies", "2", "--seed", "5"])?);
    assert!(stderr(&output).contains("samples/s"), "{}", stderr(&output));

    let cache = Cache::open(&cache_path)?;
    assert_eq!(cache.classes, ["alpha", "beta"]);
    assert_eq!(cache.len(), 2 * 3 * 3);
    assert_eq!((cache.shape.height, cache.shape.width, cache.shape.channels), (5, 5, 2048));
    assert_eq!(cache.sources.len(), 6);
    for i in 0..cache.len() {
        let class = &cache.classes[cache.labels[i] as usize];
        assert!(cache.source_path(i).starts_with(&format!("{class}/")));
    }
    let variants: HashSet<i32> = cache.variant.iter().copied().collect();
    assert_eq!(variants, HashSet::from([0, 1, 2]));
    assert_eq!(cache.settings.copies, 2);
    assert_eq!(cache.settings.seed, 5);
    assert!(cache.settings.augmentation.contains("\"unit\":\"degrees\""));
    assert_eq!(cache.settings.model_sha256, incept_core::sha256_file(&tiny_model())?);
    assert_eq!(cache.settings.layer, "mixed_10");
    assert_eq!(cache.settings.augmentation_version, 1);
    // Augmented copies differ from the original.
    let block = cache.read_block(0, 3)?;
    assert_ne!(block.index_axis(ndarray::Axis(0), 0), block.index_axis(ndarray::Axis(0), 1));

    // Attributes and datasets as h5py would see them.
    let file = hdf5::File::open(&cache_path)?;
    for attribute in [
        "model_sha256",
        "input_size",
        "preprocessing",
        "augmentation",
        "seed",
        "copies",
        "dtype",
        "incept_version",
        "created",
        "compression",
        "augmentation_version",
        "layer",
        "content_id",
        "format_version",
    ] {
        assert!(file.attr(attribute).is_ok(), "missing attribute {attribute}");
    }
    assert_eq!(file.dataset("labels")?.dtype()?.size(), 4);
    // An index: `features` is a virtual dataset over pieces with one compressed chunk a sample,
    // and reads like any dataset.
    let features = file.dataset("features")?;
    assert_eq!(features.layout(), hdf5::dataset::Layout::Virtual);
    let through_vds: ndarray::Array4<f32> = features.read()?;
    assert_eq!(through_vds, cache.read_block(0, cache.len())?);
    let pieces = cache.pieces().ok_or("an index")?;
    let piece = hdf5::File::open(&pieces[0].path)?;
    assert_eq!(piece.dataset("features")?.chunk(), Some(vec![1, 5, 5, 2048]));
    drop((features, file, piece));

    // Rerun: nothing to do. A new photo: only its samples are added.
    let rerun = ok(extract(&data, &cache_path, &["--copies", "2", "--seed", "5"])?);
    assert!(stderr(&rerun).contains(" 0 to extract"), "{}", stderr(&rerun));
    photo(0, 99, 50).save(data.join("alpha/new.png"))?;
    ok(extract(&data, &cache_path, &["--copies", "2", "--seed", "5"])?);
    let grown = Cache::open(&cache_path)?;
    assert_eq!(grown.len(), 21);
    assert_eq!(grown.read_block(0, 18)?, cache.read_block(0, 18)?);
    Ok(())
}

#[test]
fn same_seed_gives_identical_features_whatever_the_batching() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 4)?;
    let first = dir.path().join("one.h5");
    let second = dir.path().join("two.h5");
    ok(extract(&data, &first, &["--copies", "2", "--batch-size", "1", "--threads", "1"])?);
    ok(extract(&data, &second, &["--copies", "2", "--batch-size", "7"])?);
    let (one, two) = (Cache::open(&first)?, Cache::open(&second)?);
    assert_eq!(keys(&one), keys(&two));
    assert_eq!(one.read_block(0, one.len())?, two.read_block(0, two.len())?);
    let third = dir.path().join("three.h5");
    ok(extract(&data, &third, &["--copies", "2", "--seed", "9"])?);
    assert_ne!(Cache::open(&third)?.read_block(1, 1)?, one.read_block(1, 1)?);
    Ok(())
}

#[test]
fn raising_copies_extracts_only_the_new_variants() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 2)?;
    let grown = dir.path().join("grown.h5");
    ok(extract(&data, &grown, &["--copies", "0"])?);
    ok(extract(&data, &grown, &["--copies", "1"])?);
    let more = ok(extract(&data, &grown, &["--copies", "3"])?);
    assert!(stderr(&more).contains(" 8 to extract"), "{}", stderr(&more));
    // A smaller request is already satisfied and keeps the larger count.
    let fewer = ok(extract(&data, &grown, &["--copies", "2"])?);
    assert!(stderr(&fewer).contains(" 0 to extract"), "{}", stderr(&fewer));
    let grown = Cache::open(&grown)?;
    assert_eq!(grown.settings.copies, 3);
    assert!(grown.settings.augmentation.contains("\"unit\":\"degrees\""));

    let direct = dir.path().join("direct.h5");
    ok(extract(&data, &direct, &["--copies", "3"])?);
    let direct = Cache::open(&direct)?;
    assert_eq!(direct.len(), grown.len());
    assert_same_samples(&grown, &direct, 1)
}

#[test]
fn other_settings_are_refused_unless_overwrite() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a"], 2)?;
    let cache = dir.path().join("c.h5");
    ok(extract(&data, &cache, &["--copies", "1"])?);
    let refused = extract(&data, &cache, &["--copies", "1", "--rotation-range", "10"])?;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("augmentation") && message.contains("--overwrite"), "{message}");
    assert_eq!(Cache::open(&cache)?.len(), 4);
    // Vertical flips are a setting of their own: a cache made without them is not grown with.
    let refused = extract(&data, &cache, &["--copies", "2", "--vertical-flip"])?;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("vertical_flip"), "{}", stderr(&refused));
    assert_eq!(Cache::open(&cache)?.len(), 4);
    ok(extract(&data, &cache, &["--copies", "0", "--overwrite", "--dtype", "f16"])?);
    let replaced = Cache::open(&cache)?;
    assert_eq!(replaced.len(), 2);
    assert_eq!(replaced.settings.dtype, incept_cache::Dtype::F16);
    Ok(())
}

#[test]
fn colour_jitter_is_a_setting_and_changes_only_the_augmented_copies() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a"], 2)?;
    let plain = dir.path().join("plain.h5");
    ok(extract(&data, &plain, &["--copies", "1"])?);
    let colour_flags = ["--channel-shift-range", "40", "--brightness-range", "0.5,0.7"];
    // A cache made without them is not grown with them.
    let refused = extract(&data, &plain, &[&["--copies", "2"][..], &colour_flags].concat())?;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("channel_shift_range"), "{}", stderr(&refused));
    let coloured = dir.path().join("coloured.h5");
    ok(extract(&data, &coloured, &[&["--copies", "1"][..], &colour_flags].concat())?);
    let (plain, coloured) = (Cache::open(&plain)?, Cache::open(&coloured)?);
    assert!(coloured.settings.augmentation.contains("\"brightness_range\":{\"value\":[0.5,0.7]"));
    assert!(!plain.settings.augmentation.contains("brightness"));
    let by_key: std::collections::HashMap<(String, i32), usize> =
        keys(&plain).into_iter().enumerate().map(|(i, key)| (key, i)).collect();
    for (i, key) in keys(&coloured).into_iter().enumerate() {
        let same = coloured.read_block(i, 1)? == plain.read_block(by_key[&key], 1)?;
        // The photo itself (variant 0) is never augmented; its copies change.
        assert_eq!(same, key.1 == 0, "{key:?}");
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[test]
fn bad_files_are_skipped_with_warnings_and_never_harm_the_cache() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["good"], 2)?;
    let bad = data.join("bad");
    std::fs::create_dir_all(&bad)?;
    std::fs::create_dir_all(data.join("empty"))?;
    write(&bad.join("zero.jpg"), b"")?;
    let mut jpeg = Vec::new();
    photo(1, 1, 64).write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
    write(&bad.join("truncated.jpg"), &jpeg[..jpeg.len() / 3])?;
    write(&bad.join("text.jpg"), b"this is not a picture")?;
    write(&bad.join("notes.txt"), b"field notes")?;
    // A valid PNG header claiming 20000×20000 pixels: refused by the size cap.
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&20_000u32.to_be_bytes());
    chunk.extend_from_slice(&20_000u32.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut huge = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d".to_vec();
    huge.extend_from_slice(&chunk);
    huge.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    write(&bad.join("huge.png"), &huge)?;
    image::RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9])).save(bad.join("tiny.png"))?;
    image::GrayImage::from_pixel(30, 20, image::Luma([120])).save(bad.join("grey.png"))?;
    image::Rgba32FImage::from_pixel(8, 8, image::Rgba([0.5, 0.2, 0.1, 0.5]))
        .save(bad.join("float.tiff"))
        .ok();
    std::os::unix::fs::symlink(&bad, bad.join("loop"))?;

    let cache = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache, &["--copies", "1"])?);
    let message = stderr(&output);
    for name in ["zero.jpg", "truncated.jpg", "text.jpg", "notes.txt", "huge.png", "loop", "empty"]
    {
        assert!(message.contains(name), "no warning names {name}: {message}");
    }
    assert!(message.contains("skipped 5 unreadable files"), "{message}");
    let cache_read = Cache::open(&cache)?;
    // good: 2 photos; bad: tiny.png, grey.png (+ float.tiff when the encoder wrote it).
    let sources: HashSet<&str> = cache_read.sources.iter().map(String::as_str).collect();
    assert!(sources.contains("bad/tiny.png") && sources.contains("bad/grey.png"), "{sources:?}");
    assert!(!sources.iter().any(|s| s.contains("zero") || s.contains("huge")));
    Ok(())
}

#[test]
fn nothing_extractable_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("a"))?;
    write(&data.join("a/x.jpg"), b"nope")?;
    let output = extract(&data, &dir.path().join("c.h5"), &[])?;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("nothing could be extracted"), "{}", stderr(&output));
    Ok(())
}

#[test]
fn missing_inputs_name_the_fix() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a"], 1)?;
    let cache = dir.path().join("c.h5");
    let no_model = run(&[
        "extract",
        data.to_str().unwrap_or(""),
        "-o",
        cache.to_str().unwrap_or(""),
        "--model",
        "/nonexistent/m.onnx",
    ])?;
    let message = stderr(&no_model);
    assert!(!no_model.status.success() && message.contains("just model"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");

    let no_data = extract(&dir.path().join("nowhere"), &cache, &[])?;
    assert!(stderr(&no_data).contains("data folder not found"), "{}", stderr(&no_data));

    let no_runtime = incept()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["extract", data.to_str().unwrap_or(""), "-o", cache.to_str().unwrap_or("")])
        .args(["--model", tiny_model().to_str().unwrap_or("")])
        .output()?;
    let message = stderr(&no_runtime);
    assert!(!no_runtime.status.success() && message.contains("just setup"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    Ok(())
}

#[test]
fn runs_from_any_folder_finding_the_model_beside_the_binary_or_by_incept_model() -> TestResult {
    let dir = tempfile::tempdir()?;
    make_dataset(&dir.path().join("data"), &["a", "b"], 2)?;
    // Relative paths, from a folder outside the checkout, no --model: the mixed_9 model that
    // `just setup` converted is found from the binary's own project folder.
    let output = ok(incept()
        .current_dir(dir.path())
        .env_remove("INCEPT_MODEL")
        .args(["extract", "data", "-o", "c.h5", "--layer", "mixed_9", "--copies", "0"])
        .output()?);
    assert!(Cache::open(&dir.path().join("c.h5"))?.len() == 4, "{}", stderr(&output));
    // INCEPT_MODEL names the model instead; a wrong one is refused naming it.
    let missing = incept()
        .current_dir(dir.path())
        .env("INCEPT_MODEL", "/nonexistent/model.onnx")
        .args(["extract", "data", "-o", "d.h5", "--copies", "0"])
        .output()?;
    let message = stderr(&missing);
    assert!(!missing.status.success(), "{message}");
    assert!(message.contains("INCEPT_MODEL=/nonexistent/model.onnx"), "{message}");
    // A converted model says which layer it ends at: the mixed_9 one without --layer mixed_9
    // would record maps of mixed_9 as mixed_10's, and is refused.
    let mixed_9 = incept_core::project_root().join(incept_extract::Layer::Mixed9.default_model());
    let wrong_layer = incept()
        .current_dir(dir.path())
        .env("INCEPT_MODEL", &mixed_9)
        .args(["extract", "data", "-o", "e.h5", "--copies", "0"])
        .output()?;
    let message = stderr(&wrong_layer);
    assert!(!wrong_layer.status.success(), "{message}");
    assert!(message.contains("--layer mixed_9"), "{message}");
    assert!(!dir.path().join("e.h5").exists(), "nothing is written");
    let tiny = ok(incept()
        .current_dir(dir.path())
        .env("INCEPT_MODEL", tiny_model())
        .args(["extract", "data", "-o", "d.h5", "--copies", "0"])
        .output()?);
    let cache = Cache::open(&dir.path().join("d.h5"))?;
    assert_eq!(
        cache.settings.model_sha256,
        incept_core::sha256_file(&tiny_model())?,
        "{}",
        stderr(&tiny)
    );
    Ok(())
}

#[test]
fn a_killed_run_resumes_without_losing_or_duplicating_samples() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b", "c"], 40)?;
    let cache = dir.path().join("c.h5");
    let model = tiny_model();
    let args = |extra: &[&str]| {
        let mut command = incept();
        command.args(["extract", data.to_str().unwrap_or(""), "-o", cache.to_str().unwrap_or("")]);
        command.args([
            "--model",
            model.to_str().unwrap_or(""),
            "--copies",
            "3",
            "--batch-size",
            "4",
        ]);
        command.args(["--segment-samples", "8", "--threads", "1"]).args(extra);
        command
    };
    // Kill -9 after some segments are written, mid-run.
    let mut child = args(&[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let parts = dir.path().join("c.h5.parts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let segments = std::fs::read_dir(&parts).map(|d| d.count()).unwrap_or(0);
        if segments >= 3 || child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill()?;
    child.wait()?;
    // The cache, if the run got that far, still opens; segments are whole.
    if cache.exists() {
        Cache::open(&cache)?;
    }
    let resumed = ok(args(&[]).output()?);
    let message = stderr(&resumed);
    let total = 3 * 40 * 4;
    let finished = Cache::open(&cache)?;
    assert_eq!(finished.len(), total, "{message}");
    let unique: HashSet<(String, i32)> = keys(&finished).into_iter().collect();
    assert_eq!(unique.len(), total);
    // And it equals an uninterrupted extraction.
    let clean = dir.path().join("clean.h5");
    ok(extract(&data, &clean, &["--copies", "3"])?);
    assert_same_samples(&finished, &Cache::open(&clean)?, 37)?;
    Ok(())
}
