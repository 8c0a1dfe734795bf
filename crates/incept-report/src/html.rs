//! The HTML report of a head: one self-contained file (thumbnails embedded as `data:` URIs,
//! charts as inline SVG, no script, no network) that any browser opens.
//!
//! It holds the run's recipe and headline figures, the confusion matrix as a heatmap table,
//! per-class precision/recall/F1, training curves, the photos behind the most confused pairs
//! and the photos with the highest loss, each with its path so that it can be found and fixed.

use std::path::{Path, PathBuf};

use crate::predictions::{EpochCurve, PhotoPrediction, confused_photos, top_losses};
use crate::suspects::find_suspects;
use crate::thumbnail::make_thumbnails;
use crate::{Error, Metrics, Result};

mod calibration;
mod render;
use render::Renderer;

/// The temperature a report judges, and where it was fitted.
#[derive(Clone, Debug)]
pub struct ReportCalibration {
    pub temperature: f64,
    /// Whether it is the temperature for TTA means; else for single views, which every
    /// prediction then holds (`PhotoPrediction::single_view`).
    pub tta: bool,
    /// What it was fitted on, a phrase ("the run's 412 validation photos").
    pub fitted_on: String,
    /// Whether the report's photos are the ones it was fitted on.
    pub fitted_here: bool,
}

/// What a report is made of; the caller reads it from a run folder (or evaluates a cache).
#[derive(Clone, Debug)]
pub struct ReportData {
    /// The run's name (its folder's name).
    pub run_name: String,
    pub run_dir: PathBuf,
    /// The recipe's main fields in display order: (name, value).
    pub recipe: Vec<(String, String)>,
    /// The run's `config.toml` as written, shown whole (folded).
    pub recipe_text: Option<String>,
    /// The metrics of `predictions` (their confusion matrix), with the single-view accuracy
    /// when the predictions average augmented views.
    pub metrics: Metrics,
    pub predictions: Vec<PhotoPrediction>,
    /// Where the predictions come from, one sentence (the run's validation photos, another
    /// cache, ...).
    pub predictions_from: String,
    /// Whether each photo's probabilities are the mean over its augmented views (test-time
    /// augmentation) rather than those of the photo alone.
    pub tta: bool,
    pub epochs: Vec<EpochCurve>,
    /// The epoch whose weights made the predictions, when they are the run's own.
    pub best_epoch: Option<usize>,
    /// The folder the predictions' sources are relative to: the one the cache was extracted
    /// from.
    pub photos_dir: PathBuf,
    /// The run's temperature; `None` when it has none.
    pub calibration: Option<ReportCalibration>,
}

/// How much the report shows.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Most confused (true, predicted) pairs shown with their photos.
    pub confused_pairs: usize,
    /// Photos shown per confused pair (the most confident mistakes).
    pub photos_per_pair: usize,
    /// Photos shown in the top-losses section.
    pub top_losses: usize,
    /// Photos shown in the probably-mislabelled section ([`crate::suspects`]).
    pub suspects: usize,
    /// Longest side of a thumbnail, pixels.
    pub thumbnail_side: u32,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            confused_pairs: 4,
            photos_per_pair: 12,
            top_losses: 24,
            suspects: 24,
            thumbnail_side: crate::thumbnail::LONG_SIDE,
        }
    }
}

/// A rendered report.
#[derive(Clone, Debug)]
pub struct Page {
    pub html: String,
    /// `<img>` elements on the page (one per photo card whose photo could be read).
    pub thumbnails: usize,
    /// Photo cards shown as a placeholder box (photo missing or unreadable).
    pub placeholders: usize,
    /// One line per photo that could not be shown, naming its path.
    pub warnings: Vec<String>,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Row share → background colour, white to dark blue, as in the PNG heatmap ([`crate::plot`]).
fn shade(share: f64) -> String {
    let s = share.clamp(0.0, 1.0);
    let mix = |light: f64, dark: f64| (light + (dark - light) * s).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(247.0, 8.0), mix(251.0, 48.0), mix(255.0, 107.0))
}

/// [`escape`]d, with line-break opportunities after underscores, so that long names such as
/// `Culex_quinquefasciatus` wrap in narrow cells instead of widening them (element content only:
/// never in an attribute).
fn breakable(text: &str) -> String {
    escape(text).replace('_', "_<wbr>")
}

fn percent(fraction: f64) -> String {
    format!("{:.1}%", 100.0 * fraction)
}

