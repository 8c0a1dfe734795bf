//! `incept suspects`: photos whose label was flipped on purpose are found on a cross-validation's
//! out-of-fold predictions, and few others are; the report shows them.

use std::collections::BTreeSet;

use crate::common::*;

#[test]
fn flipped_labels_are_found_and_few_clean_photos_flagged() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let classes = ["ant", "bee", "cricket"];
    make_dataset(&data, &classes, 20)?;
    // Flip 3 labels of 60 (5 %): each photo moved into another class's folder.
    let flips = [("ant", 3, "bee"), ("bee", 11, "cricket"), ("cricket", 7, "ant")];
    let mut flipped = BTreeSet::new();
    for (from, index, to) in flips {
        let name = format!("img{index:03}.png");
        let moved = format!("{to}/flipped-{from}-{name}");
        std::fs::rename(data.join(from).join(&name), data.join(&moved))?;
        flipped.insert((moved, from.to_owned()));
    }
    let cache = dir.path().join("c.h5");
    ok(extract(&data, &cache, &["--copies", "1"])?);
    let config = small_config_with(dir.path(), 6, "")?;
    let cv = dir.path().join("cv");
    ok(train(&cache, &cv, &config, &["--folds", "4"])?);

    let json = stdout(&ok(run(&["suspects", path_str(&cv), "--format", "json"])?));
    let json: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(json["photos"], 60, "{json}");
    assert_eq!(json["judged_on"], "cross-validation");
    let found: BTreeSet<(String, String)> = json["suspects"]
        .as_array()
        .ok_or("no suspects")?
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap_or_default().to_owned(),
                s["suggested"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    // Every flipped photo is found, with its real class suggested; at most 3 clean ones with it.
    let caught = flipped.intersection(&found).count();
    assert_eq!(caught, flipped.len(), "found {found:?}, flipped {flipped:?}");
    assert!(found.len() <= 2 * flipped.len(), "{} flagged for 3 flips: {found:?}", found.len());
    // Least likely label first.
    let given: Vec<f64> = json["suspects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["given_probability"].as_f64())
        .collect();
    assert!(given.windows(2).all(|w| w[0] <= w[1]), "{given:?}");

    // CSV and table name the same photos; --limit cuts the list.
    let csv = stdout(&ok(run(&["suspects", path_str(&cv), "--format", "csv"])?));
    assert_eq!(csv.lines().count(), 1 + found.len(), "{csv}");
    assert!(csv.starts_with("source,given,suggested,given_probability,suggested_probability\n"));
    let table = stdout(&ok(run(&["suspects", path_str(&cv), "--limit", "2"])?));
    assert_eq!(table.lines().count(), 3, "{table}");

    // The report shows them, with their paths.
    let page = dir.path().join("report.html");
    ok(run(&["report", path_str(&cv), "-o", path_str(&page), "--photos", path_str(&data)])?);
    let html = std::fs::read_to_string(&page)?;
    let section = html.split("id=\"suspects\"").nth(1).ok_or("no suspects section")?;
    for (photo, _) in &flipped {
        assert!(section.contains(photo.as_str()), "{photo} not in the report's suspects");
    }
    Ok(())
}
