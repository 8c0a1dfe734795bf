//! `incept confusion`: its renderings, other caches, and weights that do not fit the run.

use crate::common::*;

#[test]
fn confusion_renders_and_evaluates_other_caches() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    let trained = ok(train(&cache, &run_dir, &config, &[])?);
    // The summary judges the head per class too, naming the class it recognises worst.
    let summary = stderr(&trained);
    let worst = between(&summary, "worst class ", " recall ")
        .ok_or_else(|| format!("no worst class in the summary: {summary}"))?;
    assert!(["ant", "bee", "cricket"].contains(&worst.as_str()), "{summary}");
    assert!(summary.contains(", balanced accuracy "), "{summary}");

    let table = stdout(&ok(run(&["confusion", path_str(&run_dir)])?));
    assert!(
        table.contains("precision") && table.contains("cricket") && table.contains("accuracy"),
        "{table}"
    );
    assert!(
        table.contains("balanced accuracy  ")
            && table.contains("(mean recall of the 3 classes with samples)"),
        "{table}"
    );
    assert!(table.contains(&format!(" recall ({worst})\n")), "{table}");
    // Into a pipe whose reader has gone (`| head -0`): a quiet end, as Unix tools end, no panic.
    let mut piped = incept()
        .args(["confusion", path_str(&run_dir)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    drop(piped.stdout.take());
    let ended = piped.wait_with_output()?;
    assert!(!stderr(&ended).contains("panicked"), "{}", stderr(&ended));
    assert_ne!(ended.status.code(), Some(101), "{}", stderr(&ended));
    let json: serde_json::Value = serde_json::from_str(&stdout(&ok(run(&[
        "confusion",
        path_str(&run_dir),
        "--format",
        "json",
    ])?)))?;
    for key in [
        "classes",
        "matrix",
        "accuracy",
        "balanced_accuracy",
        "worst_class",
        "macro_f1",
        "weighted_f1",
        "per_class",
    ] {
        assert!(json.get(key).is_some(), "json lacks {key}");
    }
    assert_eq!(json["worst_class"]["class"], worst.as_str(), "{json}");
    let balanced = json["balanced_accuracy"].as_f64().ok_or("balanced_accuracy is no number")?;
    let worst_recall = json["worst_class"]["recall"].as_f64().ok_or("no worst recall")?;
    assert!((0.0..=1.0).contains(&worst_recall) && worst_recall <= balanced + 1e-12, "{json}");
    for key in ["class", "precision", "recall", "recall_interval", "f1", "support"] {
        assert!(json["per_class"][0].get(key).is_some(), "per_class lacks {key}");
    }
    // Every figure with its 95 % interval, around it.
    let interval = |value: &serde_json::Value| -> Option<(f64, f64)> {
        Some((value.get(0)?.as_f64()?, value.get(1)?.as_f64()?))
    };
    let (balanced_low, balanced_high) =
        interval(&json["balanced_accuracy_interval"]).ok_or("no balanced accuracy interval")?;
    assert!(balanced_low <= balanced && balanced <= balanced_high, "{json}");
    let (worst_low, worst_high) =
        interval(&json["worst_class"]["recall_interval"]).ok_or("no worst class interval")?;
    assert!(worst_low <= worst_recall && worst_recall <= worst_high, "{json}");
    for key in ["accuracy_interval", "macro_f1_interval"] {
        let (low, high) = interval(&json[key]).ok_or(format!("no {key}"))?;
        assert!(0.0 <= low && low <= high && high <= 1.0, "{key}: {json}");
    }
    assert!(
        table.contains(&format!("{balanced:.3} [{balanced_low:.3}, {balanced_high:.3}]")),
        "{table}"
    );
    let csv = stdout(&ok(run(&["confusion", path_str(&run_dir), "--format", "csv"])?));
    assert!(
        csv.starts_with("true\\predicted,ant,bee,cricket,recall,recall_low,recall_high\n"),
        "{csv}"
    );

    // `runs` shows the same figures beside accuracy, one line per run.
    let listing = stdout(&ok(run(&["runs", path_str(&run_dir)])?));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    let header: Vec<&str> = lines[0].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(
        header,
        [
            "run",
            "head",
            "epochs",
            "accuracy",
            "single view",
            "balanced",
            "worst class",
            "macro-F1",
            "time"
        ],
        "{listing}"
    );
    // Each figure with the half-width of its interval.
    let plus_minus = |value: f64, (low, high): (f64, f64)| {
        format!("{:.1}% ±{:.1}", 100.0 * value, 100.0 * (high - low) / 2.0)
    };
    let balanced_cell = plus_minus(balanced, (balanced_low, balanced_high));
    let worst_cell = format!("{:>11} {worst}", plus_minus(worst_recall, (worst_low, worst_high)));
    assert!(lines[1].contains(&balanced_cell) && lines[1].contains(&worst_cell), "{listing}");
    // Aligned: the cell starts where its header does (in characters: the head may not be ASCII).
    let column = lines[0].find("worst class").ok_or("no worst class column")?;
    let column = lines[0][..column].chars().count();
    let cell: String = lines[1].chars().skip(column).collect();
    assert!(cell.starts_with(&worst_cell), "{listing}");

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

/// The text between `before` and the next `after` in `text`.
fn between(text: &str, before: &str, after: &str) -> Option<String> {
    let start = text.find(before)? + before.len();
    let length = text[start..].find(after)?;
    Some(text[start..start + length].to_owned())
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
