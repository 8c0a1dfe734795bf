//! `incept train-head`, `runs`, `confusion` and `predict` end to end on tiny caches.

use std::path::Path;

use crate::common::*;
use incept_cache::{Cache, CacheWriter, Dtype, MapShape, Sample, Settings};

/// Where the cache stores variant 0 (the photo itself) of `source`.
fn original_index(cache: &incept_cache::Cache, source: &str) -> Result<usize, &'static str> {
    (0..cache.len())
        .find(|&i| cache.source_path(i) == source && cache.variant[i] == 0)
        .ok_or("photo not in cache")
}

#[test]
fn trains_writes_the_run_folder_and_is_reproducible() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config(dir.path(), "")?;
    let first = dir.path().join("runs/first");
    let output = ok(train(&cache, &first, &config, &["--seed", "3"])?);
    assert!(stderr(&output).contains("epoch   3/3"), "{}", stderr(&output));
    for file in [
        "config.toml",
        "run.json",
        "best.bpk",
        "last.bpk",
        "metrics.csv",
        "metrics.json",
        "predictions.csv",
    ] {
        assert!(first.join(file).exists(), "missing {file}");
    }
    let csv = std::fs::read_to_string(first.join("metrics.csv"))?;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,seconds")
    );
    assert_eq!(lines.count(), 3);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("metrics.json"))?)?;
    assert_eq!(metrics["classes"], serde_json::json!(["ant", "bee", "cricket"]));
    // Validated with TTA (the default): the photo-alone accuracy is recorded beside it.
    let single = metrics["single_view_accuracy"].as_f64().ok_or("no single_view_accuracy")?;
    assert!((0.0..=1.0).contains(&single), "{single}");
    let predictions = std::fs::read_to_string(first.join("predictions.csv"))?;
    assert!(
        predictions.starts_with("source,label,predicted,p_ant,p_bee,p_cricket\n"),
        "{predictions}"
    );
    // The resolved config records the flag.
    assert!(std::fs::read_to_string(first.join("config.toml"))?.contains("seed = 3"));

    // Same seed, same numbers (CPU backend).
    let second = dir.path().join("runs/second");
    ok(train(&cache, &second, &config, &["--seed", "3"])?);
    let columns = |path: &Path| -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_to_string(path.join("metrics.csv"))?
            .lines()
            .map(|l| l.rsplit_once(',').map_or(l, |(a, _)| a).to_owned())
            .collect())
    };
    assert_eq!(columns(&first)?, columns(&second)?);

    // A run folder is never overwritten by accident.
    let again = train(&cache, &first, &config, &[])?;
    assert!(!again.status.success() && stderr(&again).contains("--resume"), "{}", stderr(&again));

    // `runs` lists both, from the cache or the folder.
    let listing =
        ok(run(&["runs", path_str(&cache), "--runs-dir", path_str(&dir.path().join("runs"))])?);
    let text = stdout(&listing);
    assert!(text.contains("first") && text.contains("second") && text.contains("gap"), "{text}");
    let listing = ok(run(&["runs", path_str(&dir.path().join("runs"))])?);
    assert_eq!(stdout(&listing).lines().count(), 3);
    assert!(!stdout(&listing).contains('*'), "{}", stdout(&listing));

    // The cache grows by a copy: both runs trained on its earlier content, and `runs` says so.
    ok(extract(&data, &cache, &["--copies", "2"])?);
    let listing =
        ok(run(&["runs", path_str(&cache), "--runs-dir", path_str(&dir.path().join("runs"))])?);
    let text = stdout(&listing);
    assert!(text.contains("first*") && text.contains("second*"), "{text}");
    assert!(stderr(&listing).contains("earlier content"), "{}", stderr(&listing));
    Ok(())
}

#[test]
fn an_interrupted_run_resumes_to_the_same_result() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 8)?;
    let config = small_config(dir.path(), "")?;
    let whole = dir.path().join("whole");
    ok(train(&cache, &whole, &config, &[])?);
    // Stop after the first epoch (as Ctrl-C would after it finished), then resume.
    let split = dir.path().join("split");
    ok(train(&cache, &split, &config, &["--epochs", "1"])?);
    let resumed = ok(train(&cache, &split, &config, &["--resume", "--epochs", "3"])?);
    assert!(stderr(&resumed).contains("resuming"), "{}", stderr(&resumed));
    let losses = |path: &Path| -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_to_string(path.join("metrics.csv"))?
            .lines()
            .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
            .collect())
    };
    assert_eq!(losses(&whole)?, losses(&split)?);
    Ok(())
}

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
    let split_all = dir.path().join("all.h5");
    synthetic_cache(&split_all, &["a", "b"], 3, shape, false)?;
    expect_error(&split_all, &["--validation-split", "0.99"], "has no training photo")?;
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
                               pooling: &str|
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
    let message = train_within_budget("flatten", "flatten")?;
    assert!(
        message.contains("streaming it from disk") && message.contains("streamed"),
        "{message}"
    );
    // Global average pooling: the averaged maps (8 MB) are loaded instead, nothing streams.
    let message = train_within_budget("gap", "gap")?;
    assert!(!message.contains("streaming it from disk"), "{message}");
    Ok(())
}

