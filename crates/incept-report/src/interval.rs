//! 95 % intervals of the figures a confusion matrix gives: Wilson's score interval for the
//! proportions (accuracy, single-view accuracy, a class's recall) and a seeded percentile
//! bootstrap over photos for the figures that are not a proportion (balanced accuracy,
//! macro-F1).
//!
//! Every matrix incept judges holds one count per photo (a photo's augmented views are averaged
//! into one prediction before they are counted), so resampling the matrix's cells with
//! replacement is resampling photos: a photo's variants move together. The bootstrap's seed is
//! fixed, so one matrix always gets the same interval (a `metrics.json` read back, or `confusion`
//! run twice, prints the same figures).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The confidence level of every interval incept prints.
pub const CONFIDENCE: f64 = 0.95;
/// The standard normal quantile of a two-sided 95 % interval.
const Z_95: f64 = 1.959_963_984_540_054;
/// Resamples of the bootstrap: enough that the 2.5 % and 97.5 % percentiles move by well under
/// the figures' last printed digit from one seed to another.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
/// The bootstrap's fixed seed ("incept95").
pub const BOOTSTRAP_SEED: u64 = 0x696e_6365_7074_3935;

/// A two-sided interval, both ends in the figure's own unit (a fraction for accuracies);
/// JSON `[low, high]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl From<[f64; 2]> for Interval {
    fn from([low, high]: [f64; 2]) -> Self {
        Interval { low, high }
    }
}

impl From<Interval> for [f64; 2] {
    fn from(interval: Interval) -> Self {
        [interval.low, interval.high]
    }
}

impl Interval {
    /// Half its width: what `±` means in one-line listings (Wilson's interval is not symmetric
    /// about the estimate; the listing says the interval's size, the JSON its ends).
    pub fn half_width(&self) -> f64 {
        (self.high - self.low) / 2.0
    }

    /// `[0.830, 0.898]`.
    pub fn ratio(&self) -> String {
        format!("[{:.3}, {:.3}]", self.low, self.high)
    }

    /// `83.0–89.8 %`.
    pub fn percent(&self) -> String {
        format!("{:.1}–{:.1} %", 100.0 * self.low, 100.0 * self.high)
    }
}

/// Wilson's score interval of `successes` out of `trials` at 95 %: it stays inside [0, 1] and
/// keeps its coverage near 0 and 1 and for a few trials, where the normal approximation does
/// not. No trial: [0, 1], nothing is known.
pub fn wilson(successes: usize, trials: usize) -> Interval {
    if trials == 0 {
        return Interval { low: 0.0, high: 1.0 };
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Interval { low: (center - half).max(0.0), high: (center + half).min(1.0) }
}

/// The percentile bootstrap intervals of several figures of a square matrix (`matrix[true][
/// predicted]`, one count per photo): its photos drawn again with replacement
/// [`BOOTSTRAP_RESAMPLES`] times, seeded with [`BOOTSTRAP_SEED`], `figures` computed on each
/// resampled matrix; per figure, the 2.5 % and 97.5 % percentiles of its values.
pub fn bootstrap<const N: usize>(
    matrix: &[Vec<usize>],
    figures: impl Fn(&[Vec<usize>]) -> [f64; N],
) -> [Interval; N] {
    let classes = matrix.len();
    // One entry per photo: the cell it counts in.
    let photos: Vec<(usize, usize)> = matrix
        .iter()
        .enumerate()
        .flat_map(|(t, row)| {
            row.iter().enumerate().flat_map(move |(p, &count)| std::iter::repeat_n((t, p), count))
        })
        .collect();
    if photos.is_empty() {
        let values = figures(matrix);
        return values.map(|v| Interval { low: v, high: v });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(BOOTSTRAP_SEED);
    let mut values: [Vec<f64>; N] =
        std::array::from_fn(|_| Vec::with_capacity(BOOTSTRAP_RESAMPLES));
    let mut resampled = vec![vec![0usize; classes]; classes];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        resampled.iter_mut().for_each(|row| row.fill(0));
        for _ in 0..photos.len() {
            let (t, p) = photos[rng.random_range(0..photos.len())];
            resampled[t][p] += 1;
        }
        for (series, value) in values.iter_mut().zip(figures(&resampled)) {
            series.push(value);
        }
    }
    values.map(|mut series| {
        series.sort_by(f64::total_cmp);
        let tail = (1.0 - CONFIDENCE) / 2.0;
        Interval { low: percentile(&series, tail), high: percentile(&series, 1.0 - tail) }
    })
}

/// The `q` quantile of sorted, non-empty `values`, linearly interpolated between ranks.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = rank.floor() as usize;
    let above = rank.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (rank - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), Statistics in Medicine 17, table I: 81/263 → 0.2553–0.3662;
        // 15/148 → 0.0624–0.1605; 0/20 → 0–0.1611; 1/29 → 0.0061–0.1718.
        let cases = [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ];
        for (successes, trials, low, high) in cases {
            let interval = wilson(successes, trials);
            assert!((interval.low - low).abs() < 5e-5, "{successes}/{trials}: {interval:?}");
            assert!((interval.high - high).abs() < 5e-5, "{successes}/{trials}: {interval:?}");
        }
        assert_eq!(wilson(0, 0), Interval { low: 0.0, high: 1.0 });
        let all = wilson(20, 20);
        assert!(all.high == 1.0 && all.low < 1.0 && all.low > 0.8, "{all:?}");
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_figure() {
        let matrix = vec![vec![40, 10], vec![5, 45]];
        let accuracy = |m: &[Vec<usize>]| {
            let total: usize = m.iter().flatten().sum();
            [(m[0][0] + m[1][1]) as f64 / total as f64]
        };
        let [first] = bootstrap(&matrix, accuracy);
        let [again] = bootstrap(&matrix, accuracy);
        assert_eq!(first, again, "one matrix, one interval");
        assert!(first.low < 0.85 && 0.85 < first.high, "{first:?}");
        // The bootstrap of a proportion is close to Wilson's interval of it.
        let exact = wilson(85, 100);
        assert!((first.low - exact.low).abs() < 0.03, "{first:?} against {exact:?}");
        assert!((first.high - exact.high).abs() < 0.03, "{first:?} against {exact:?}");
        // More photos in the same proportions: a narrower interval.
        let [larger] = bootstrap(&[vec![400, 100], vec![50, 450]], accuracy);
        assert!(larger.half_width() < first.half_width() / 2.0, "{larger:?} against {first:?}");
    }

    #[test]
    fn percentile_interpolates() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&values, 0.5), 3.0);
        assert_eq!(percentile(&values, 0.125), 1.5);
        assert_eq!(percentile(&values, 1.0), 5.0);
    }
}
