//! A cross-validation killed at any moment and resumed ends as an uninterrupted one.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{abort_before, kill_after, next_random};
use crate::common::*;

#[test]
fn a_killed_cross_validation_resumes_to_the_uninterrupted_result() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 6)?;
    let config = small_config_with(dir.path(), 3, "")?;
    let whole = dir.path().join("whole");
    ok(train(&cache, &whole, &config, &["--folds", "3", "--refit"])?);

    let killed = dir.path().join("killed");
    // Aborts inside a fold's checkpoint (the first fold's, as the hook fires at its first
    // match), then SIGKILLs at pseudo-random moments: between folds, while pooling, in the refit.
    let targets = [
        "writing run.json",
        "renaming",
        "done",
        "random",
        "random",
        "random",
        "random",
        "random",
        "random",
        "random",
        "random",
    ];
    let mut random_state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut kills = 0;
    let mut stages = BTreeSet::new();
    for target in targets {
        let mut command = incept();
        command.args(["train-head", path_str(&cache), "--run-dir", path_str(&killed)]);
        command.args(["--config", path_str(&config), "--folds", "3", "--refit"]);
        if killed.join("run.json").exists() {
            command.arg("--resume");
        }
        if target == "random" {
            let delay = Duration::from_millis(100 + next_random(&mut random_state) % 1500);
            let (exited, output) = kill_after(&mut command, delay)?;
            if let Some(status) = exited {
                assert!(status.success(), "train-head failed: {}", stderr(&output));
                break;
            }
            // The stage it was in: the last fold or refit line it printed.
            let said = stderr(&output);
            let stage = said
                .lines()
                .rev()
                .find(|l| l.starts_with("fold ") || l.starts_with("refit "))
                .map_or("start", |l| if l.starts_with("refit") { "refit" } else { "folds" });
            stages.insert(stage.to_owned());
        } else if !abort_before(&mut command, target)? {
            break;
        }
        kills += 1;
    }
    let resume = if killed.join("run.json").exists() { vec!["--resume"] } else { vec![] };
    let mut flags = vec!["--folds", "3", "--refit"];
    flags.extend(resume);
    ok(train(&cache, &killed, &config, &flags)?);
    eprintln!("{kills} kills, in stages {stages:?}");
    assert!(kills >= 6, "only {kills} kills landed");

    for file in ["predictions.csv", "metrics.json"] {
        assert!(
            std::fs::read(killed.join(file))? == std::fs::read(whole.join(file))?,
            "pooled {file} differs from the uninterrupted cross-validation's"
        );
    }
    for fold in ["folds/fold-1", "folds/fold-2", "folds/fold-3", "refit"] {
        assert!(
            std::fs::read(killed.join(fold).join("metrics.csv"))?
                .split(|b| *b == b'\n')
                .map(|l| l.rsplitn(2, |b| *b == b',').nth(1).unwrap_or_default().to_vec())
                .collect::<Vec<_>>()
                == std::fs::read(whole.join(fold).join("metrics.csv"))?
                    .split(|b| *b == b'\n')
                    .map(|l| l.rsplitn(2, |b| *b == b',').nth(1).unwrap_or_default().to_vec())
                    .collect::<Vec<_>>(),
            "{fold}'s epochs differ from the uninterrupted run's"
        );
    }
    let state = |run: &std::path::Path| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json"))?)?;
        // Times differ; what was trained must not.
        for result in state["cross_validation"]["fold_results"].as_array_mut().into_iter().flatten()
        {
            result["train_seconds"] = serde_json::Value::Null;
        }
        Ok(state["cross_validation"].clone())
    };
    assert_eq!(state(&killed)?, state(&whole)?);
    Ok(())
}
