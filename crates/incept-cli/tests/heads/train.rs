//! `incept train-head` and `runs`: the run folder, reproducibility, resuming and ensembles.

use std::path::Path;

use super::original_index;
use crate::common::*;

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
        Some(
            "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,validation_balanced_accuracy,validation_macro_f1,seconds"
        )
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
        predictions
            .starts_with("source,label,predicted,p_ant,p_bee,p_cricket,single_view_predicted,single_view_p_ant,single_view_p_bee,single_view_p_cricket\n"),
        "{predictions}"
    );
    // The single-view column agrees with metrics.json's single-view accuracy.
    let rows: Vec<Vec<&str>> =
        predictions.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let right = rows.iter().filter(|r| r[1] == r[6]).count();
    assert!((right as f64 / rows.len() as f64 - single).abs() < 1e-9, "{predictions}");
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
    // A bilinear run resumes with the projection its weights hold; a mixup run blends its
    // batches again as the uninterrupted run did.
    for (name, config) in [
        ("gap", small_config(dir.path(), "")?),
        ("bilinear", bilinear_config(dir.path(), "")?),
        ("mixup", mixup_config(dir.path(), "0.4")?),
    ] {
        let whole = dir.path().join(format!("{name}-whole"));
        ok(train(&cache, &whole, &config, &[])?);
        // Stop after the first epoch (as Ctrl-C would after it finished), then resume.
        let split = dir.path().join(format!("{name}-split"));
        ok(train(&cache, &split, &config, &["--epochs", "1"])?);
        let resumed = ok(train(&cache, &split, &config, &["--resume", "--epochs", "3"])?);
        assert!(stderr(&resumed).contains("resuming"), "{}", stderr(&resumed));
        assert_eq!(losses(&whole)?, losses(&split)?, "{name}");
    }
    // Mixup changes what the head learns from.
    let (plain, mixed) =
        (losses(&dir.path().join("gap-whole"))?, losses(&dir.path().join("mixup-whole"))?);
    assert_eq!(plain.len(), mixed.len());
    assert_ne!(plain[1..], mixed[1..]);
    Ok(())
}

#[test]
fn a_mixup_alpha_out_of_range_is_refused_naming_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 2)?;
    let run_dir = dir.path().join("run");
    let output = train(&cache, &run_dir, &mixup_config(dir.path(), "-0.5")?, &[])?;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("mixup_alpha -0.5"), "{}", stderr(&output));
    assert!(!run_dir.exists(), "a refused run left a folder");
    Ok(())
}

/// [`small_config`] with mixup at `alpha`.
fn mixup_config(dir: &Path, alpha: &str) -> std::io::Result<std::path::PathBuf> {
    let config = small_config(dir, "")?;
    let text = format!("mixup_alpha = {alpha}\n{}", std::fs::read_to_string(&config)?);
    let path = config.with_extension(format!("mixup{alpha}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// The epoch, loss and accuracy columns of a run's metrics.csv (its times differ run to run).
fn losses(run: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(run.join("metrics.csv"))?
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect())
}

/// [`small_config`] with second-order pooling on 3 directions (the tiny model's maps have few
/// channels), without SE.
fn bilinear_config(dir: &Path, extra: &str) -> std::io::Result<std::path::PathBuf> {
    let config = small_config(dir, &format!("se = false\nbilinear_dimensions = 3\n{extra}"))?;
    let text =
        std::fs::read_to_string(&config)?.replace("pooling = \"gap\"", "pooling = \"bilinear\"");
    let path = config.with_extension("bilinear.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

#[test]
fn an_ensemble_and_a_bilinear_head_are_saved_whole_and_read_back() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 10)?;
    let configs = [
        ("ensemble", small_config(dir.path(), "ensemble = 2\n")?, "×2"),
        ("bilinear", bilinear_config(dir.path(), "")?, "bilinear3"),
    ];
    for (name, config, listed) in configs {
        let run_dir = dir.path().join(name);
        ok(train(&cache, &run_dir, &config, &["--no-tta"])?);
        let listing = ok(run(&["runs", path_str(dir.path())])?);
        assert!(stdout(&listing).contains(listed), "{}", stdout(&listing));

        // The probabilities saved for each validation photo (computed in training from what the
        // store kept) are those of the reloaded head on the photo's map.
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
                assert!((saved - loaded).abs() < 1e-4, "{name}: {line}: {saved} vs {loaded}");
            }
            checked += 1;
        }
        assert!(checked > 0);
    }
    assert!(
        std::fs::read_to_string(dir.path().join("ensemble/config.toml"))?.contains("ensemble = 2")
    );
    Ok(())
}

