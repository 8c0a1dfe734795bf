//! Training on synthetic caches: bad caches refused in one line, big caches streamed.

use std::path::Path;

use crate::common::*;
use incept_cache::{CacheWriter, Dtype, MapShape, Sample, Settings};

/// Writes a cache of random-ish features directly (no backbone), for data-handling tests.
fn synthetic_cache(
    path: &Path,
    classes: &[&str],
    per_class: usize,
    shape: MapShape,
    poison: bool,
) -> TestResult {
    let settings = Settings {
        model_sha256: "synthetic".into(),
        input_size: 224,
        preprocessing: "none".into(),
        augmentation: "{}".into(),
        seed: 0,
        copies: 0,
        dtype: Dtype::F32,
        augmentation_version: 1,
        layer: "mixed_10".into(),
    };
    let mut writer = CacheWriter::open(path, settings, true)?;
    let mut samples = Vec::new();
    for (c, class) in classes.iter().enumerate() {
        for i in 0..per_class {
            let mut features: Vec<f32> = (0..shape.len())
                .map(|k| ((k * 7 + i * 13 + c * 101) % 17) as f32 / 17.0 + c as f32)
                .collect();
            if poison && c == 0 && i == 1 {
                features[3] = f32::NAN;
            }
            samples.push(Sample {
                source: format!("{class}/{i:04}.jpg"),
                class: (*class).into(),
                variant: 0,
                features,
            });
        }
        if samples.len() > 256 {
            writer.write_segment(&samples, shape)?;
            samples.clear();
        }
    }
    writer.write_segment(&samples, shape)?;
    writer.finish()?;
    Ok(())
}

#[test]
fn bad_caches_give_one_line_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_config(dir.path(), "")?;
    let shape = MapShape { height: 2, width: 2, channels: 8 };
    let expect_error = |cache: &Path, extra: &[&str], needle: &str| -> TestResult {
        let run_dir = dir.path().join(format!("run{}", needle.len()));
        let output = train(cache, &run_dir, &config, extra)?;
        let message = stderr(&output);
        assert!(!output.status.success(), "{needle}: succeeded");
        assert!(message.contains(needle), "expected {needle:?} in {message}");
        assert!(!message.contains("panicked"), "{message}");
        Ok(())
    };
    expect_error(&dir.path().join("missing.h5"), &[], "no such feature cache")?;
    let text = dir.path().join("text.h5");
    std::fs::write(&text, b"not hdf5 at all")?;
    expect_error(&text, &[], "cannot read it as HDF5")?;
    let truncated = dir.path().join("truncated.h5");
    synthetic_cache(&truncated, &["a", "b"], 20, shape, false)?;
    let bytes = std::fs::read(&truncated)?;
    std::fs::write(&truncated, &bytes[..bytes.len() / 2])?;
    expect_error(&truncated, &[], "truncated.h5")?;
    let foreign = dir.path().join("foreign.h5");
    {
        hdf5::File::create(&foreign)?.new_dataset::<f32>().shape(4).create("x")?;
    }
    expect_error(&foreign, &[], "not an incept feature cache")?;
    let poisoned = dir.path().join("nan.h5");
    synthetic_cache(&poisoned, &["a", "b"], 20, shape, true)?;
    expect_error(&poisoned, &[], "NaN")?;
    // One photo of class c: the split puts it in validation or training; force "no training".
    let lonely = dir.path().join("lonely.h5");
    synthetic_cache(&lonely, &["a", "b"], 20, shape, false)?;
    let other = dir.path().join("other.h5");
    synthetic_cache(&other, &["a", "z"], 5, shape, false)?;
    expect_error(&lonely, &["--validation-cache", path_str(&other)], "classes differ")?;
    // However large the fraction, the stratified split keeps one photo of each class to train
    // on (3 photos a class: 2 validate, 1 trains).
    let split_all = dir.path().join("all.h5");
    synthetic_cache(&split_all, &["a", "b"], 3, shape, false)?;
    let run_dir = dir.path().join("all-run");
    ok(train(&split_all, &run_dir, &config, &["--validation-split", "0.99"])?);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("metrics.json"))?)?;
    assert_eq!(metrics["per_class"][0]["support"], 2);
    assert_eq!(metrics["per_class"][1]["support"], 2);
    Ok(())
}

#[test]
fn caches_larger_than_the_budget_are_streamed_within_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let shape = MapShape { height: 5, width: 5, channels: 512 }; // 51,200 bytes a sample
    let cache = dir.path().join("big.h5");
    synthetic_cache(&cache, &["a", "b", "c", "d"], 1000, shape, false)?; // 205 MB of features
    let cache_bytes = (4000 * shape.len() * 4) as u64;
    let config = small_config(dir.path(), "")?;
    // Trains one epoch under a 16 MiB budget, checks the peak resident memory, returns stderr.
    let train_within_budget = |run: &str,
                               pooling: &str,
                               flags: &[&str]|
     -> Result<String, Box<dyn std::error::Error>> {
        let run_dir = dir.path().join(run);
        let mut child = incept()
            .args([
                "train-head",
                path_str(&cache),
                "--run-dir",
                path_str(&run_dir),
                "--config",
                path_str(&config),
                "--pooling",
                pooling,
            ])
            .args(["--epochs", "1", "--memory-budget-mib", "16"])
            .args(flags)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        // Peak resident memory (VmHWM), sampled until the process ends.
        let status_path = format!("/proc/{}/status", child.id());
        let mut peak_kib = 0u64;
        while child.try_wait()?.is_none() {
            let status = std::fs::read_to_string(&status_path).unwrap_or_default();
            if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                peak_kib = peak_kib.max(kib);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let output = child.wait_with_output()?;
        let message = stderr(&output);
        assert!(output.status.success(), "{message}");
        let peak = peak_kib * 1024;
        eprintln!(
            "{pooling}: peak resident memory {peak} bytes for a {cache_bytes}-byte cache and a 16 MiB budget"
        );
        assert!(
            peak > 0 && peak < cache_bytes / 2,
            "{pooling}: peak {peak} bytes for a {cache_bytes}-byte cache"
        );
        Ok(message)
    };
    // Maps flattened: the maps themselves are needed, streamed from disk.
    let message = train_within_budget("flatten", "flatten", &[])?;
    assert!(
        message.contains("streaming it from disk") && message.contains("streamed"),
        "{message}"
    );
    // Global average pooling: the averaged maps (8 MB) are loaded instead, nothing streams.
    let message = train_within_budget("gap", "gap", &[])?;
    assert!(!message.contains("streaming it from disk"), "{message}");
    // Bilinear pooling (more than the budget): pooled once into a scratch file beside the run
    // folder, streamed from it, and the file is gone when the run ends.
    let message = train_within_budget("bilinear", "bilinear", &["--no-se"])?;
    assert!(
        message.contains("streaming it from disk")
            && message.contains("pooled features are read from")
            && message.contains(".bilinear.streamed.f32"),
        "{message}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("streamed"))
        .collect();
    assert!(left.is_empty(), "scratch files left: {left:?}");
    Ok(())
}
