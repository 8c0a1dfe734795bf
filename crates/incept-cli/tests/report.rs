//! `incept report` end to end on a tiny run: thumbnails, escaping, sections, missing photos,
//! another cache.

use crate::common::*;
use incept_report::{metrics_of, read_predictions_csv, top_losses};

/// Thumbnails the page should hold: the photos of the 4 most confused pairs (12 at most each)
/// and the 24 top losses.
fn expected_thumbnails(
    predictions: &[incept_report::PhotoPrediction],
    classes: &[String],
) -> Result<usize, incept_report::Error> {
    let metrics = metrics_of(classes, predictions)?;
    let pairs: usize = metrics.most_confused(4).iter().map(|&(_, _, count)| count.min(12)).sum();
    Ok(pairs + predictions.len().min(24))
}

#[test]
fn the_report_shows_the_photos_and_says_which_are_missing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    // Names that must be escaped in HTML.
    let names = ["ant & co", "<bee>", "cricket"];
    make_dataset(&data, &names, 10)?;
    let cache = dir.path().join("c.h5");
    ok(extract(&data, &cache, &["--copies", "1"])?);
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("runs/tiny");
    ok(train(&cache, &run_dir, &config, &[])?);

    let page = dir.path().join("out/report.html");
    let report = |photos: &std::path::Path, extra: &[&str]| {
        let mut args =
            vec!["report", path_str(&run_dir), "-o", path_str(&page), "--photos", path_str(photos)];
        args.extend_from_slice(extra);
        run(&args)
    };
    let output = ok(report(&data, &[])?);
    assert!(stderr(&output).contains(path_str(&page)), "{}", stderr(&output));
    let html = std::fs::read_to_string(&page)?;
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json"))?)?;
    let classes: Vec<String> = serde_json::from_value(state["classes"].clone())?;
    let predictions = read_predictions_csv(&run_dir.join("predictions.csv"), &classes)?;
    let expected = expected_thumbnails(&predictions, &classes)?;
    assert!(expected > 0);
    assert_eq!(html.matches("<img ").count(), expected, "{}", stderr(&output));
    assert!(html.contains("ant &amp; co") && html.contains("&lt;bee&gt;"));
    assert!(!html.contains("<bee>") && !html.contains("ant & co"));
    assert!(html.contains("id=\"top-losses\"") && html.contains("id=\"confused\""));
    assert!(html.contains("accuracy with TTA") && html.contains("<svg"));
    assert!(!html.contains("class=\"placeholder\""));

    // The photo with the highest loss goes missing: a warning naming it, placeholders.
    let worst = top_losses(&predictions, 1)[0].source.clone();
    let gone = data.join(&worst);
    std::fs::remove_file(&gone)?;
    let output = ok(report(&data, &[])?);
    assert!(
        stderr(&output).contains(&format!("warning: {}: photo not found", gone.display())),
        "{}",
        stderr(&output)
    );
    let html = std::fs::read_to_string(&page)?;
    let placeholders = html.matches("class=\"placeholder\"").count();
    assert!(placeholders >= 1);
    assert_eq!(html.matches("<img ").count() + placeholders, expected);
    assert!(html.contains("Photos not shown"));

    // The wrong folder: an error naming it and the fix; the page is left as it was.
    let output = report(&dir.path().join("runs"), &[])?;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--photos") && stderr(&output).contains("runs"));
    assert_eq!(std::fs::read_to_string(&page)?, html);

    // Another cache (here the training one), with TTA: every photo of it is evaluated.
    let output = ok(report(&data, &["--cache", path_str(&cache), "--tta"])?);
    assert!(stderr(&output).contains("report of 30 photos"), "{}", stderr(&output));
    assert!(std::fs::read_to_string(&page)?.contains("every photo of"));
    // --tta needs --cache.
    assert!(!report(&data, &["--tta"])?.status.success());
    Ok(())
}