/// A most confused cell, (true class, predicted class, photos), with its photos, the most
/// confident mistakes first.
type ConfusedPair<'a> = ((usize, usize, usize), Vec<&'a PhotoPrediction>);

/// Picks the photos to show, makes their thumbnails (in parallel) and renders the page.
/// Fails only when no photo to show is under `data.photos_dir` (the wrong folder).
pub fn build(data: &ReportData, layout: &Layout) -> Result<Page> {
    let pairs: Vec<ConfusedPair> = data
        .metrics
        .most_confused(layout.confused_pairs)
        .into_iter()
        .map(|(t, p, count)| ((t, p, count), confused_photos(&data.predictions, t, p)))
        .collect();
    let losses = top_losses(&data.predictions, layout.top_losses);
    let suspects = find_suspects(data.metrics.classes.len(), &data.predictions);
    let by_source: std::collections::HashMap<&str, &PhotoPrediction> =
        data.predictions.iter().map(|p| (p.source.as_str(), p)).collect();
    let suspected: Vec<&PhotoPrediction> = suspects
        .iter()
        .take(layout.suspects)
        .filter_map(|s| by_source.get(s.source.as_str()).copied())
        .collect();
    let shown: Vec<&str> = pairs
        .iter()
        .flat_map(|(_, photos)| photos.iter().take(layout.photos_per_pair))
        .chain(&losses)
        .chain(&suspected)
        .map(|p| p.source.as_str())
        .collect();
    let thumbnails = make_thumbnails(&data.photos_dir, &shown, layout.thumbnail_side)?;
    // Full paths on the page are absolute and without `..`, to be pasted into a file manager.
    let photos_root = std::fs::canonicalize(&data.photos_dir)
        .or_else(|_| std::path::absolute(&data.photos_dir))
        .unwrap_or_else(|_| data.photos_dir.clone());
    let mut page = Renderer {
        data,
        thumbnails: &thumbnails,
        photos_root,
        html: String::new(),
        images: 0,
        placeholders: 0,
    };
    page.render(&pairs, &losses, (&suspected, suspects.len()), layout);
    Ok(Page {
        html: page.html,
        thumbnails: page.images,
        placeholders: page.placeholders,
        warnings: thumbnails.warnings(),
    })
}

/// Writes the page whole ([`incept_core::atomic`]): a reader never finds half a report.
pub fn write(path: &Path, page: &Page) -> Result<()> {
    incept_core::write_atomically(path, page.html.as_bytes()).map_err(|error| match error {
        incept_core::Error::Io { path, source } => Error::Io { path, source },
        other => {
            Error::Io { path: path.to_path_buf(), source: std::io::Error::other(other.to_string()) }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headline_shows_balanced_accuracy_and_the_worst_class_beside_accuracy() -> Result<()> {
        let photos =
            tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        // Recalls 9/10, 1/2 and none (no photo): balanced accuracy 70 %, the worst class `rare`.
        let classes = vec!["common".to_owned(), "rare & co".to_owned(), "unseen".to_owned()];
        let metrics =
            Metrics::from_matrix(classes, vec![vec![9, 1, 0], vec![1, 1, 0], vec![0, 0, 0]]);
        let data = ReportData {
            run_name: "run".into(),
            run_dir: "runs/run".into(),
            recipe: Vec::new(),
            recipe_text: None,
            metrics,
            predictions: Vec::new(),
            predictions_from: "Hand-made.".into(),
            tta: false,
            epochs: Vec::new(),
            best_epoch: None,
            photos_dir: photos.path().to_path_buf(),
            calibration: None,
        };
        let balanced_interval = data.metrics.balanced_accuracy_interval;
        let html = build(&data, &Layout::default())?.html;
        let figure = |value: &str, interval: crate::Interval, label: &str| {
            format!(
                "<div class=\"figure\"><b>{value}</b><small>95 % interval {:.1}–{:.1} %</small><span>{label}</span></div>",
                100.0 * interval.low,
                100.0 * interval.high
            )
        };
        let wilson = crate::interval::wilson;
        let accuracy = figure("83.3%", wilson(10, 12), "accuracy (each photo alone, single view)");
        let balanced = figure(
            "70.0%",
            balanced_interval,
            "balanced accuracy (mean recall of the 2 classes with photos)",
        );
        let worst = figure("50.0%", wilson(1, 2), "recall of the worst class, rare &amp; co");
        let expected = format!("{accuracy}\n{balanced}\n{worst}\n");
        assert!(html.contains(&expected), "{html}");
        Ok(())
    }
}
