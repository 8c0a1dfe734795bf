//! The confusion matrix and what is derived from it: per-class precision, recall and F1,
//! accuracy, balanced accuracy, the worst class, their intervals, and their JSON (the table and
//! CSV are in `render`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::interval::{Interval, bootstrap, wilson};
use crate::{Error, Result};

/// Precision, recall, F1 and support of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    /// Wilson's 95 % interval of `recall` over the class's `support` photos.
    pub recall_interval: Interval,
    pub f1: f64,
    pub support: usize,
}

/// The class a head recognises worst: the lowest recall among the classes with at least one
/// sample (the first in class order among equals).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorstClass {
    pub class: String,
    pub recall: f64,
    /// Wilson's 95 % interval of `recall`.
    pub recall_interval: Interval,
}

/// A confusion matrix with its derived metrics; serialises to the JSON contract of
/// `incept confusion --format json` (and a run's `metrics.json`).
///
/// Deserialising keeps only `classes`, `matrix` and `single_view_accuracy` and derives the
/// rest from the matrix again, so files written before a field existed read with its right
/// value, never a default 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredMetrics")]
pub struct Metrics {
    pub classes: Vec<String>,
    /// `matrix[true][predicted]` counts.
    pub matrix: Vec<Vec<usize>>,
    pub accuracy: f64,
    /// Wilson's 95 % interval of `accuracy`.
    pub accuracy_interval: Interval,
    /// Mean recall of the classes with at least one sample; classes without samples are left
    /// out of the mean (not counted as 0). 0 when no class has a sample.
    pub balanced_accuracy: f64,
    /// The 95 % percentile bootstrap interval of `balanced_accuracy` over photos
    /// ([`crate::interval::bootstrap`]).
    pub balanced_accuracy_interval: Interval,
    /// The lowest recall among the classes with at least one sample; `None` when none has.
    pub worst_class: Option<WorstClass>,
    /// Mean F1 of the classes with at least one sample or one prediction; a class with neither
    /// (absent from a cache of some classes only) is left out, as scikit-learn's `f1_score`
    /// does. 0 when no class has either.
    pub macro_f1: f64,
    /// The 95 % percentile bootstrap interval of `macro_f1` over photos.
    pub macro_f1_interval: Interval,
    pub weighted_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// When `accuracy` averages each photo's augmented views (test-time augmentation): the
    /// accuracy of the photo itself alone, what a single prediction gets. Set with
    /// [`Metrics::set_single_view_accuracy`], which sets its interval too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_view_accuracy: Option<f64>,
    /// Wilson's 95 % interval of `single_view_accuracy`, over the same photos.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_view_accuracy_interval: Option<Interval>,
}

/// What a metrics JSON must hold: the matrix and what cannot be derived from it. Other keys
/// are derived again (and ignored when present).
#[derive(Deserialize)]
struct StoredMetrics {
    classes: Vec<String>,
    matrix: Vec<Vec<usize>>,
    #[serde(default)]
    single_view_accuracy: Option<f64>,
}

impl TryFrom<StoredMetrics> for Metrics {
    type Error = String;

    fn try_from(stored: StoredMetrics) -> Result<Self, String> {
        let n = stored.classes.len();
        // `from_matrix` indexes the matrix by class: a square matrix of the classes' size only.
        if stored.matrix.len() != n || stored.matrix.iter().any(|row| row.len() != n) {
            let widths: Vec<usize> = stored.matrix.iter().map(Vec::len).collect();
            return Err(format!(
                "`matrix` must be {n} × {n} counts (a row and a column per class), its rows hold {widths:?}"
            ));
        }
        let mut metrics = Metrics::from_matrix(stored.classes, stored.matrix);
        metrics.set_single_view_accuracy(stored.single_view_accuracy);
        Ok(metrics)
    }
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

    /// The metrics of a square matrix, [classes][classes], rows true classes. Classes without
    /// samples get recall 0 but are left out of `balanced_accuracy` and `worst_class`.
    pub fn from_matrix(classes: Vec<String>, matrix: Vec<Vec<usize>>) -> Self {
        let n = classes.len();
        let total: usize = matrix.iter().flatten().sum();
        let correct: usize = (0..n).map(|i| matrix[i][i]).sum();
        let counts = class_counts(&matrix);
        let per_class: Vec<ClassMetrics> = counts
            .iter()
            .zip(&classes)
            .map(|(c, class)| ClassMetrics {
                class: class.clone(),
                precision: c.precision(),
                recall: c.recall(),
                recall_interval: wilson(c.correct, c.support),
                f1: c.f1(),
                support: c.support,
            })
            .collect();
        let weighted_f1 = if total == 0 {
            0.0
        } else {
            per_class.iter().map(|c| c.f1 * c.support as f64).sum::<f64>() / total as f64
        };
        // The classes macro-F1 averages are those of the whole matrix, in every resample too: a
        // rare class missing from a resample counts its 0, as it does in the figure.
        let judged = judged_classes(&matrix);
        let figures = |m: &[Vec<usize>]| balanced_accuracy_and_macro_f1(m, &judged);
        let [balanced_accuracy, macro_f1] = figures(&matrix);
        let [balanced_accuracy_interval, macro_f1_interval] = bootstrap(&matrix, figures);
        let worst_class = per_class
            .iter()
            .filter(|c| c.support > 0)
            .reduce(|worst, class| if class.recall < worst.recall { class } else { worst })
            .map(|class| WorstClass {
                class: class.class.clone(),
                recall: class.recall,
                recall_interval: class.recall_interval,
            });
        Metrics {
            classes,
            matrix,
            accuracy: ratio(correct, total),
            accuracy_interval: wilson(correct, total),
            balanced_accuracy,
            balanced_accuracy_interval,
            worst_class,
            macro_f1,
            macro_f1_interval,
            weighted_f1,
            per_class,
            single_view_accuracy: None,
            single_view_accuracy_interval: None,
        }
    }

