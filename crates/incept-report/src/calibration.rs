//! Calibration: one temperature that makes a head's probabilities mean what they say, how far
//! they are from meaning it (expected calibration error over reliability bins), and the
//! accuracy–coverage curve a "not sure" threshold is chosen from.
//!
//! The temperature T rescales the log of a head's probabilities: p' = softmax(ln p / T). For
//! one head's single view that is softmax(logits / T) exactly (ln p is the logits less a
//! constant per row); for an ensemble or a TTA mean it rescales the log of the mean, as the
//! exported graph does. A temperature never changes which class is most probable.

use serde::{Deserialize, Serialize};

/// Reliability bins of equal width over [0, 1] for the expected calibration error (Guo et al.
/// 2017 use 15).
pub const ECE_BINS: usize = 15;
/// The temperatures a fit may return: beyond them a head is degenerate, not miscalibrated.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.05, 20.0);
/// A fitted temperature this close to a bound of [`TEMPERATURE_RANGE`] (as a ratio) is taken for
/// the bound: a degenerate fit.
const BOUND_MARGIN: f64 = 1.01;
/// Probabilities are floored here before their log (written probabilities are rounded).
pub const PROBABILITY_FLOOR: f64 = 1e-12;
/// The accuracies the report offers a threshold for.
pub const OPERATING_ACCURACIES: [f64; 3] = [0.80, 0.90, 0.95];

/// `probabilities` ([classes], summing to 1) at `temperature`: softmax(ln p / T).
pub fn apply_temperature(probabilities: &[f64], temperature: f64) -> Vec<f64> {
    let scaled: Vec<f64> =
        probabilities.iter().map(|p| p.max(PROBABILITY_FLOOR).ln() / temperature).collect();
    let top = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exponentials: Vec<f64> = scaled.iter().map(|s| (s - top).exp()).collect();
    let total: f64 = exponentials.iter().sum();
    exponentials.iter().map(|e| e / total).collect()
}

/// Mean negative log-likelihood of `labels` under `rows` at `temperature`, nats.
pub fn negative_log_likelihood(rows: &[Vec<f64>], labels: &[usize], temperature: f64) -> f64 {
    let total: f64 = rows
        .iter()
        .zip(labels)
        .map(|(row, &label)| {
            let scaled = apply_temperature(row, temperature);
            -scaled.get(label).copied().unwrap_or(0.0).max(PROBABILITY_FLOOR).ln()
        })
        .sum();
    total / rows.len().max(1) as f64
}

/// The temperature in [`TEMPERATURE_RANGE`] that minimises the negative log-likelihood of
/// `labels` (deterministic: a grid over ln T, then golden-section search around its best).
pub fn fit_temperature(rows: &[Vec<f64>], labels: &[usize]) -> f64 {
    if rows.is_empty() {
        return 1.0;
    }
    let (low, high) = (TEMPERATURE_RANGE.0.ln(), TEMPERATURE_RANGE.1.ln());
    let loss = |log_t: f64| negative_log_likelihood(rows, labels, log_t.exp());
    const GRID: usize = 60;
    let step = (high - low) / GRID as f64;
    let best = (0..=GRID)
        .map(|i| low + step * i as f64)
        .map(|x| (x, loss(x)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0.0, |(x, _)| x);
    // The negative log-likelihood is convex in 1/T; around the grid's best it is unimodal.
    let (mut a, mut b) = ((best - step).max(low), (best + step).min(high));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - ratio * (b - a), a + ratio * (b - a));
    let (mut loss_c, mut loss_d) = (loss(c), loss(d));
    for _ in 0..60 {
        if loss_c <= loss_d {
            (b, d, loss_d) = (d, c, loss_c);
            c = b - ratio * (b - a);
            loss_c = loss(c);
        } else {
            (a, c, loss_c) = (c, d, loss_d);
            d = a + ratio * (b - a);
            loss_d = loss(d);
        }
    }
    ((a + b) / 2.0).exp()
}

/// One reliability bin: the photos whose top probability lies in [`lower`, `upper`) (the last
/// bin includes 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub photos: usize,
    /// Mean top probability of its photos (0 when empty).
    pub confidence: f64,
    /// Share of its photos whose most probable class is right (0 when empty).
    pub accuracy: f64,
}

/// The top probability of a row and whether its class is `label`.
fn confidence_and_hit(row: &[f64], label: usize) -> (f64, bool) {
    let (class, confidence) = row
        .iter()
        .copied()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (c, p)| if p > best.1 { (c, p) } else { best });
    (confidence, class == label)
}

