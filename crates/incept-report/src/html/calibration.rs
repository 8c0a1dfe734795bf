//! The report's calibration section: the expected calibration error before and after the run's
//! temperature, a reliability diagram, and the accuracy–coverage curve a "not sure" threshold
//! (`incept predict --min-confidence`) is picked from.

use std::fmt::Write as _;

use super::{ReportCalibration, escape, percent};
use crate::calibration::{
    CalibrationFigures, OPERATING_ACCURACIES, accuracy_coverage, apply_temperature,
    operating_point, reliability,
};
use crate::chart::{Chart, Series, line_chart};
use crate::predictions::PhotoPrediction;

/// The section's HTML for `predictions` (`tta`: their `probabilities` are TTA means).
pub(super) fn section(
    calibration: Option<&ReportCalibration>,
    predictions: &[PhotoPrediction],
    tta: bool,
) -> String {
    let mut html = String::from("<h2 id=\"calibration\">Calibration and \"not sure\"</h2>\n");
    let Some(calibration) = calibration else {
        html.push_str(
            "<p>The run has no temperature (trained by an earlier incept with TTA, which did not \
             record single-view probabilities, or validated on no photo): its probabilities are \
             the head's own and are not judged here.</p>\n",
        );
        return html;
    };
    // The rows the temperature is for, as the caller chose them: the TTA means, or each photo's
    // own view (what `predict` and the exported classifier see).
    let (rows, view): (Vec<Vec<f64>>, _) = if calibration.tta {
        (
            predictions.iter().map(|p| p.probabilities.clone()).collect(),
            "the mean over each photo's views (TTA, as `incept predict --tta` sees it)",
        )
    } else {
        (
            predictions
                .iter()
                .map(|p| p.single_view(tta).unwrap_or(&p.probabilities).clone())
                .collect(),
            "each photo alone (single view, as `incept predict` and the exported classifier see it)",
        )
    };
    let labels: Vec<usize> = predictions.iter().map(|p| p.truth).collect();
    let temperature = calibration.temperature;
    let figures = CalibrationFigures::measure(&rows, &labels, temperature);
    let calibrated: Vec<Vec<f64>> =
        rows.iter().map(|r| apply_temperature(r, temperature)).collect();
    let _ = write!(
        html,
        "<p class=\"note\">A head's probability is calibrated when, of the photos it gives 80 %, \
         80 % are right. incept divides the log-probabilities by a temperature T fitted on {} \
         (T &gt; 1 softens overconfident probabilities, T &lt; 1 sharpens underconfident ones; \
         the most probable class never changes). Judged here on {} of {} photos: {}.</p>\n\
         <div class=\"figures\">\
         <div class=\"figure\"><b>{temperature:.3}</b><span>temperature T</span></div>\
         <div class=\"figure\"><b>{}</b><span>expected calibration error before (15 bins)</span></div>\
         <div class=\"figure\"><b>{}</b><span>after</span></div></div>\n",
        escape(&calibration.fitted_on),
        escape(view),
        figures.photos,
        if calibration.fitted_here {
            "the photos it was fitted on"
        } else {
            "photos it was not fitted on"
        },
        percent(figures.expected_calibration_error_before),
        percent(figures.expected_calibration_error_after),
    );
    let bins = |rows: &[Vec<f64>]| -> Vec<(f64, f64)> {
        reliability(rows, &labels)
            .iter()
            .filter(|b| b.photos > 0)
            .map(|b| (b.confidence, b.accuracy))
            .collect()
    };
    let diagram = Chart {
        title: "Reliability: accuracy by confidence",
        x_label: "top probability (mean in each of 15 bins)",
        y_label: "accuracy",
        series: vec![
            Series { name: "perfect", colour: "#bbbbbb", points: vec![(0.0, 0.0), (1.0, 1.0)] },
            Series { name: "before", colour: "#ff7f0e", points: bins(&rows) },
            Series { name: "after T", colour: "#1f77b4", points: bins(&calibrated) },
        ],
        marker: None,
        percent: true,
        x_percent: true,
    };
    let curve = accuracy_coverage(&calibrated, &labels);
    let coverage = Chart {
        title: "Accuracy of the calls kept",
        x_label: "share of photos answered (the rest: not sure)",
        y_label: "accuracy",
        series: vec![Series {
            name: "calibrated",
            colour: "#1f77b4",
            points: curve.iter().map(|p| (p.coverage, p.accuracy)).collect(),
        }],
        marker: None,
        percent: true,
        x_percent: true,
    };
    let _ = write!(
        html,
        "<div class=\"charts\">{}{}</div>\n<table><tr><th>accuracy wanted</th><th>--min-confidence</th><th>photos answered</th><th>accuracy of those</th></tr>\n",
        line_chart(&diagram),
        line_chart(&coverage)
    );
    for target in OPERATING_ACCURACIES {
        match operating_point(&curve, target) {
            Some(point) => {
                let _ = writeln!(
                    html,
                    "<tr><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{} ({} of {})</td><td class=\"num\">{}</td></tr>",
                    percent(target),
                    // Rounded down: every photo the point keeps stays kept at the P shown.
                    (point.threshold * 1000.0).floor() / 1000.0,
                    percent(point.coverage),
                    point.kept,
                    figures.photos,
                    percent(point.accuracy)
                );
            }
            None => {
                let _ = writeln!(
                    html,
                    "<tr><td class=\"num\">{}</td><td colspan=\"3\">not reached at any threshold</td></tr>",
                    percent(target)
                );
            }
        }
    }
    let _ = writeln!(
        html,
        "</table>\n<p class=\"note\">A photo whose calibrated top probability is below the \
         threshold is answered \"not sure\" (<code>incept predict --min-confidence P</code>, \
         <code>incept export --min-confidence P</code>). Thresholds read off {} photos are \
         estimates: the accuracy of the calls kept has the uncertainty of a figure of that many \
         photos.</p>",
        figures.photos
    );
    html
}
