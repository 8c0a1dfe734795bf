//! A trained head's calibration: the temperatures its run fitted, read when it is loaded.

use std::path::Path;

use super::TrainedHead;
use crate::run_folder::{RunCalibration, RunState, read_calibration};

impl TrainedHead {
    /// The temperature for probabilities averaged over a photo's views (`tta`, falling back on
    /// the single view's) or of the photo alone; `None` when the run has none (trained by an
    /// earlier incept with TTA, or validated on no photo).
    pub fn temperature(&self, tta: bool) -> Option<f64> {
        let calibration = self.calibration.as_ref()?;
        match tta {
            true => calibration.temperature(true).or_else(|| calibration.temperature(false)),
            false => calibration.temperature(false),
        }
    }
}

/// The run's calibration; a damaged one is a warning, not a refusal: the head still classifies,
/// with its own probabilities.
pub(super) fn calibration_or_warn(
    run_dir: &Path,
    state: &RunState,
    tta: bool,
) -> Option<RunCalibration> {
    read_calibration(run_dir, state, tta).unwrap_or_else(|error| {
        eprintln!("warning: {error}; its probabilities are used uncalibrated");
        None
    })
}
