//! `calibration.json`: the temperatures fitted on a run's validation photos (or a
//! cross-validation's out-of-fold predictions), committed with the best epoch's predictions they
//! were fitted on; derived from `predictions.csv` for runs of an earlier incept.

use std::path::Path;

use incept_report::calibration::Calibration;
use incept_report::{PhotoPrediction, read_predictions_csv};
use serde::{Deserialize, Serialize};

use super::{PREDICTIONS_CSV, RunState, committed_file, not_a_run};
use crate::{Error, Result};

pub const CALIBRATION_JSON: &str = "calibration.json";

/// What a run's temperatures were fitted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FittedOn {
    /// The best epoch's validation photos.
    Validation,
    /// A cross-validation's pooled out-of-fold predictions: every photo, each by the head that
    /// never trained on it.
    OutOfFold,
}

/// A run's calibration: one temperature for a single prediction (`incept predict`, the exported
/// classifier) and, for a run validated with TTA, one for the mean over a photo's views
/// (`predict --tta`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunCalibration {
    pub fitted_on: FittedOn,
    /// Fitted on each photo's own view (those whose own view was validated); `None` without
    /// such photos (a refit; a TTA run of an earlier incept, which did not record single-view
    /// probabilities) or when the fit is degenerate (every photo right, say).
    pub single_view: Option<Calibration>,
    /// Fitted on the TTA means; `None` without TTA.
    pub tta: Option<Calibration>,
}

impl RunCalibration {
    /// Fits the temperatures on `predictions` of a run validated with `tta` or without.
    pub fn fit(predictions: &[PhotoPrediction], tta: bool, fitted_on: FittedOn) -> Self {
        let labels: Vec<usize> = predictions.iter().map(|p| p.truth).collect();
        // The photos whose own view was validated (with TTA, all but those without variant 0).
        let (single_rows, single_labels): (Vec<Vec<f64>>, Vec<usize>) = predictions
            .iter()
            .filter_map(|p| p.single_view(tta).map(|row| (row.clone(), p.truth)))
            .unzip();
        let single_view = Calibration::fit(&single_rows, &single_labels);
        let tta = if tta {
            let rows: Vec<Vec<f64>> = predictions.iter().map(|p| p.probabilities.clone()).collect();
            Calibration::fit(&rows, &labels)
        } else {
            None
        };
        RunCalibration { fitted_on, single_view, tta }
    }

    /// The temperature for probabilities averaged over a photo's views (`tta`) or of the photo
    /// alone; `None` when none was fitted for them.
    pub fn temperature(&self, tta: bool) -> Option<f64> {
        let calibration = if tta { self.tta.as_ref() } else { self.single_view.as_ref() };
        calibration.map(|c| c.temperature)
    }

    pub fn to_json(&self) -> String {
        // Plain data of numbers and strings: serialising it cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// The calibration of the run in `run_dir`: its committed `calibration.json`, else (a run of
/// an earlier incept) fitted again on its committed `predictions.csv`; `None` when it has
/// neither (no epoch finished).
pub fn read_calibration(
    run_dir: &Path,
    state: &RunState,
    tta: bool,
) -> Result<Option<RunCalibration>> {
    let path = committed_file(run_dir, CALIBRATION_JSON, state);
    match std::fs::read(&path) {
        Ok(bytes) => {
            return serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                not_a_run(
                    run_dir,
                    format!(
                        "{}: {e}; the file is damaged: delete it and incept fits the \
                         temperatures again from predictions.csv",
                        path.display()
                    ),
                )
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Io { path, source }),
    }
    let predictions = committed_file(run_dir, PREDICTIONS_CSV, state);
    if !predictions.exists() {
        return Ok(None);
    }
    let photos = read_predictions_csv(&predictions, &state.classes)?;
    let fitted_on =
        if state.cross_validation.is_some() { FittedOn::OutOfFold } else { FittedOn::Validation };
    Ok(Some(RunCalibration::fit(&photos, tta, fitted_on)))
}