/// The [`ECE_BINS`] reliability bins of `rows` against `labels`.
pub fn reliability(rows: &[Vec<f64>], labels: &[usize]) -> Vec<ReliabilityBin> {
    let mut sums = vec![(0usize, 0.0f64, 0usize); ECE_BINS];
    for (row, &label) in rows.iter().zip(labels) {
        let (confidence, hit) = confidence_and_hit(row, label);
        let bin = ((confidence * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        sums[bin].0 += 1;
        sums[bin].1 += confidence;
        sums[bin].2 += usize::from(hit);
    }
    sums.iter()
        .enumerate()
        .map(|(bin, &(photos, confidence, hits))| ReliabilityBin {
            lower: bin as f64 / ECE_BINS as f64,
            upper: (bin + 1) as f64 / ECE_BINS as f64,
            photos,
            confidence: if photos == 0 { 0.0 } else { confidence / photos as f64 },
            accuracy: if photos == 0 { 0.0 } else { hits as f64 / photos as f64 },
        })
        .collect()
}

/// Expected calibration error: the photo-weighted mean gap between the top probability and
/// the accuracy over [`ECE_BINS`] bins; in [0, 1].
pub fn expected_calibration_error(rows: &[Vec<f64>], labels: &[usize]) -> f64 {
    let bins = reliability(rows, labels);
    let total: usize = bins.iter().map(|b| b.photos).sum();
    bins.iter().map(|b| b.photos as f64 * (b.confidence - b.accuracy).abs()).sum::<f64>()
        / total.max(1) as f64
}

/// How well probabilities were calibrated before and after a temperature, on some photos.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationFigures {
    pub photos: usize,
    pub expected_calibration_error_before: f64,
    pub expected_calibration_error_after: f64,
    pub negative_log_likelihood_before: f64,
    pub negative_log_likelihood_after: f64,
}

impl CalibrationFigures {
    /// The figures of `rows` against `labels` at temperature 1 and at `temperature`.
    pub fn measure(rows: &[Vec<f64>], labels: &[usize], temperature: f64) -> Self {
        let after: Vec<Vec<f64>> = rows.iter().map(|r| apply_temperature(r, temperature)).collect();
        CalibrationFigures {
            photos: rows.len(),
            expected_calibration_error_before: expected_calibration_error(rows, labels),
            expected_calibration_error_after: expected_calibration_error(&after, labels),
            negative_log_likelihood_before: negative_log_likelihood(rows, labels, 1.0),
            negative_log_likelihood_after: negative_log_likelihood(rows, labels, temperature),
        }
    }
}

/// A temperature fitted on some photos, and the figures on them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub temperature: f64,
    #[serde(flatten)]
    pub figures: CalibrationFigures,
}

impl Calibration {
    /// Fits the temperature on `rows` and `labels`; `None` without photos, or when the fit is
    /// degenerate: at a bound of [`TEMPERATURE_RANGE`], as when every photo is classified right
    /// (the log-loss then only falls as T shrinks, and T = 0.05 would call every answer
    /// certain).
    pub fn fit(rows: &[Vec<f64>], labels: &[usize]) -> Option<Self> {
        if rows.is_empty() {
            return None;
        }
        let temperature = fit_temperature(rows, labels);
        let (low, high) = TEMPERATURE_RANGE;
        if temperature <= low * BOUND_MARGIN || temperature >= high / BOUND_MARGIN {
            return None;
        }
        Some(Calibration {
            temperature,
            figures: CalibrationFigures::measure(rows, labels, temperature),
        })
    }
}

/// One threshold of the accuracy–coverage curve: calls with a top probability of at least
/// `threshold` are kept, the others answered "not sure".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoveragePoint {
    pub threshold: f64,
    /// Share of the photos kept.
    pub coverage: f64,
    /// Share of the kept photos classified right.
    pub accuracy: f64,
    pub kept: usize,
}

/// The accuracy–coverage curve of `rows` (calibrated) against `labels`: one point per distinct
/// top probability, from the most confident photo alone to every photo kept.
pub fn accuracy_coverage(rows: &[Vec<f64>], labels: &[usize]) -> Vec<CoveragePoint> {
    let mut calls: Vec<(f64, bool)> =
        rows.iter().zip(labels).map(|(row, &label)| confidence_and_hit(row, label)).collect();
    calls.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total = calls.len().max(1) as f64;
    let mut points: Vec<CoveragePoint> = Vec::new();
    let mut hits = 0;
    for (index, &(confidence, hit)) in calls.iter().enumerate() {
        hits += usize::from(hit);
        let kept = index + 1;
        // Photos of equal confidence are kept or dropped together.
        if calls.get(index + 1).is_some_and(|next| next.0 == confidence) {
            continue;
        }
        points.push(CoveragePoint {
            threshold: confidence,
            coverage: kept as f64 / total,
            accuracy: hits as f64 / kept as f64,
            kept,
        });
    }
    points
}

