//! How `train-head` and `confusion` show a run's calibration: the temperatures and the expected
//! calibration error before and after them, on the photos they were fitted on or on others.

use incept_head::run_folder::{FittedOn, RunCalibration};
use incept_head::{CachePhoto, TrainedHead};
use incept_report::calibration::{Calibration, CalibrationFigures};

/// "temperature 0.85, expected calibration error 6.1 % → 2.0 %".
fn figures_text(temperature: f64, figures: &CalibrationFigures) -> String {
    format!(
        "temperature {temperature:.3}, expected calibration error {:.1} % → {:.1} %",
        100.0 * figures.expected_calibration_error_before,
        100.0 * figures.expected_calibration_error_after,
    )
}

/// One line: the run's temperatures and what they did on the photos they were fitted on.
pub fn fitted_line(calibration: &RunCalibration) -> String {
    let on = match calibration.fitted_on {
        FittedOn::Validation => "validation photos",
        FittedOn::OutOfFold => "out-of-fold predictions",
    };
    let part = |name: &str, c: &Calibration| {
        format!("{name} {} ({} photos)", figures_text(c.temperature, &c.figures), c.figures.photos)
    };
    let mut parts = Vec::new();
    if let Some(single) = &calibration.single_view {
        parts.push(part("single view:", single));
    }
    if let Some(tta) = &calibration.tta {
        parts.push(part("with TTA:", tta));
    }
    if parts.is_empty() {
        return "calibration: none fitted (no validation photo, a TTA run of an earlier incept \
                without single-view probabilities, or every validation photo right: a \
                degenerate fit): probabilities are the head's own"
            .to_owned();
    }
    format!("calibration fitted on the {on}, {}", parts.join("; "))
}

/// The figures of the run's temperature on photos of another cache (`tta`: their TTA means),
/// photos it was not fitted on; `None` when the run has no temperature for them.
pub fn held_out(
    head: &TrainedHead,
    photos: &[CachePhoto],
    tta: bool,
) -> Option<(f64, CalibrationFigures)> {
    let temperature = head.temperature(tta)?;
    let labels: Vec<usize> = photos.iter().map(|p| p.label).collect();
    let rows: Vec<Vec<f64>> = photos.iter().map(|p| p.probabilities.clone()).collect();
    Some((temperature, CalibrationFigures::measure(&rows, &labels, temperature)))
}

/// The line of [`held_out`]'s figures.
pub fn held_out_line(figures: Option<&(f64, CalibrationFigures)>, tta: bool) -> String {
    match figures {
        Some((temperature, figures)) => format!(
            "calibration on these {} photos (not fitted on them{}): {}",
            figures.photos,
            if tta { ", TTA means" } else { "" },
            figures_text(*temperature, figures)
        ),
        None => "calibration: the run has no temperature for these predictions".to_owned(),
    }
}
