//! `incept predict` against the head applied to the cached features, alone and with TTA.

use super::original_index;
use crate::common::*;
use incept_cache::Cache;

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