/// The point of `curve` that keeps the most photos at an accuracy of at least `target`.
pub fn operating_point(curve: &[CoveragePoint], target: f64) -> Option<&CoveragePoint> {
    curve.iter().filter(|p| p.accuracy >= target).max_by(|a, b| a.kept.cmp(&b.kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded generator of uniform numbers in [0, 1) (SplitMix64).
    fn uniform(state: &mut u64) -> f64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Photos whose true probabilities are softmax(z) with the label drawn from them, and the
    /// head's overconfident report of them, softmax(z · `sharpen`).
    fn overconfident(photos: usize, sharpen: f64, seed: u64) -> (Vec<Vec<f64>>, Vec<usize>) {
        let mut state = seed;
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..photos {
            let logits: Vec<f64> = (0..4).map(|_| 3.0 * uniform(&mut state)).collect();
            let truth = apply_temperature(&logits.iter().map(|z| z.exp()).collect::<Vec<_>>(), 1.0);
            let draw = uniform(&mut state);
            let mut cumulative = 0.0;
            let label = truth
                .iter()
                .position(|p| {
                    cumulative += p;
                    draw < cumulative
                })
                .unwrap_or(3);
            rows.push(apply_temperature(&truth, 1.0 / sharpen));
            labels.push(label);
        }
        (rows, labels)
    }

    #[test]
    fn temperature_recovers_a_known_sharpening() {
        let (rows, labels) = overconfident(4000, 2.5, 7);
        let temperature = fit_temperature(&rows, &labels);
        assert!((temperature - 2.5).abs() < 0.25, "fitted {temperature}, sharpened by 2.5");
        let calibration = Calibration::fit(&rows, &labels).expect("photos");
        let figures = &calibration.figures;
        assert!(figures.expected_calibration_error_before > 0.1, "{figures:?}");
        assert!(
            figures.expected_calibration_error_after
                < figures.expected_calibration_error_before / 3.0,
            "{figures:?}"
        );
        assert!(figures.negative_log_likelihood_after < figures.negative_log_likelihood_before);
        // Held-out photos of the same kind: the fitted temperature calibrates them too.
        let (held_rows, held_labels) = overconfident(4000, 2.5, 8);
        let held = CalibrationFigures::measure(&held_rows, &held_labels, temperature);
        assert!(
            held.expected_calibration_error_after < held.expected_calibration_error_before / 3.0,
            "{held:?}"
        );
    }

    #[test]
    fn temperature_keeps_the_top_class_and_sums_to_one() {
        let row = [0.5, 0.3, 0.15, 0.05];
        for temperature in [0.1, 0.7, 1.0, 3.0, 20.0] {
            let scaled = apply_temperature(&row, temperature);
            assert!((scaled.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert_eq!(confidence_and_hit(&scaled, 0), (scaled[0], true));
        }
        let same = apply_temperature(&row, 1.0);
        assert!(row.iter().zip(&same).all(|(a, b)| (a - b).abs() < 1e-12));
    }

    #[test]
    fn a_degenerate_fit_gives_no_temperature() {
        // Every photo right: the log-loss falls as T shrinks, to the bound.
        let rows = vec![vec![0.4, 0.3, 0.3], vec![0.2, 0.5, 0.3], vec![0.3, 0.3, 0.4]];
        let labels = [0, 1, 2];
        assert!(fit_temperature(&rows, &labels) <= TEMPERATURE_RANGE.0 * BOUND_MARGIN);
        assert!(Calibration::fit(&rows, &labels).is_none());
        // One photo wrong: a temperature inside the range.
        let labels = [0, 1, 0];
        let fitted = Calibration::fit(&rows, &labels).map(|c| c.temperature);
        assert!(fitted.is_some_and(|t| t > TEMPERATURE_RANGE.0 * BOUND_MARGIN), "{fitted:?}");
    }

    #[test]
    fn ece_of_hand_made_bins() {
        // Two photos at 0.9 (one right), two at 0.6 (both right): |0.9−0.5|·2/4 + |0.6−1|·2/4.
        let rows = vec![vec![0.9, 0.1], vec![0.9, 0.1], vec![0.6, 0.4], vec![0.4, 0.6]];
        let labels = [0, 1, 0, 1];
        assert!((expected_calibration_error(&rows, &labels) - 0.4).abs() < 1e-12);
        let bins = reliability(&rows, &labels);
        assert_eq!(bins.len(), ECE_BINS);
        assert_eq!(bins.iter().map(|b| b.photos).sum::<usize>(), 4);
        assert_eq!(reliability(&[vec![1.0, 0.0]], &[0])[ECE_BINS - 1].photos, 1);
    }

    #[test]
    fn coverage_curve_and_operating_points() {
        let rows = vec![
            vec![0.95, 0.05],
            vec![0.9, 0.1],
            vec![0.8, 0.2],
            vec![0.8, 0.2],
            vec![0.3, 0.7],
            vec![0.55, 0.45],
        ];
        let labels = [0, 0, 0, 1, 0, 1];
        let curve = accuracy_coverage(&rows, &labels);
        let kept: Vec<usize> = curve.iter().map(|p| p.kept).collect();
        // 0.95, 0.9, the two at 0.8 together, 0.7, 0.55.
        assert_eq!(kept, [1, 2, 4, 5, 6]);
        assert!((curve[2].accuracy - 0.75).abs() < 1e-12);
        assert_eq!(operating_point(&curve, 0.95).map(|p| p.kept), Some(2));
        assert_eq!(operating_point(&curve, 0.75).map(|p| p.kept), Some(4));
        assert!(operating_point(&[], 0.8).is_none());
        assert!((curve[4].coverage - 1.0).abs() < 1e-12);
    }
}