    /// Sets the single-view accuracy (of the same photos as the matrix) and its interval.
    pub fn set_single_view_accuracy(&mut self, accuracy: Option<f64>) {
        let total = self.total();
        self.single_view_accuracy = accuracy;
        // Stored as a fraction of the matrix's photos: the count it was made of is exact.
        self.single_view_accuracy_interval =
            accuracy.map(|a| wilson((a * total as f64).round() as usize, total));
    }

    /// Reads metrics written by [`Self::to_json`] (a run's `metrics.json`, `path`, for errors),
    /// those of earlier versions included: every figure is derived from the matrix again.
    pub fn from_json(json: &[u8], path: &Path) -> Result<Self> {
        serde_json::from_slice(json)
            .map_err(|e| Error::MetricsJson { path: path.to_path_buf(), reason: e.to_string() })
    }

    pub fn total(&self) -> usize {
        self.matrix.iter().flatten().sum()
    }

    /// Classes with at least one sample: those `balanced_accuracy` averages.
    pub fn sampled_classes(&self) -> usize {
        self.per_class.iter().filter(|c| c.support > 0).count()
    }

    /// Classes with at least one sample or one prediction: those `macro_f1` averages.
    pub fn f1_classes(&self) -> usize {
        judged_classes(&self.matrix).iter().filter(|&&judged| judged).count()
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

    pub fn to_json(&self) -> String {
        // Strings, numbers and vectors of them: serialising cannot fail.
        serde_json::to_string_pretty(self).expect("invariant: Metrics always serialises to JSON")
    }
}

/// `a / b`, 0 when `b` is 0.
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One class's counts in a matrix.
struct ClassCounts {
    /// Photos of the class called the class.
    correct: usize,
    /// Photos of the class.
    support: usize,
    /// Photos called the class.
    predicted: usize,
}

impl ClassCounts {
    fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }

    fn recall(&self) -> f64 {
        ratio(self.correct, self.support)
    }

    fn f1(&self) -> f64 {
        let (precision, recall) = (self.precision(), self.recall());
        if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        }
    }
}

/// Whether each class has at least one sample or one prediction: the classes macro-F1 averages.
fn judged_classes(matrix: &[Vec<usize>]) -> Vec<bool> {
    class_counts(matrix).iter().map(|c| c.support > 0 || c.predicted > 0).collect()
}

fn class_counts(matrix: &[Vec<usize>]) -> Vec<ClassCounts> {
    (0..matrix.len())
        .map(|i| ClassCounts {
            correct: matrix[i][i],
            support: matrix[i].iter().sum(),
            predicted: matrix.iter().map(|row| row[i]).sum(),
        })
        .collect()
}

/// Balanced accuracy (mean recall of the classes with samples: a class without any has no
/// recall to speak of, and counting it as 0 would punish the head for a class it was never
/// shown) and macro-F1 (mean F1 of the classes with samples or predictions: a class with
/// neither has no F1 to speak of; one predicted but absent counts its 0) of a matrix; what the
/// bootstrap recomputes on each resample. `judged[c]`: class c has samples or predictions in
/// the whole matrix ([`judged_classes`]).
fn balanced_accuracy_and_macro_f1(matrix: &[Vec<usize>], judged: &[bool]) -> [f64; 2] {
    let counts = class_counts(matrix);
    let sampled: Vec<&ClassCounts> = counts.iter().filter(|c| c.support > 0).collect();
    let balanced = if sampled.is_empty() {
        0.0
    } else {
        sampled.iter().map(|c| c.recall()).sum::<f64>() / sampled.len() as f64
    };
    let judged: Vec<&ClassCounts> =
        counts.iter().zip(judged).filter(|(_, judged)| **judged).map(|(c, _)| c).collect();
    let macro_f1 = if judged.is_empty() {
        0.0
    } else {
        judged.iter().map(|c| c.f1()).sum::<f64>() / judged.len() as f64
    };
    [balanced, macro_f1]
}

mod render;
#[cfg(test)]
mod tests;

pub use render::shorten;