#[test]
fn confusion_renders_and_evaluates_other_caches() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &[])?);

    let table = stdout(&ok(run(&["confusion", path_str(&run_dir)])?));
    assert!(
        table.contains("precision") && table.contains("cricket") && table.contains("accuracy"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&ok(run(&[
        "confusion",
        path_str(&run_dir),
        "--format",
        "json",
    ])?)))?;
    for key in ["classes", "matrix", "accuracy", "macro_f1", "weighted_f1", "per_class"] {
        assert!(json.get(key).is_some(), "json lacks {key}");
    }
    for key in ["class", "precision", "recall", "f1", "support"] {
        assert!(json["per_class"][0].get(key).is_some(), "per_class lacks {key}");
    }
    let csv = stdout(&ok(run(&["confusion", path_str(&run_dir), "--format", "csv"])?));
    assert!(csv.starts_with("true\\predicted,ant,bee,cricket\n"), "{csv}");

    let png = dir.path().join("m.png");
    ok(run(&["confusion", path_str(&run_dir), "--plot", path_str(&png)])?);
    assert!(std::fs::read(&png)?.starts_with(b"\x89PNG"));
    let svg = dir.path().join("m.svg");
    ok(run(&["confusion", path_str(&run_dir), "--plot", path_str(&svg)])?);
    assert!(std::fs::read_to_string(&svg)?.contains("<svg"));

    // Evaluate on a separate cache (with TTA), and refuse unknown classes.
    let test_cache = dir.path().join("test.h5");
    ok(extract(&data, &test_cache, &["--copies", "1", "--seed", "4"])?);
    let evaluated: serde_json::Value = serde_json::from_str(&stdout(&ok(run(&[
        "confusion",
        path_str(&run_dir),
        "--cache",
        path_str(&test_cache),
        "--tta",
        "--format",
        "json",
    ])?)))?;
    let total: u64 = evaluated["matrix"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_array().into_iter().flatten())
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(total, 30);
    let strange = dir.path().join("strange");
    make_dataset(&strange, &["ant", "wasp"], 2)?;
    let strange_cache = dir.path().join("strange.h5");
    ok(extract(&strange, &strange_cache, &["--no-augment"])?);
    let refused = run(&["confusion", path_str(&run_dir), "--cache", path_str(&strange_cache)])?;
    assert!(
        !refused.status.success() && stderr(&refused).contains("\"wasp\""),
        "{}",
        stderr(&refused)
    );
    Ok(())
}

#[test]
fn predict_agrees_with_the_cached_features() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &[])?);
    let photo = data.join("bee/img004.png");
    std::fs::write(dir.path().join("broken.jpg"), b"broken")?;
    let output = ok(run(&[
        "predict",
        path_str(&run_dir),
        path_str(&photo),
        path_str(&dir.path().join("broken.jpg")),
        "--model",
        path_str(&tiny_model()),
        "--format",
        "json",
        "--top-k",
        "3",
    ])?);
    assert!(stderr(&output).contains("broken.jpg"), "{}", stderr(&output));
    let line: serde_json::Value =
        serde_json::from_str(stdout(&output).lines().next().unwrap_or(""))?;
    let top = line["top"].as_array().ok_or("no top")?;
    assert_eq!(top.len(), 3);

    // The head applied to variant 0 of the same photo in the cache.
    let head = incept_head::TrainedHead::load(&run_dir, incept_head::Backend::default())?;
    let cached = incept_cache::Cache::open(&cache)?;
    let index = original_index(&cached, "bee/img004.png")?;
    let features = cached.read_block(index, 1)?;
    let probabilities = head.probabilities(features.as_slice().ok_or("layout")?, 1)?;
    let classes = head.classes();
    for entry in top {
        let class = entry["class"].as_str().ok_or("class")?;
        let p = entry["probability"].as_f64().ok_or("p")?;
        let position = classes.iter().position(|c| c == class).ok_or("unknown class")?;
        assert!(
            (probabilities[0][position] - p).abs() < 1e-4,
            "{class}: {p} vs {}",
            probabilities[0][position]
        );
    }
    // A folder works too, in table form.
    let folder = ok(run(&[
        "predict",
        path_str(&run_dir),
        path_str(&data.join("ant")),
        "--model",
        path_str(&tiny_model()),
    ])?);
    assert_eq!(stdout(&folder).lines().count(), 10);
    // Without --model, the backbone is looked for among the converted models by the sha256 the
    // run recorded; none of them is the tiny one, and the error says so and what to do.
    let models = incept_core::project_root().join("models");
    let refused = incept()
        .current_dir(models.parent().unwrap_or(&models))
        .args(["predict", path_str(&run_dir), path_str(&data.join("ant"))])
        .output()?;
    let message = stderr(&refused);
    assert!(!refused.status.success(), "{message}");
    assert!(message.contains("no converted model is the backbone"), "{message}");
    assert!(
        message.contains("inception_v3_mixed_9.onnx") && message.contains("--model"),
        "{message}"
    );
    Ok(())
}

