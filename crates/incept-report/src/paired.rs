//! Two heads judged on the same photos, photo by photo: the difference of their accuracies with
//! a paired bootstrap interval, and the exact McNemar test on the photos only one of them gets
//! right. Pairing removes what the two share (the photos both find easy or hard), so a
//! difference far smaller than either accuracy's own interval can still be real.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::interval::{BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE, Interval, percentile};

/// The significance level of a verdict: a difference is called when its p-value is below it
/// and its interval leaves out 0.
pub const SIGNIFICANCE: f64 = 1.0 - CONFIDENCE;

/// Head A against head B on the same photos.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paired {
    pub photos: usize,
    /// Photos A gets right.
    pub a_correct: usize,
    /// Photos B gets right.
    pub b_correct: usize,
    /// Photos A gets right and B wrong.
    pub a_only: usize,
    /// Photos B gets right and A wrong.
    pub b_only: usize,
    /// B's accuracy minus A's, as a fraction.
    pub difference: f64,
    /// The difference's 95 % paired bootstrap interval (photos drawn again with replacement,
    /// each with both heads' results; fixed seed).
    pub interval: Interval,
    /// Exact two-sided McNemar p-value: under no difference, each of the `a_only + b_only`
    /// photos one head alone gets right is equally likely to be A's or B's.
    pub p_value: f64,
}

/// What a comparison concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    ABetter,
    BBetter,
    NoDetectableDifference,
}

impl Paired {
    /// Compares per-photo results, `a[i]` and `b[i]` whether each head got photo i right (the
    /// callers pair the photos first; of unequal lengths, the shorter one's photos count).
    pub fn of(a: &[bool], b: &[bool]) -> Self {
        let photos = a.len().min(b.len());
        let (a, b) = (&a[..photos], &b[..photos]);
        let count =
            |f: &dyn Fn(bool, bool) -> bool| a.iter().zip(b).filter(|(x, y)| f(**x, **y)).count();
        let a_only = count(&|x, y| x && !y);
        let b_only = count(&|x, y| !x && y);
        let a_correct = a.iter().filter(|x| **x).count();
        let b_correct = b.iter().filter(|x| **x).count();
        let difference =
            if photos == 0 { 0.0 } else { (b_correct as f64 - a_correct as f64) / photos as f64 };
        Paired {
            photos,
            a_correct,
            b_correct,
            a_only,
            b_only,
            difference,
            interval: paired_bootstrap(photos, a_only, b_only),
            p_value: mcnemar_exact(a_only, b_only),
        }
    }

    /// The verdict at `p_value` (the raw one, or one adjusted for several comparisons): a
    /// difference only when the p-value is below [`SIGNIFICANCE`] and the interval leaves out 0.
    pub fn verdict(&self, p_value: f64) -> Verdict {
        let clear = p_value < SIGNIFICANCE && (self.interval.low > 0.0 || self.interval.high < 0.0);
        match (clear, self.difference > 0.0) {
            (false, _) => Verdict::NoDetectableDifference,
            (true, true) => Verdict::BBetter,
            (true, false) => Verdict::ABetter,
        }
    }
}

/// The 95 % percentile bootstrap interval of B's accuracy minus A's over `photos` photos, of
/// which `a_only` only A and `b_only` only B gets right: each resample draws the photos again
/// with replacement (only which kind each drawn photo is matters).
fn paired_bootstrap(photos: usize, a_only: usize, b_only: usize) -> Interval {
    if photos == 0 {
        return Interval { low: 0.0, high: 0.0 };
    }
    let mut rng = ChaCha8Rng::seed_from_u64(BOOTSTRAP_SEED);
    let mut differences = Vec::with_capacity(BOOTSTRAP_RESAMPLES);
    for _ in 0..BOOTSTRAP_RESAMPLES {
        let mut sum = 0i64;
        for _ in 0..photos {
            // Photos [0, a_only) are A's alone, the next b_only B's alone, the rest agree.
            let drawn = rng.random_range(0..photos);
            if drawn < a_only {
                sum -= 1;
            } else if drawn < a_only + b_only {
                sum += 1;
            }
        }
        differences.push(sum as f64 / photos as f64);
    }
    differences.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    Interval { low: percentile(&differences, tail), high: percentile(&differences, 1.0 - tail) }
}

