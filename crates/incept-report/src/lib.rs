//! Stage 3 of incept: judging a head. Confusion matrices, per-class precision/recall/F1,
//! renderings as an aligned table, CSV and JSON, heatmaps ([`plot`]), and a self-contained
//! HTML report with the photos behind the mistakes ([`html`], from [`predictions`], with
//! [`thumbnail`]s).
//!
//! Conventions: rows are true classes, columns predicted classes. A class that is never
//! predicted has precision 0 (not undefined); a class with no samples has recall 0; F1 is 0
//! when precision + recall is 0.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod chart;
mod html;
mod plot;
mod predictions;
mod thumbnail;

pub use html::{Layout, ReportData, build as build_html, write as write_html};
pub use plot::heatmap;
pub use predictions::{EpochCurve, PhotoPrediction, metrics_of, read_predictions_csv, top_losses};

/// Errors of the report stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot draw the plot: {reason}")]
    Plot { path: PathBuf, reason: String },
    #[error("{path}: unsupported plot format; use a .png or .svg file name")]
    PlotFormat { path: PathBuf },
    #[error("label {label} outside the {classes} classes")]
    Label { label: usize, classes: usize },
    #[error("{path} line {line}: {reason}")]
    Predictions { path: PathBuf, line: usize, reason: String },
    #[error(
        "{folder}: none of the {count} photos the report shows is there (the first: {example}); pass --photos the folder the cache was extracted from, the one holding its class sub-folders"
    )]
    PhotosMissing { folder: PathBuf, count: usize, example: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Precision, recall, F1 and support of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// A confusion matrix with its derived metrics; serialises to the JSON contract of
/// `incept confusion --format json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub classes: Vec<String>,
    /// `matrix[true][predicted]` counts.
    pub matrix: Vec<Vec<usize>>,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// When `accuracy` averages each photo's augmented views (test-time augmentation): the
    /// accuracy of the photo itself alone, what a single prediction gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_view_accuracy: Option<f64>,
}

impl Metrics {
    /// Builds the matrix and metrics from true and predicted class indices.
    pub fn from_labels(classes: &[String], truth: &[usize], predicted: &[usize]) -> Result<Self> {
        let n = classes.len();
        let mut matrix = vec![vec![0usize; n]; n];
        for (&t, &p) in truth.iter().zip(predicted) {
            for label in [t, p] {
                if label >= n {
                    return Err(Error::Label { label, classes: n });
                }
            }
            matrix[t][p] += 1;
        }
        Ok(Self::from_matrix(classes.to_vec(), matrix))
    }

    pub fn from_matrix(classes: Vec<String>, matrix: Vec<Vec<usize>>) -> Self {
        let n = classes.len();
        let total: usize = matrix.iter().flatten().sum();
        let correct: usize = (0..n).map(|i| matrix[i][i]).sum();
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = (0..n)
            .map(|i| {
                let support: usize = matrix[i].iter().sum();
                let predicted: usize = matrix.iter().map(|row| row[i]).sum();
                let precision = ratio(matrix[i][i], predicted);
                let recall = ratio(matrix[i][i], support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics { class: classes[i].clone(), precision, recall, f1, support }
            })
            .collect();
        let macro_f1 =
            if n == 0 { 0.0 } else { per_class.iter().map(|c| c.f1).sum::<f64>() / n as f64 };
        let weighted_f1 = if total == 0 {
            0.0
        } else {
            per_class.iter().map(|c| c.f1 * c.support as f64).sum::<f64>() / total as f64
        };
        Metrics {
            classes,
            matrix,
            accuracy: ratio(correct, total),
            macro_f1,
            weighted_f1,
            per_class,
            single_view_accuracy: None,
        }
    }

    pub fn total(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }

    /// The `count` largest off-diagonal cells: (true class, predicted class, count).
    pub fn most_confused(&self, count: usize) -> Vec<(usize, usize, usize)> {
        let mut cells: Vec<(usize, usize, usize)> = (0..self.classes.len())
            .flat_map(|t| (0..self.classes.len()).map(move |p| (t, p)))
            .filter(|(t, p)| t != p)
            .map(|(t, p)| (t, p, self.matrix[t][p]))
            .filter(|&(_, _, c)| c > 0)
            .collect();
        cells.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        cells.truncate(count);
        cells
    }

    /// Row-normalised percentage of a cell (share of the true class).
    pub fn row_percent(&self, truth: usize, predicted: usize) -> f64 {
        let support: usize = self.matrix[truth].iter().sum();
        if support == 0 {
            0.0
        } else {
            100.0 * self.matrix[truth][predicted] as f64 / support as f64
        }
    }

    /// The aligned text table of `incept confusion`.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let names: Vec<&str> = self.classes.iter().map(String::as_str).collect();
        let label_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(4).max(10);
        let cell_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).clamp(12, 24);
        let _ = writeln!(
            out,
            "Confusion matrix (rows: true class, columns: predicted; count and row %)"
        );
        let _ = write!(out, "{:label_width$}", "true \\ predicted");
        for name in &names {
            let _ = write!(out, " {:>cell_width$}", truncate(name, cell_width));
        }
        let _ = writeln!(out, " {:>8}", "support");
        for (t, name) in names.iter().enumerate() {
            let _ = write!(out, "{:label_width$}", name);
            for p in 0..names.len() {
                let cell = format!("{} ({:.0}%)", self.matrix[t][p], self.row_percent(t, p));
                let _ = write!(out, " {cell:>cell_width$}");
            }
            let _ = writeln!(out, " {:>8}", self.matrix[t].iter().sum::<usize>());
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:label_width$} {:>9} {:>9} {:>9} {:>8}",
            "class", "precision", "recall", "f1", "support"
        );
        for metrics in &self.per_class {
            let _ = writeln!(
                out,
                "{:label_width$} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                metrics.class, metrics.precision, metrics.recall, metrics.f1, metrics.support
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "accuracy     {:.3} ({} samples)", self.accuracy, self.total());
        if let Some(single) = self.single_view_accuracy {
            let _ = writeln!(
                out,
                "             (the mean over each photo's augmented views; the photo alone: {single:.3})"
            );
        }
        let _ = writeln!(out, "macro F1     {:.3}", self.macro_f1);
        let _ = writeln!(out, "weighted F1  {:.3}", self.weighted_f1);
        let confused = self.most_confused(3);
        if !confused.is_empty() {
            let _ = writeln!(out, "most confused (true -> predicted):");
            for (t, p, count) in confused {
                let _ = writeln!(
                    out,
                    "  {} -> {}: {count} ({:.1}% of {})",
                    names[t],
                    names[p],
                    self.row_percent(t, p),
                    names[t]
                );
            }
        }
        out
    }

    /// The matrix as CSV with a header row (first column: true class).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("true\\predicted");
        for name in &self.classes {
            out.push(',');
            out.push_str(&csv_field(name));
        }
        out.push('\n');
        for (name, row) in self.classes.iter().zip(&self.matrix) {
            out.push_str(&csv_field(name));
            for count in row {
                let _ = write!(out, ",{count}");
            }
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self) -> String {
        // Strings, numbers and vectors of them: serialising cannot fail.
        serde_json::to_string_pretty(self).expect("invariant: Metrics always serialises to JSON")
    }
}