#[test]
fn an_ensemble_is_saved_whole_and_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config(dir.path(), "ensemble = 2\n")?;
    let run_dir = dir.path().join("ensemble");
    ok(train(&cache, &run_dir, &config, &["--no-tta"])?);
    assert!(std::fs::read_to_string(run_dir.join("config.toml"))?.contains("ensemble = 2"));
    let listing = ok(run(&["runs", path_str(dir.path())])?);
    assert!(stdout(&listing).contains("×2"), "{}", stdout(&listing));

    // The probabilities saved for each validation photo are those of the reloaded ensemble.
    let head = incept_head::TrainedHead::load(&run_dir, incept_head::Backend::default())?;
    let cached = incept_cache::Cache::open(&cache)?;
    let predictions = std::fs::read_to_string(run_dir.join("predictions.csv"))?;
    let mut checked = 0;
    for line in predictions.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let index = original_index(&cached, fields[0])?;
        let features = cached.read_block(index, 1)?;
        let probabilities = head.probabilities(features.as_slice().ok_or("layout")?, 1)?;
        let sum: f64 = probabilities[0].iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        for (saved, loaded) in fields[3..].iter().zip(&probabilities[0]) {
            let saved: f64 = saved.parse()?;
            assert!((saved - loaded).abs() < 1e-4, "{line}: {saved} vs {loaded}");
        }
        checked += 1;
    }
    assert!(checked > 0);
    Ok(())
}

#[test]
fn weights_of_another_head_are_refused_with_the_fix() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 6)?;
    let small = small_config(dir.path(), "")?;
    let other = small_config(dir.path(), "ensemble = 2\n")?;
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    ok(train(&cache, &first, &small, &[])?);
    ok(train(&cache, &second, &other, &[])?);
    std::fs::copy(second.join("best.bpk"), first.join("best.bpk"))?;
    let refused = run(&["confusion", path_str(&first), "--cache", path_str(&cache)])?;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("best.bpk") && message.contains("trained again"), "{message}");
    Ok(())
}

#[test]
fn predict_with_tta_averages_the_views_the_cache_holds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 6)?;
    let cache = dir.path().join("c.h5");
    ok(extract(&data, &cache, &["--copies", "2", "--seed", "9"])?);
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &[])?);
    // The folder the cache was made from: each photo's key is its path relative to it.
    let output = ok(run(&[
        "predict",
        path_str(&run_dir),
        path_str(&data),
        "--model",
        path_str(&tiny_model()),
        "--format",
        "json",
        "--top-k",
        "3",
        "--tta",
        "2",
    ])?);
    let head = incept_head::TrainedHead::load(&run_dir, incept_head::Backend::default())?;
    let cached = Cache::open(&cache)?;
    let mut largest: f64 = 0.0;
    for line in stdout(&output).lines() {
        let line: serde_json::Value = serde_json::from_str(line)?;
        let path = std::path::PathBuf::from(line["path"].as_str().ok_or("path")?);
        let relative = path.strip_prefix(&data)?.to_string_lossy().into_owned();
        // The head's mean over the cached variants 0, 1, 2 of that photo.
        let rows: Vec<usize> =
            (0..cached.len()).filter(|&i| cached.source_path(i) == relative).collect();
        assert_eq!(rows.len(), 3, "{relative}");
        let mut mean = vec![0.0; head.classes().len()];
        for &row in &rows {
            let features = cached.read_block(row, 1)?;
            let p = head.probabilities(features.as_slice().ok_or("layout")?, 1)?;
            for (sum, value) in mean.iter_mut().zip(&p[0]) {
                *sum += value / 3.0;
            }
        }
        for entry in line["top"].as_array().ok_or("top")? {
            let class = entry["class"].as_str().ok_or("class")?;
            let position = head.classes().iter().position(|c| c == class).ok_or("class")?;
            let difference = (mean[position] - entry["probability"].as_f64().ok_or("p")?).abs();
            largest = largest.max(difference);
        }
    }
    eprintln!("predict --tta 2 against the cached TTA: largest difference {largest:.2e}");
    assert!(largest < 1e-4, "{largest}");
    Ok(())
}