/// The exact two-sided McNemar p-value of `b` photos one way and `c` the other: twice the
/// binomial(b + c, ½) probability of a split at least as uneven, at most 1. Summed in logs, so
/// thousands of discordant photos neither underflow nor lose precision.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let smaller = b.min(c);
    // ln C(n, k) - n ln 2, for k = 0..=smaller.
    let ln_half = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0;
    let mut terms = Vec::with_capacity(smaller + 1);
    for k in 0..=smaller {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        terms.push(ln_choose + ln_half);
    }
    let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = largest.exp() * terms.iter().map(|t| (t - largest).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Holm's step-down adjustment of several p-values (one per comparison): the family of
/// comparisons keeps its 5 % error rate, with more power than Bonferroni's. Adjusted p-values in
/// the input's order.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p_values[i].total_cmp(&p_values[j]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_the_binomial_by_hand() {
        // 0 against 6: 2 × (1/2)^6 = 1/32.
        assert!((mcnemar_exact(0, 6) - 2.0 / 64.0).abs() < 1e-15);
        // 1 against 9: 2 × (1 + 10) / 1024.
        assert!((mcnemar_exact(9, 1) - 22.0 / 1024.0).abs() < 1e-15);
        // An even split: 1. Nothing discordant: 1.
        assert_eq!(mcnemar_exact(5, 5), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Thousands of photos: no underflow. 1000 against 1200 is far beyond chance.
        let p = mcnemar_exact(1000, 1200);
        assert!(p > 0.0 && p < 1e-4, "{p}");
        let p = mcnemar_exact(1000, 1010);
        assert!(p > 0.8, "{p}");
    }

    #[test]
    fn holm_adjusts_step_down_and_keeps_order() {
        let adjusted = holm(&[0.01, 0.04, 0.03]);
        // Sorted 0.01, 0.03, 0.04: ×3, ×2, ×1, running maximum.
        assert_eq!(adjusted.len(), 3);
        assert!((adjusted[0] - 0.03).abs() < 1e-12);
        assert!((adjusted[2] - 0.06).abs() < 1e-12);
        assert!((adjusted[1] - 0.06).abs() < 1e-12);
        assert_eq!(holm(&[0.2]), vec![0.2]);
    }

    #[test]
    fn a_clear_difference_is_called_and_a_small_one_is_not() {
        // 400 photos: both right on 300; A alone on 5, B alone on 30.
        let mut a = vec![true; 300];
        let mut b = vec![true; 300];
        a.extend([true; 5]);
        b.extend([false; 5]);
        a.extend([false; 30]);
        b.extend([true; 30]);
        a.extend([false; 65]);
        b.extend([false; 65]);
        let paired = Paired::of(&a, &b);
        assert_eq!((paired.a_only, paired.b_only, paired.photos), (5, 30, 400));
        assert!((paired.difference - 25.0 / 400.0).abs() < 1e-12);
        assert!(paired.interval.low > 0.0 && paired.interval.high > paired.difference);
        assert_eq!(paired.verdict(paired.p_value), Verdict::BBetter);
        // Swapped: A is better by as much.
        let swapped = Paired::of(&b, &a);
        assert_eq!(swapped.verdict(swapped.p_value), Verdict::ABetter);
        // 12 against 9 of 400: nothing to call.
        let mut a = vec![true; 12];
        let mut b = vec![false; 12];
        a.extend([false; 9]);
        b.extend([true; 9]);
        a.extend([true; 379]);
        b.extend([true; 379]);
        let paired = Paired::of(&a, &b);
        assert!(paired.interval.low < 0.0 && paired.interval.high > 0.0, "{paired:?}");
        assert_eq!(paired.verdict(paired.p_value), Verdict::NoDetectableDifference);
    }

    #[test]
    fn pairing_sees_what_the_two_intervals_cannot() {
        // 412 photos, accuracies 85.0 % and 87.9 %: their Wilson intervals overlap widely, but
        // B gets 12 photos right that A misses and A none that B misses.
        let mut a = vec![true; 350];
        let mut b = vec![true; 350];
        a.extend([false; 12]);
        b.extend([true; 12]);
        a.extend([false; 50]);
        b.extend([false; 50]);
        let (wilson_a, wilson_b) =
            (crate::interval::wilson(350, 412), crate::interval::wilson(362, 412));
        assert!(wilson_a.high > wilson_b.low, "the intervals overlap");
        let paired = Paired::of(&a, &b);
        assert_eq!(paired.verdict(paired.p_value), Verdict::BBetter, "{paired:?}");
    }
}
