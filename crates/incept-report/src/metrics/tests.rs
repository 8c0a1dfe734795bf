use std::path::Path;

use super::*;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

/// Equal but for JSON's last digit.
fn close_enough(found: f64, expected: f64) -> bool {
    (found - expected).abs() < 1e-12
}

fn close(found: f64, expected: f64) -> bool {
    (found - expected).abs() < 1e-12
}

#[test]
fn hand_computed_example_with_a_never_predicted_class() -> Result<()> {
    // truth:     a a a b b c
    // predicted: a a b b a a   (c is never predicted; its precision is 0 by convention)
    let metrics =
        Metrics::from_labels(&names(&["a", "b", "c"]), &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 0, 0])?;
    assert_eq!(metrics.matrix, vec![vec![2, 1, 0], vec![1, 1, 0], vec![1, 0, 0]]);
    assert!(close(metrics.accuracy, 3.0 / 6.0));
    let a = &metrics.per_class[0];
    assert!(close(a.precision, 2.0 / 4.0));
    assert!(close(a.recall, 2.0 / 3.0));
    assert!(close(a.f1, 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)));
    let b = &metrics.per_class[1];
    assert!(close(b.precision, 0.5) && close(b.recall, 0.5));
    let c = &metrics.per_class[2];
    assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 1));
    let f1_a = 4.0 / 7.0;
    assert!(close(metrics.macro_f1, (f1_a + 0.5 + 0.0) / 3.0));
    assert!(close(metrics.weighted_f1, (f1_a * 3.0 + 0.5 * 2.0) / 6.0));
    // Recalls 2/3, 1/2 and 0: every class has a sample, so all three count.
    assert!(close(metrics.balanced_accuracy, (2.0 / 3.0 + 0.5 + 0.0) / 3.0));
    assert_eq!(worst(&metrics), Some(("c".into(), 0.0)));
    assert_eq!(metrics.most_confused(3), vec![(0, 1, 1), (1, 0, 1), (2, 0, 1)]);
    Ok(())
}

/// a: 1 of 2 right, b: 2 of 3, `empty`: no sample, d: 1 of 2.
fn skewed() -> Result<Metrics> {
    Metrics::from_labels(
        &names(&["a", "b", "empty", "d"]),
        &[0, 0, 1, 1, 1, 3, 3],
        &[0, 1, 1, 1, 0, 3, 1],
    )
}

#[test]
fn a_class_without_samples_is_left_out_of_balanced_accuracy_and_the_worst_class() -> Result<()> {
    let metrics = skewed()?;
    assert_eq!(metrics.per_class[2].support, 0);
    assert_eq!(metrics.per_class[2].recall, 0.0);
    assert_eq!(metrics.sampled_classes(), 3);
    assert!(close(metrics.accuracy, 4.0 / 7.0));
    // (1/2 + 2/3 + 1/2) / 3 = 5/9; counting `empty` as a 0 would give 5/12.
    assert!(close(metrics.balanced_accuracy, 5.0 / 9.0), "{}", metrics.balanced_accuracy);
    // a and d tie at 1/2: the first in class order; `empty` (recall 0) is not a candidate.
    assert_eq!(worst(&metrics), Some(("a".into(), 0.5)));
    Ok(())
}

#[test]
fn macro_f1_leaves_out_a_class_with_neither_samples_nor_predictions() -> Result<()> {
    // a: F1 1/2; b: precision 2/4, recall 2/3, F1 4/7; d: precision 1, recall 1/2, F1 2/3.
    let metrics = skewed()?;
    assert_eq!(metrics.f1_classes(), 3);
    let expected = (0.5 + 4.0 / 7.0 + 2.0 / 3.0) / 3.0;
    assert!(close(metrics.macro_f1, expected), "{}", metrics.macro_f1);
    assert!(
        metrics.to_table().contains(
            "(mean F1 of the 3 classes with samples or predictions; 1 with neither left out)"
        ),
        "{}",
        metrics.to_table()
    );
    // Called once but absent from the photos: precision 0, so F1 0, and it counts.
    let predicted_absent =
        Metrics::from_labels(&names(&["a", "b", "c"]), &[0, 0, 1, 1], &[0, 2, 1, 1])?;
    assert_eq!(predicted_absent.f1_classes(), 3);
    let (f1_a, f1_b) = (2.0 / 3.0, 1.0);
    assert!(close(predicted_absent.macro_f1, (f1_a + f1_b + 0.0) / 3.0));
    // The same matrix read back from JSON derives the same figure.
    let read = Metrics::from_json(metrics.to_json().as_bytes(), Path::new("metrics.json"))?;
    assert!(close(read.macro_f1, expected));
    Ok(())
}

#[test]
fn the_worst_class_is_the_lowest_recall_wherever_it_is() -> Result<()> {
    // Recalls 1, 1/2, 1/4: the last class is the worst.
    let metrics = Metrics::from_matrix(
        names(&["x", "y", "z"]),
        vec![vec![2, 0, 0], vec![1, 1, 0], vec![0, 3, 1]],
    );
    assert_eq!(worst(&metrics), Some(("z".into(), 0.25)));
    assert!(close(metrics.balanced_accuracy, (1.0 + 0.5 + 0.25) / 3.0));
    Ok(())
}

