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

    /// Draws `n` photos from a population whose photos fall in each cell of a matrix with the
    /// probabilities `cells` (row-major), as a validation split draws them from a collection.
    fn draw(rng: &mut ChaCha8Rng, cells: &[f64], classes: usize, n: usize) -> Vec<Vec<usize>> {
        let mut matrix = vec![vec![0; classes]; classes];
        for _ in 0..n {
            let mut u: f64 = rng.random();
            let cell = cells.iter().position(|&p| {
                u -= p;
                u < 0.0
            });
            let cell = cell.unwrap_or(cells.len() - 1);
            matrix[cell / classes][cell % classes] += 1;
        }
        matrix
    }

    #[test]
    fn intervals_cover_the_population_figure_95_times_in_100() {
        // A population like amid5's demo head: 3 classes, recalls 0.9, 0.8, 0.7 (balanced
        // accuracy 0.8), equal shares; validation splits of 150 photos drawn from it again and
        // again: the interval of each split should hold the population's figure about 95 % of
        // the time.
        let third = 1.0 / 3.0;
        let cells = [
            0.9 * third,
            0.05 * third,
            0.05 * third,
            0.1 * third,
            0.8 * third,
            0.1 * third,
            0.2 * third,
            0.1 * third,
            0.7 * third,
        ];
        let (accuracy, balanced) = (0.8, 0.8);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (splits, mut wilson_hits, mut bootstrap_hits) = (300, 0, 0);
        for _ in 0..splits {
            let matrix = draw(&mut rng, &cells, 3, 150);
            let correct = matrix[0][0] + matrix[1][1] + matrix[2][2];
            let w = wilson(correct, 150);
            wilson_hits += usize::from(w.low <= accuracy && accuracy <= w.high);
            let [b] = bootstrap(&matrix, |m| {
                let recall = |i: usize| {
                    let support: usize = m[i].iter().sum();
                    if support == 0 { 0.0 } else { m[i][i] as f64 / support as f64 }
                };
                [(recall(0) + recall(1) + recall(2)) / 3.0]
            });
            bootstrap_hits += usize::from(b.low <= balanced && balanced <= b.high);
        }
        // 300 splits: a true 95 % reads 92–98 % (two standard deviations, 1.3 points each).
        let rate = |hits: usize| hits as f64 / splits as f64;
        eprintln!(
            "coverage over {splits} splits: Wilson {:.3}, bootstrap {:.3}",
            rate(wilson_hits),
            rate(bootstrap_hits)
        );
        assert!((0.91..=0.985).contains(&rate(wilson_hits)), "Wilson covers {}", rate(wilson_hits));
        assert!(
            (0.90..=0.985).contains(&rate(bootstrap_hits)),
            "the bootstrap covers {}",
            rate(bootstrap_hits)
        );
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
