//! `train-head --folds K [--refit]`: every photo validated once, the pooled figures read by
//! `confusion`, `runs` and `compare`, a refit for `predict`, bad fold counts refused.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::*;

/// The photos of a predictions.csv, in file order.
fn photos_of(predictions: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(std::fs::read_to_string(predictions)?
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap_or_default().to_owned())
        .collect())
}

#[test]
fn cross_validation_judges_every_photo_once_and_refits_for_predict() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config_with(dir.path(), 2, "")?;
    let cv = dir.path().join("cv");
    let output = ok(train(&cache, &cv, &config, &["--folds", "3"])?);
    let summary = stderr(&output);
    assert!(
        summary.contains("3-fold cross-validation, every photo validated once (30 photos)"),
        "{summary}"
    );
    assert!(summary.contains("add --refit --resume"), "{summary}");

    // The folds partition the photos; the pooled file holds each once.
    let mut seen = BTreeSet::new();
    for fold in 1..=3 {
        for photo in photos_of(&cv.join(format!("folds/fold-{fold}/predictions.csv")))? {
            assert!(seen.insert(photo.clone()), "{photo} validated in two folds");
        }
    }
    assert_eq!(seen.len(), 30);
    let pooled = photos_of(&cv.join("predictions.csv"))?;
    assert_eq!(pooled.iter().cloned().collect::<BTreeSet<_>>(), seen);
    assert_eq!(pooled.len(), 30);
    // Fold 1 validates on the photos one run's stratified split of 1/K holds out.
    let plain = dir.path().join("plain");
    ok(train(&cache, &plain, &config, &["--validation-split", "0.3333333333"])?);
    let mut fold_one = photos_of(&cv.join("folds/fold-1/predictions.csv"))?;
    let mut held_out = photos_of(&plain.join("predictions.csv"))?;
    fold_one.sort();
    held_out.sort();
    assert_eq!(fold_one, held_out);

    // confusion and runs read the pooled figures.
    let json = stdout(&ok(run(&["confusion", path_str(&cv), "--format", "json"])?));
    let json: serde_json::Value = serde_json::from_str(&json)?;
    let total: u64 = json["matrix"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r.as_array().into_iter().flatten())
        .filter_map(|c| c.as_u64())
        .sum();
    assert_eq!(total, 30, "{json}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cv.join("run.json"))?)?;
    assert_eq!(state["cross_validation"]["fold_results"].as_array().map(Vec::len), Some(3));
    let listing = stdout(&ok(run(&["runs", path_str(dir.path())])?));
    let line =
        listing.lines().find(|l| l.starts_with("cv ")).ok_or(format!("no cv line: {listing}"))?;
    assert!(line.contains("3-fold folds "), "{listing}");

    // Two cross-validations of one cache compare on every photo.
    let other = dir.path().join("cv-seed-5");
    ok(train(&cache, &other, &config, &["--folds", "3", "--seed", "5"])?);
    let compared = stdout(&ok(run(&["compare", path_str(&cv), path_str(&other)])?));
    assert!(compared.starts_with("30 validation photos, the same in every run"), "{compared}");
    // A cross-validation against a run of one split: other photos, refused.
    assert!(!run(&["compare", path_str(&cv), path_str(&plain)])?.status.success());

    // No head was trained on every photo: predict refuses, saying how to get one.
    let photo = data.join("ant/img000.png");
    let model = tiny_model();
    let refused = run(&["predict", path_str(&cv), path_str(&photo), "--model", path_str(&model)])?;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--refit --resume"), "{}", stderr(&refused));
    // --refit --resume trains it (the folds are not trained again) and predict uses it.
    let refit = ok(train(&cache, &cv, &config, &["--folds", "3", "--refit", "--resume"])?);
    let said = stderr(&refit);
    assert!(!said.contains("fold 1/3:"), "the finished folds trained again: {said}");
    assert!(said.contains("refit on every photo for "), "{said}");
    let refit_state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cv.join("refit/run.json"))?)?;
    let best: Vec<u64> = state["cross_validation"]["fold_results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["best_epoch"].as_u64())
        .collect();
    let mut sorted = best.clone();
    sorted.sort_unstable();
    assert_eq!(refit_state["completed_epochs"].as_u64(), Some(sorted[1]), "the median best epoch");
    let predicted = stdout(&ok(run(&[
        "predict",
        path_str(&cv),
        path_str(&photo),
        "--model",
        path_str(&model),
        "--format",
        "json",
    ])?));
    assert!(predicted.contains("\"top\""), "{predicted}");
    Ok(())
}

#[test]
fn fold_counts_a_class_cannot_fill_are_refused_before_anything_is_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 4)?;
    let config = small_config_with(dir.path(), 1, "")?;
    let cv = dir.path().join("cv");
    let refused = train(&cache, &cv, &config, &["--folds", "5"])?;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("has 4 photos, fewer than --folds 5"), "{message}");
    assert!(message.contains("use --folds 4 or fewer"), "{message}");
    assert!(!cv.exists(), "a refused cross-validation wrote its folder");
    let message = stderr(&train(&cache, &cv, &config, &["--folds", "1"])?);
    assert!(message.contains("folds must be at least 2"), "{message}");
    // --refit alone has nothing to follow.
    let message = stderr(&train(&cache, &cv, &config, &["--refit"])?);
    assert!(message.contains("--refit follows a cross-validation"), "{message}");
    // A split fraction has no meaning beside folds: refused, not ignored.
    let message =
        stderr(&train(&cache, &cv, &config, &["--folds", "2", "--validation-split", "0.3"])?);
    assert!(message.contains("drop --validation-split"), "{message}");
    assert!(!cv.exists());
    Ok(())
}
