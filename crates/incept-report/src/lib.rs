//! Stage 3 of incept: judging a head. Confusion matrices, per-class precision/recall/F1,
//! renderings as an aligned table, CSV and JSON, heatmaps ([`plot`]), and a self-contained
//! HTML report with the photos behind the mistakes ([`html`], from [`predictions`], with
//! [`thumbnail`]s).
//!
//! Conventions: rows are true classes, columns predicted classes. A class that is never
//! predicted has precision 0 (not undefined); a class with no samples has recall 0; F1 is 0
//! when precision + recall is 0. Balanced accuracy is the mean recall of the classes with at
//! least one sample, and the worst class the one of them with the lowest recall (the first in
//! class order among equals): a class with no samples is left out of both, not counted as 0.
//! Macro-F1 is the mean F1 of the classes with at least one sample or one prediction: a class
//! with neither (a cache of some of the classes) is left out; one predicted but absent counts.

use std::path::PathBuf;

pub mod calibration;
mod chart;
mod html;
pub mod interval;
mod metrics;
pub mod paired;
mod plot;
mod predictions;
pub mod suspects;
mod thumbnail;

pub use html::{Layout, ReportCalibration, ReportData, build as build_html, write as write_html};
pub use interval::Interval;
pub use metrics::{ClassMetrics, Metrics, WorstClass, shorten};
pub use plot::heatmap;
pub use predictions::{
    EpochCurve, PhotoPrediction, SINGLE_VIEW_COLUMN, SINGLE_VIEW_PROBABILITY_PREFIX, metrics_of,
    read_predictions_csv, top_losses,
};

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
    #[error("{path}: {reason}; the file is damaged")]
    MetricsJson { path: PathBuf, reason: String },
    #[error("{path} line {line}: {reason}")]
    Predictions { path: PathBuf, line: usize, reason: String },
    #[error(
        "{folder}: none of the {count} photos the report shows is there (the first: {example}); pass --photos the folder the cache was extracted from, the one holding its class sub-folders"
    )]
    PhotosMissing { folder: PathBuf, count: usize, example: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Quotes a CSV field when it needs it.
pub fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}