fn truncate(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        name.to_owned()
    } else {
        let kept: String = name.chars().take(width - 1).collect();
        format!("{kept}…")
    }
}

/// Quotes a CSV field when it needs it.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn hand_computed_example_with_a_never_predicted_class() -> Result<()> {
        // truth:     a a a b b c
        // predicted: a a b b a a   (c is never predicted; its precision is 0 by convention)
        let metrics = Metrics::from_labels(
            &names(&["a", "b", "c"]),
            &[0, 0, 0, 1, 1, 2],
            &[0, 0, 1, 1, 0, 0],
        )?;
        assert_eq!(metrics.matrix, vec![vec![2, 1, 0], vec![1, 1, 0], vec![1, 0, 0]]);
        assert!((metrics.accuracy - 3.0 / 6.0).abs() < 1e-12);
        let a = &metrics.per_class[0];
        assert!((a.precision - 2.0 / 4.0).abs() < 1e-12);
        assert!((a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.f1 - 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)).abs() < 1e-12);
        let b = &metrics.per_class[1];
        assert!((b.precision - 0.5).abs() < 1e-12 && (b.recall - 0.5).abs() < 1e-12);
        let c = &metrics.per_class[2];
        assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 1));
        let f1_a = 4.0 / 7.0;
        assert!((metrics.macro_f1 - (f1_a + 0.5 + 0.0) / 3.0).abs() < 1e-12);
        assert!((metrics.weighted_f1 - (f1_a * 3.0 + 0.5 * 2.0) / 6.0).abs() < 1e-12);
        assert_eq!(metrics.most_confused(3), vec![(0, 1, 1), (1, 0, 1), (2, 0, 1)]);
        Ok(())
    }

    #[test]
    fn renderings_carry_the_numbers() -> Result<()> {
        let metrics = Metrics::from_labels(&names(&["x,1", "y"]), &[0, 1, 1], &[0, 1, 0])?;
        let table = metrics.to_table();
        assert!(table.contains("1 (50%)"), "{table}");
        assert!(table.contains("accuracy     0.667"), "{table}");
        assert!(table.contains("y -> x,1: 1"), "{table}");
        assert_eq!(metrics.to_csv(), "true\\predicted,\"x,1\",y\n\"x,1\",1,0\ny,1,1\n");
        let json: serde_json::Value = serde_json::from_str(&metrics.to_json())
            .map_err(|e| Error::Plot { path: "json".into(), reason: e.to_string() })?;
        assert_eq!(json["matrix"][1][0], 1);
        assert_eq!(json["per_class"][1]["support"], 2);
        Ok(())
    }

    #[test]
    fn out_of_range_labels_are_errors() {
        assert!(Metrics::from_labels(&names(&["a"]), &[0], &[1]).is_err());
    }
}
