//! `incept compare`: runs on the same validation photos paired photo by photo; runs on other
//! photos refused, saying why.

use std::path::Path;

use crate::common::*;

/// Per validation photo of a run (sorted by photo): whether its prediction in `column` (the
/// TTA `predicted` or `single_view_predicted`) is its label, read from predictions.csv here.
fn right(run_dir: &Path, column: &str) -> Result<Vec<(String, bool)>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(run_dir.join("predictions.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty predictions.csv")?.split(',').collect();
    let at = header.iter().position(|h| *h == column).ok_or(format!("no column {column}"))?;
    let mut rows: Vec<(String, bool)> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[0].to_owned(), fields[at] == fields[1])
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// A copy of a finished run folder whose every prediction is wrong.
fn always_wrong_copy(run_dir: &Path, copy: &Path) -> TestResult {
    std::fs::create_dir_all(copy)?;
    for entry in std::fs::read_dir(run_dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::copy(&path, copy.join(path.file_name().ok_or("no name")?))?;
        }
    }
    let text = std::fs::read_to_string(run_dir.join("predictions.csv"))?;
    let wrong = |label: &str| if label == "ant" { "bee" } else { "ant" };
    let mut lines = text.lines();
    let header = lines.next().ok_or("empty")?;
    let single = header.split(',').position(|h| h == "single_view_predicted");
    let mut out = format!("{header}\n");
    for line in lines {
        let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
        let label = fields[1].clone();
        fields[2] = wrong(&label).to_owned();
        if let Some(at) = single {
            fields[at] = wrong(&label).to_owned();
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    std::fs::write(copy.join("predictions.csv"), out)?;
    Ok(())
}

#[test]
fn compare_pairs_runs_photo_by_photo_and_refuses_other_photos() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 20)?;
    let config = small_config(dir.path(), "")?;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(train(&cache, &a, &config, &["--tta"])?);
    ok(train(&cache, &b, &config, &["--tta", "--seed", "7", "--epochs", "2"])?);

    // With TTA, each photo's single view is recorded beside the averaged prediction.
    let tta_a = right(&a, "predicted")?;
    let single_a = right(&a, "single_view_predicted")?;
    assert_eq!(tta_a.len(), single_a.len());
    let photos = tta_a.len();

    let json = stdout(&ok(run(&["compare", path_str(&a), path_str(&b), "--format", "json"])?));
    let json: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(json["photos"], photos, "{json}");
    let pairs = json["pairs"].as_array().ok_or("no pairs")?;
    assert_eq!(pairs.len(), 2, "one pair with TTA, one in single view: {json}");
    for (pair, column) in pairs.iter().zip(["predicted", "single_view_predicted"]) {
        // The counts of photos only one run gets right, counted here from predictions.csv.
        let (x, y) = (right(&a, column)?, right(&b, column)?);
        let a_only = x.iter().zip(&y).filter(|(p, q)| p.1 && !q.1).count();
        let b_only = x.iter().zip(&y).filter(|(p, q)| !p.1 && q.1).count();
        assert_eq!(
            (pair["a_only"].as_u64(), pair["b_only"].as_u64()),
            (Some(a_only as u64), Some(b_only as u64)),
            "{column}: {pair}"
        );
        let difference = pair["difference"].as_f64().ok_or("no difference")?;
        assert!((difference - (b_only as f64 - a_only as f64) / photos as f64).abs() < 1e-12);
        let p = pair["p_value"].as_f64().ok_or("no p")?;
        assert!((0.0..=1.0).contains(&p), "{pair}");
    }
    assert_eq!(pairs[0]["view"], "tta");
    assert_eq!(pairs[1]["view"], "single_view");

    // A head wrong on every photo: clearly worse, and said so in one line per view.
    let wrong = dir.path().join("wrong");
    always_wrong_copy(&a, &wrong)?;
    let right_count = tta_a.iter().filter(|(_, r)| *r).count();
    assert!(right_count >= 8, "the trained head should get most of {photos} photos right");
    let table = stdout(&ok(run(&["compare", path_str(&a), path_str(&wrong)])?));
    assert!(
        table.contains(&format!("{photos} validation photos, the same in every run")),
        "{table}"
    );
    assert!(table.contains("TTA: a is better than wrong: "), "{table}");
    assert!(table.contains("single view: a is better than wrong: "), "{table}");
    // Three runs: three pairs a view, p-values adjusted for the family.
    let three = stdout(&ok(run(&[
        "compare",
        path_str(&a),
        path_str(&b),
        path_str(&wrong),
        "--format",
        "csv",
    ])?));
    assert_eq!(three.lines().count(), 1 + 6, "{three}");
    assert!(three.starts_with("view,a,b,photos,"), "{three}");

    // Another split: other photos, refused naming why.
    let other = dir.path().join("other-split");
    ok(train(&cache, &other, &config, &["--validation-split", "0.4"])?);
    let refused = run(&["compare", path_str(&a), path_str(&other)])?;
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("were not validated on the same photos"), "{message}");
    assert!(message.contains("different splits (--validation-split 0.2 against 0.4)"), "{message}");
    // A cache of other photos: refused too.
    let data = dir.path().join("other-data");
    make_dataset(&data, &["ant", "bee", "cricket"], 12)?;
    let other_cache = dir.path().join("other.h5");
    ok(extract(&data, &other_cache, &["--copies", "1"])?);
    let elsewhere = dir.path().join("elsewhere");
    ok(train(&other_cache, &elsewhere, &config, &[])?);
    let message = stderr(&run(&["compare", path_str(&a), path_str(&elsewhere)])?);
    assert!(message.contains("trained on caches of other photos"), "{message}");
    // Not a run: the folder named.
    let message = stderr(&run(&["compare", path_str(&a), path_str(dir.path())])?);
    assert!(message.contains(path_str(dir.path())), "{message}");
    Ok(())
}
