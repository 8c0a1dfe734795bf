//! `incept predict` against the head applied to the cached features, alone and with TTA.

use super::original_index;
use crate::common::*;
use incept_cache::Cache;
use incept_report::calibration::apply_temperature;

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
    let raw = head.probabilities(features.as_slice().ok_or("layout")?, 1)?;
    // predict gives calibrated probabilities: the run's single-view temperature applied (none
    // here, where every validation photo is right: a degenerate fit, said on stderr).
    let probabilities = match head.temperature(false) {
        Some(temperature) => [apply_temperature(&raw[0], temperature)],
        None => {
            assert!(stderr(&output).contains("has no temperature"), "{}", stderr(&output));
            [raw[0].clone()]
        }
    };
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
        // At the TTA temperature, as predict --tta applies it.
        let mean = head.temperature(true).map_or(mean.clone(), |t| apply_temperature(&mean, t));
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

#[test]
fn min_confidence_answers_uncertain_below_the_calibrated_threshold() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = ambiguous_cache(dir.path())?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &[])?);
    let model = tiny_model();
    let predict = |extra: &[&str]| -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
        let mut args = vec!["predict", path_str(&run_dir), path_str(&data)];
        args.extend(["--model", path_str(&model), "--format", "json"]);
        args.extend(extra);
        let output = ok(run(&args)?);
        stdout(&output).lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
    };
    let top = |line: &serde_json::Value| line["top"][0]["probability"].as_f64().unwrap_or(-1.0);
    let plain = predict(&[])?;
    assert!(plain.iter().all(|line| line.get("uncertain").is_none()));
    // The second-lowest top probability as the threshold: the least sure photos fall below it.
    let mut tops: Vec<f64> = plain.iter().map(top).collect();
    tops.sort_by(f64::total_cmp);
    let threshold =
        *tops.iter().find(|&&p| p > tops[0]).ok_or(format!("one top for all: {tops:?}"))?;
    let judged = predict(&["--min-confidence", &threshold.to_string()])?;
    assert_eq!(judged.len(), plain.len());
    let mut uncertain = 0;
    for (line, before) in judged.iter().zip(&plain) {
        // Still the top classes, the same probabilities; flagged below the threshold.
        assert_eq!(line["top"], before["top"]);
        let flagged = line["uncertain"].as_bool().ok_or("no uncertain key")?;
        assert_eq!(flagged, top(line) < threshold, "{line}");
        uncertain += usize::from(flagged);
    }
    assert!(uncertain > 0 && uncertain < judged.len(), "{uncertain} of {}", judged.len());
    let table = ok(run(&[
        "predict",
        path_str(&run_dir),
        path_str(&data),
        "--model",
        path_str(&tiny_model()),
        "--min-confidence",
        &threshold.to_string(),
    ])?);
    assert_eq!(stdout(&table).lines().filter(|l| l.contains("\tuncertain\t")).count(), uncertain);
    // Not a probability: refused by name.
    let refused =
        run(&["predict", path_str(&run_dir), path_str(&data), "--min-confidence", "1.5"])?;
    assert!(
        !refused.status.success() && stderr(&refused).contains("(0, 1]"),
        "{}",
        stderr(&refused)
    );
    Ok(())
}

#[test]
fn calibration_is_recorded_and_fitted_again_for_a_run_without_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = ambiguous_cache(dir.path())?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    let trained = ok(train(&cache, &run_dir, &config, &[])?);
    assert!(
        stderr(&trained).contains("calibration fitted on the validation photos"),
        "{}",
        stderr(&trained)
    );
    let confusion = |what: &str| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let output = ok(run(&["confusion", path_str(&run_dir), "--format", "json"])?);
        let value: serde_json::Value = serde_json::from_str(&stdout(&output))?;
        Ok(value.get("calibration").cloned().ok_or(format!("{what}: no calibration"))?)
    };
    let recorded = confusion("with calibration.json")?;
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("calibration.json"))?)?;
    assert_eq!(recorded, file);
    let single = &file["single_view"];
    let before = single["expected_calibration_error_before"].as_f64().ok_or("ece")?;
    let after = single["expected_calibration_error_after"].as_f64().ok_or("ece")?;
    // Fitted on these photos, the temperature minimises their negative log-likelihood.
    assert!(
        single["negative_log_likelihood_after"].as_f64()
            <= single["negative_log_likelihood_before"].as_f64(),
        "{single}"
    );
    assert!((0.0..=1.0).contains(&before) && (0.0..=1.0).contains(&after));
    // A run of an earlier incept has no calibration.json: fitted again from predictions.csv
    // (its rounded probabilities), the same temperatures.
    std::fs::remove_file(run_dir.join("calibration.json"))?;
    let derived = confusion("without calibration.json")?;
    for fit in ["single_view", "tta"] {
        let t = |v: &serde_json::Value| v[fit]["temperature"].as_f64().unwrap_or(f64::NAN);
        assert!((t(&derived) - t(&file)).abs() < 1e-3, "{fit}: {derived} against {file}");
    }
    // The held-out figures on another cache (here the training cache itself).
    let held = ok(run(&["confusion", path_str(&run_dir), "--cache", path_str(&cache)])?);
    assert!(stdout(&held).contains("calibration on these"), "{}", stdout(&held));
    Ok(())
}