#[test]
fn no_samples_at_all_give_zero_and_no_worst_class() {
    let metrics = Metrics::from_matrix(names(&["a", "b"]), vec![vec![0, 0], vec![0, 0]]);
    assert_eq!((metrics.accuracy, metrics.balanced_accuracy), (0.0, 0.0));
    assert_eq!(metrics.worst_class, None);
    assert!(metrics.to_table().contains("worst class        - (no class has samples)"));
    assert_eq!(
        metrics.to_csv(),
        "true\\predicted,a,b,recall,recall_low,recall_high\na,0,0,,,\nb,0,0,,,\n"
    );
}

#[test]
fn renderings_carry_the_numbers() -> Result<()> {
    let metrics = Metrics::from_labels(&names(&["x,1", "y"]), &[0, 1, 1], &[0, 1, 0])?;
    let table = metrics.to_table();
    assert!(table.contains("1 (50%)"), "{table}");
    assert!(table.contains("accuracy           0.667 [0.208, 0.939] (3 photos;"), "{table}");
    // Recalls 1 and 1/2.
    assert!(table.contains("balanced accuracy  0.750 ["), "{table}");
    assert!(table.contains("worst class        0.500 [0.095, 0.905] recall (y)"), "{table}");
    assert!(table.contains("macro F1           0.667"), "{table}");
    assert!(table.contains("y -> x,1: 1"), "{table}");
    assert_eq!(
        metrics.to_csv(),
        "true\\predicted,\"x,1\",y,recall,recall_low,recall_high\n\"x,1\",1,0,1.000000,0.206549,1.000000\ny,1,1,0.500000,0.094531,0.905469\n"
    );
    let json: serde_json::Value = serde_json::from_str(&metrics.to_json())
        .map_err(|e| Error::Plot { path: "json".into(), reason: e.to_string() })?;
    assert_eq!(json["matrix"][1][0], 1);
    assert_eq!(json["per_class"][1]["support"], 2);
    assert_eq!(json["balanced_accuracy"], 0.75);
    assert_eq!(json["worst_class"]["class"], "y");
    assert_eq!(json["worst_class"]["recall"], 0.5);
    let interval = |value: &serde_json::Value| -> Vec<f64> {
        value.as_array().map_or_else(Vec::new, |v| v.iter().filter_map(|x| x.as_f64()).collect())
    };
    let accuracy = interval(&json["accuracy_interval"]);
    let expected = wilson(2, 3);
    assert!(
        accuracy.len() == 2
            && close_enough(accuracy[0], expected.low)
            && close_enough(accuracy[1], expected.high),
        "{accuracy:?}"
    );
    assert_eq!(interval(&json["per_class"][1]["recall_interval"]).len(), 2);
    assert_eq!(interval(&json["worst_class"]["recall_interval"]).len(), 2);
    assert_eq!(interval(&json["balanced_accuracy_interval"]).len(), 2);
    assert_eq!(interval(&json["macro_f1_interval"]).len(), 2);
    Ok(())
}

#[test]
fn renderings_say_which_classes_balanced_accuracy_leaves_out() -> Result<()> {
    let metrics = skewed()?;
    let table = metrics.to_table();
    assert!(
        table.contains("(mean recall of the 3 classes with samples; 1 without any left out)"),
        "{table}"
    );
    assert!(table.contains("worst class        0.500 [0.095, 0.905] recall (a)"), "{table}");
    // `empty` has no recall: its cell is empty, so the column's mean is the balanced accuracy.
    assert_eq!(
        metrics.to_csv(),
        "true\\predicted,a,b,empty,d,recall,recall_low,recall_high\na,1,1,0,0,0.500000,0.094531,0.905469\nb,1,2,0,0,0.666667,0.207660,0.938508\nempty,0,0,0,0,,,\nd,0,1,0,1,0.500000,0.094531,0.905469\n"
    );
    Ok(())
}

#[test]
fn json_round_trips() -> Result<()> {
    let mut metrics = skewed()?;
    metrics.set_single_view_accuracy(Some(0.5));
    let read = Metrics::from_json(metrics.to_json().as_bytes(), Path::new("metrics.json"))?;
    assert_eq!(read, metrics);
    Ok(())
}