#[test]
fn a_bilinear_run_killed_before_its_first_epoch_fits_the_same_projection_again() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 8)?;
    let config = bilinear_config(dir.path(), "")?;
    let whole = dir.path().join("whole");
    ok(train(&cache, &whole, &config, &[])?);
    // Aborted at the first checkpoint's first step: the folder is started, no weights exist.
    let killed = dir.path().join("killed");
    let aborted = incept()
        .args(["train-head", path_str(&cache), "--run-dir", path_str(&killed)])
        .args(["--config", path_str(&config)])
        .env("INCEPT_TEST_CHECKPOINT_ABORT_BEFORE", "writing best.bpk")
        .output()?;
    assert!(stderr(&aborted).contains("aborting (test hook)"), "{}", stderr(&aborted));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("run.json"))?)?;
    assert_eq!(state["completed_epochs"], 0, "{state}");
    ok(train(&cache, &killed, &config, &["--resume"])?);
    assert_eq!(losses(&killed)?, losses(&whole)?);
    assert!(
        std::fs::read(killed.join("predictions.csv"))?
            == std::fs::read(whole.join("predictions.csv"))?,
        "predictions.csv differs from the uninterrupted run's"
    );
    Ok(())
}

/// Each epoch's row of `metrics.csv` less its wall time.
fn epoch_rows(run: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(run.join("metrics.csv"))?
        .lines()
        .skip(1)
        .map(|line| line.rsplit_once(',').map_or(line, |(rest, _)| rest).to_owned())
        .collect())
}

#[test]
fn patience_stops_where_the_full_run_would_have_kept_its_best_epoch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 8)?;
    // The validation loss turns up well before the end (lowest at epoch 5 of 12 here).
    let config = dir.path().join("fast.toml");
    std::fs::write(
        &config,
        "epochs = 12\nbatch_size = 8\nlearning_rate = 0.001\n[head]\npooling = \"gap\"\ndense = [32]\n",
    )?;
    let whole = dir.path().join("whole");
    ok(train(&cache, &whole, &config, &[])?);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("run.json"))?)?;
    let losses: Vec<f64> = state["epochs"]
        .as_array()
        .ok_or("no epochs")?
        .iter()
        .map(|record| record["validation_loss"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let best = state["best_epoch"].as_u64().ok_or("no best epoch")? as usize;
    // The smallest patience that still reaches the full run's best: the longest wait between
    // two improvements up to it.
    let (mut patience, mut last_improvement, mut lowest) = (1, 0, f64::INFINITY);
    for (index, &loss) in losses.iter().enumerate().take(best) {
        if loss < lowest {
            patience = patience.max(index + 1 - last_improvement);
            (last_improvement, lowest) = (index + 1, loss);
        }
    }
    let full = epoch_rows(&whole)?;
    let same_best = |run: &Path| -> std::io::Result<bool> {
        Ok(std::fs::read_to_string(run.join("predictions.csv"))?
            == std::fs::read_to_string(whole.join("predictions.csv"))?
            && std::fs::read_to_string(run.join("metrics.json"))?
                == std::fs::read_to_string(whole.join("metrics.json"))?)
    };
    // That patience and a longer one both stop past the best, each where it says.
    for patience in [patience, patience + 2] {
        let stop = best + patience;
        assert!(stop < losses.len(), "the full run peaks too late to test stopping: {losses:?}");
        let patient = dir.path().join(format!("patient-{patience}"));
        let output = ok(train(&cache, &patient, &config, &["--patience", &patience.to_string()])?);
        let says = format!("stopping early after epoch {stop} of 12");
        assert!(stderr(&output).contains(&says), "{}", stderr(&output));
        // The epochs it ran are the full run's, and its best epoch the full run's best: the
        // same predictions photo by photo (the weights files differ in Burn's random ids).
        assert_eq!(epoch_rows(&patient)?[..], full[..stop]);
        assert!(same_best(&patient)?, "the best epoch's predictions differ from the full run's");
        let patient_state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(patient.join("run.json"))?)?;
        assert_eq!(patient_state["best_epoch"], best);
        assert_eq!(patient_state["finished"], true);
        assert!(std::fs::read_to_string(patient.join("config.toml"))?.contains("patience = "));
    }
    let patient = dir.path().join(format!("patient-{patience}"));
    let says = format!("stopping early after epoch {} of 12", best + patience);
    let kept = epoch_rows(&patient)?;

    // Resuming a run that stopped (its saved recipe, as a scheduler's retry would) trains
    // nothing more; resumed without patience, it ends where the full run did.
    let resumed =
        ok(run(&["train-head", path_str(&cache), "--run-dir", path_str(&patient), "--resume"])?);
    assert!(stderr(&resumed).contains(&says), "{}", stderr(&resumed));
    // Repeating a --config that names no patience keeps the run's.
    let resumed = ok(train(&cache, &patient, &config, &["--resume"])?);
    assert!(stderr(&resumed).contains(&says), "{}", stderr(&resumed));
    assert_eq!(epoch_rows(&patient)?, kept);
    let listing = ok(run(&["runs", path_str(&patient)])?);
    assert!(stdout(&listing).contains(&format!("patience {patience}")), "{}", stdout(&listing));
    let continued = ok(train(&cache, &patient, &config, &["--resume", "--patience", "0"])?);
    assert!(stderr(&continued).contains("→ none (every epoch)"), "{}", stderr(&continued));
    assert_eq!(epoch_rows(&patient)?, full);
    assert!(same_best(&patient)?, "the continued run's best differs from the full run's");
    // Without a patience the config is written as before it existed.
    assert!(!std::fs::read_to_string(whole.join("config.toml"))?.contains("patience"));
    Ok(())
}
