//! Skewed collections: the stratified split, `rebalance` (auto and chosen), `--select`, and the
//! warnings that name small classes.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

/// A data folder with `counts[c]` photos of class `classes[c]`, extracted with the tiny model
/// (2 variants a photo).
fn skewed_cache(
    dir: &Path,
    classes: &[&str],
    counts: &[usize],
) -> Result<(PathBuf, Output), Box<dyn std::error::Error>> {
    let data = dir.join("data");
    for (c, (class, &count)) in classes.iter().zip(counts).enumerate() {
        std::fs::create_dir_all(data.join(class))?;
        for i in 0..count {
            let path = data.join(class).join(format!("img{i:03}.png"));
            photo(c, i, 40 + (i as u32 % 3) * 20).save(&path)?;
        }
    }
    let cache = dir.join("skewed.h5");
    let output = ok(extract(&data, &cache, &["--copies", "1"])?);
    Ok((cache, output))
}

fn read(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

fn run_json(run: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&read(&run.join("run.json"))?)?)
}

/// Each epoch's validation loss, as `metrics.csv` holds it.
fn validation_losses(run: &Path) -> std::io::Result<Vec<String>> {
    Ok(read(&run.join("metrics.csv"))?
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(3).unwrap_or_default().to_owned())
        .collect())
}

#[test]
fn a_skewed_cache_is_split_per_class_and_rebalanced_by_default() -> TestResult {
    let dir = tempfile::tempdir()?;
    // 50 photos against 4: 40 against 3 train, past 10:1.
    let (cache, extracted) = skewed_cache(dir.path(), &["ant", "bee"], &[50, 4])?;
    let warning = stderr(&extracted);
    assert!(warning.contains("\"bee\" has only 4 photos"), "{warning}");
    assert!(!warning.contains("\"ant\""), "{warning}");
    let config = small_config(dir.path(), "")?;

    let auto = dir.path().join("auto");
    let output = ok(train(&cache, &auto, &config, &[])?);
    let message = stderr(&output);
    assert!(message.contains("skewed classes: ant has 40 training photos, bee 3"), "{message}");
    assert!(message.contains("rebalance = \"balanced\""), "{message}");
    assert!(message.contains("\"bee\" has only 4 photos (3 train, 1 validate)"), "{message}");
    // A cross-validation warns once, not once per fold and refit.
    let folds = dir.path().join("folds");
    let output = ok(train(&cache, &folds, &config, &["--folds", "2", "--refit", "--epochs", "1"])?);
    assert_eq!(
        stderr(&output).matches("\"bee\" has only 4 photos").count(),
        1,
        "{}",
        stderr(&output)
    );
    // Saved resolved, and every class validates: round(0.2·50) = 10 and 1 of 4.
    assert!(read(&auto.join("config.toml"))?.contains("rebalance = \"balanced\""));
    let metrics: serde_json::Value = serde_json::from_str(&read(&auto.join("metrics.json"))?)?;
    let support: Vec<u64> = metrics["per_class"]
        .as_array()
        .ok_or("no per_class")?
        .iter()
        .filter_map(|class| class["support"].as_u64())
        .collect();
    assert_eq!(support, [10, 1]);

    // The weights change what is learnt; asking for them by name is what auto did.
    let none = dir.path().join("none");
    ok(train(&cache, &none, &config, &["--rebalance", "none"])?);
    assert_ne!(validation_losses(&auto)?, validation_losses(&none)?);
    let balanced = dir.path().join("balanced");
    ok(train(&cache, &balanced, &config, &["--rebalance", "balanced"])?);
    assert_eq!(validation_losses(&auto)?, validation_losses(&balanced)?);
    for choice in ["sqrt", "logit-adjusted"] {
        let other = dir.path().join(choice);
        ok(train(&cache, &other, &config, &["--rebalance", choice])?);
        assert!(read(&other.join("config.toml"))?.contains(&format!("rebalance = \"{choice}\"")));
        assert_ne!(validation_losses(&other)?, validation_losses(&none)?, "{choice}");
    }

    // A rebalanced run stopped after its first epoch resumes to the uninterrupted run.
    let split = dir.path().join("split");
    ok(train(&cache, &split, &config, &["--epochs", "1"])?);
    let resumed = ok(train(&cache, &split, &config, &["--resume", "--epochs", "3"])?);
    assert!(stderr(&resumed).contains("resuming"), "{}", stderr(&resumed));
    assert_eq!(validation_losses(&auto)?, validation_losses(&split)?);
    // Another choice on resume is refused, naming the flag.
    let refused = train(&cache, &split, &config, &["--resume", "--rebalance", "sqrt"])?;
    assert!(!refused.status.success() && stderr(&refused).contains("--rebalance"));
    Ok(())
}

#[test]
fn a_balanced_cache_trains_as_without_rebalancing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (cache, extracted) = skewed_cache(dir.path(), &["ant", "bee", "cricket"], &[24, 22, 20])?;
    assert!(!stderr(&extracted).contains("has only"), "{}", stderr(&extracted));
    let config = small_config(dir.path(), "")?;
    let auto = dir.path().join("auto");
    let output = ok(train(&cache, &auto, &config, &[])?);
    assert!(!stderr(&output).contains("skewed"), "{}", stderr(&output));
    assert!(read(&auto.join("config.toml"))?.contains("rebalance = \"none\""));
    let none = dir.path().join("none");
    ok(train(&cache, &none, &config, &["--rebalance", "none"])?);
    assert_eq!(validation_losses(&auto)?, validation_losses(&none)?);
    Ok(())
}

#[test]
fn select_picks_the_best_epoch_by_the_named_figure() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (cache, _) = skewed_cache(dir.path(), &["ant", "bee", "cricket"], &[30, 12, 6])?;
    let config = small_config_with(dir.path(), 6, "")?;
    for (select, field) in [
        ("loss", "validation_loss"),
        ("balanced-accuracy", "validation_balanced_accuracy"),
        ("macro-f1", "validation_macro_f1"),
    ] {
        let run = dir.path().join(select);
        ok(train(&cache, &run, &config, &["--select", select])?);
        let state = run_json(&run)?;
        let epochs = state["epochs"].as_array().ok_or("no epochs")?;
        let figure = |record: &serde_json::Value| record[field].as_f64().unwrap_or(f64::NAN);
        let loss = |record: &serde_json::Value| record["validation_loss"].as_f64().unwrap_or(0.0);
        // The first epoch with the best figure, ties to the lower loss.
        let mut expected = &epochs[0];
        for record in epochs {
            let better = if select == "loss" {
                figure(record) < figure(expected)
            } else {
                figure(record) > figure(expected)
                    || (figure(record) == figure(expected) && loss(record) < loss(expected))
            };
            if better {
                expected = record;
            }
        }
        assert_eq!(state["best_epoch"], expected["epoch"], "{select}: {epochs:?}");
        assert!(read(&run.join("config.toml"))?.contains(&format!("select = \"{select}\"")));
    }
    Ok(())
}