#[test]
fn json_of_an_earlier_version_reads_with_the_new_figures_derived() -> Result<()> {
    // A metrics.json as incept wrote it before balanced accuracy (the `skewed` matrix).
    let old = r#"{
  "classes": ["a", "b", "empty", "d"],
  "matrix": [[1, 1, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]],
  "accuracy": 0.5714285714285714,
  "macro_f1": 0.4222222222222222,
  "weighted_f1": 0.5587301587301587,
  "per_class": [],
  "single_view_accuracy": 0.42857142857142855
}"#;
    let metrics = Metrics::from_json(old.as_bytes(), Path::new("run/metrics.json"))?;
    assert!(close(metrics.balanced_accuracy, 5.0 / 9.0), "{}", metrics.balanced_accuracy);
    assert_eq!(worst(&metrics), Some(("a".into(), 0.5)));
    // The rest is derived from the matrix too (the old file's `per_class` is empty here);
    // the single-view accuracy cannot be, and is kept.
    assert_eq!(metrics.per_class, skewed()?.per_class);
    assert_eq!(metrics.single_view_accuracy, Some(0.42857142857142855));
    // Any reader of the type gets the same, not a default 0.
    let direct: Metrics = serde_json::from_str(old)
        .map_err(|e| Error::Plot { path: "json".into(), reason: e.to_string() })?;
    assert_eq!(direct, metrics);
    Ok(())
}

#[test]
fn stale_figures_in_a_json_are_derived_again() -> Result<()> {
    let mut json: serde_json::Value = serde_json::from_str(&skewed()?.to_json())
        .map_err(|e| Error::Plot { path: "json".into(), reason: e.to_string() })?;
    json["balanced_accuracy"] = serde_json::json!(0.0);
    json["worst_class"] = serde_json::Value::Null;
    let metrics = Metrics::from_json(json.to_string().as_bytes(), Path::new("metrics.json"))?;
    assert!(close(metrics.balanced_accuracy, 5.0 / 9.0));
    assert_eq!(metrics.worst_class.map(|w| w.class), Some("a".to_owned()));
    Ok(())
}

#[test]
fn a_damaged_json_is_an_error_naming_the_file() {
    for (text, says) in [
        (r#"{"classes": ["a", "b"], "matrix": [[1, 0]]}"#, "2 × 2 counts"),
        (r#"{"classes": ["a"], "matrix": [[1, 0]]}"#, "its rows hold [2]"),
        (r#"{"classes": ["a"]}"#, "missing field `matrix`"),
        ("{", "EOF"),
    ] {
        let error = Metrics::from_json(text.as_bytes(), Path::new("run/metrics.json"))
            .map(|_| ())
            .map_err(|e| e.to_string());
        let Err(message) = error else { panic!("{text} was read") };
        assert!(message.starts_with("run/metrics.json: ") && message.contains(says), "{message}");
        assert!(message.ends_with("the file is damaged"), "{message}");
    }
}

#[test]
fn out_of_range_labels_are_errors() {
    assert!(Metrics::from_labels(&names(&["a"]), &[0], &[1]).is_err());
}

#[test]
fn long_names_are_shortened_with_an_ellipsis() {
    assert_eq!(shorten("Aedes_koreicus", 20), "Aedes_koreicus");
    assert_eq!(shorten("Aedes_koreicus", 6), "Aedes…");
    assert_eq!(shorten("Aedes", 0), "…");
}

/// The worst class's name and recall.
fn worst(metrics: &Metrics) -> Option<(String, f64)> {
    metrics.worst_class.as_ref().map(|w| (w.class.clone(), w.recall))
}

#[test]
fn every_figure_carries_its_interval() -> Result<()> {
    // 60 photos: a 30/30, b 20/20 … recalls 0.9, 0.6, 0.3 (balanced 0.6).
    let matrix = vec![vec![18, 2, 0], vec![4, 12, 4], vec![7, 7, 6]];
    let mut metrics = Metrics::from_matrix(names(&["a", "b", "c"]), matrix);
    for (class, (correct, support)) in metrics.per_class.iter().zip([(18, 20), (12, 20), (6, 20)]) {
        assert_eq!(class.recall_interval, wilson(correct, support), "{}", class.class);
    }
    assert_eq!(metrics.accuracy_interval, wilson(36, 60));
    let worst = metrics.worst_class.clone().map(|w| (w.class, w.recall_interval));
    assert_eq!(worst, Some(("c".into(), wilson(6, 20))));
    for (figure, interval) in [
        (metrics.balanced_accuracy, metrics.balanced_accuracy_interval),
        (metrics.macro_f1, metrics.macro_f1_interval),
    ] {
        assert!(interval.low < figure && figure < interval.high, "{figure} {interval:?}");
        // 60 photos: an interval of several points, not of nothing or everything.
        assert!((0.05..0.3).contains(&interval.half_width()), "{interval:?}");
    }
    // The single-view accuracy's interval is over the same photos.
    metrics.set_single_view_accuracy(Some(0.5));
    assert_eq!(metrics.single_view_accuracy_interval, Some(wilson(30, 60)));
    metrics.set_single_view_accuracy(None);
    assert_eq!(metrics.single_view_accuracy_interval, None);
    // A metrics.json read back carries the same intervals (derived again, same seed).
    let read = Metrics::from_json(metrics.to_json().as_bytes(), Path::new("metrics.json"))?;
    assert_eq!(read.balanced_accuracy_interval, metrics.balanced_accuracy_interval);
    Ok(())
}
