//! Mixup in feature space (Zhang et al., "mixup: Beyond Empirical Risk Minimization", 2018):
//! each training batch is blended with a shuffled copy of itself, `λ·x + (1 − λ)·x[partner]`,
//! and the loss is the same blend of the two labels' losses. A head sees the (pooled) cached
//! features, so the blend is of features, not of photos. One `λ ~ Beta(α, α)` per batch, as the
//! paper does; α = 0 switches it off.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How one batch is blended.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Mix {
    /// λ: the weight of the batch's own samples (and labels).
    pub share: f64,
    /// For each row of the batch, the row it is blended with.
    pub partner: Vec<usize>,
}

impl Mix {
    /// The blend of a batch of `rows` samples for `alpha`, drawn from `seed` alone (a resumed run
    /// blends as the uninterrupted one); `None` when mixup is off or there is nothing to blend.
    pub fn draw(alpha: f64, seed: u64, rows: usize) -> Option<Mix> {
        if alpha <= 0.0 || rows < 2 {
            return None;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let share = beta(&mut rng, alpha);
        let mut partner: Vec<usize> = (0..rows).collect();
        partner.shuffle(&mut rng);
        Some(Mix { share, partner })
    }

    /// The label each row counts as for training accuracy: its own when λ ≥ ½, else its
    /// partner's.
    pub fn dominant_label(&self, targets: &[i64], row: usize) -> i64 {
        if self.share >= 0.5 { targets[row] } else { targets[self.partner[row]] }
    }
}

/// A draw of Beta(α, α) as X / (X + Y) with X, Y ~ Gamma(α).
fn beta(rng: &mut ChaCha8Rng, alpha: f64) -> f64 {
    let x = gamma(rng, alpha);
    let y = gamma(rng, alpha);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// A draw of Gamma(shape, 1): Marsaglia and Tsang's method for shape ≥ 1; below 1 the
/// Gamma(shape + 1) draw is scaled by U^(1/shape).
fn gamma(rng: &mut ChaCha8Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let uniform: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0) * uniform.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let normal = standard_normal(rng);
        let v = (1.0 + c * normal).powi(3);
        if v <= 0.0 {
            continue;
        }
        let uniform: f64 = rng.random::<f64>();
        if uniform.ln() < 0.5 * normal * normal + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mean and variance of many draws.
    fn moments(alpha: f64) -> (f64, f64) {
        let draws: Vec<f64> = (0..20_000u64)
            .map(|seed| Mix::draw(alpha, seed, 2).map_or(f64::NAN, |mix| mix.share))
            .collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let variance =
            draws.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / draws.len() as f64;
        (mean, variance)
    }

    #[test]
    fn shares_follow_the_beta_distribution() {
        // Beta(α, α): mean ½, variance 1 / (4(2α + 1)).
        for alpha in [0.2, 0.4, 1.0, 2.0] {
            let (mean, variance) = moments(alpha);
            let expected = 1.0 / (4.0 * (2.0 * alpha + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "alpha {alpha}: mean {mean}");
            assert!(
                (variance - expected).abs() < 0.05 * expected,
                "alpha {alpha}: variance {variance} against {expected}"
            );
        }
    }

    #[test]
    fn a_blend_is_a_permutation_fixed_by_its_seed() {
        assert_eq!(Mix::draw(0.0, 7, 32), None);
        assert_eq!(Mix::draw(0.4, 7, 1), None);
        let mix = Mix::draw(0.4, 7, 32).expect("mixup on");
        assert!((0.0..=1.0).contains(&mix.share));
        let mut sorted = mix.partner.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..32).collect::<Vec<_>>());
        assert_eq!(Mix::draw(0.4, 7, 32), Some(mix.clone()));
        assert_ne!(Mix::draw(0.4, 8, 32), Some(mix));
    }

    #[test]
    fn the_dominant_label_follows_the_larger_share() {
        let targets = [0, 1, 2];
        let mut mix = Mix { share: 0.7, partner: vec![2, 0, 1] };
        assert_eq!(mix.dominant_label(&targets, 0), 0);
        mix.share = 0.3;
        assert_eq!(mix.dominant_label(&targets, 0), 2);
    }
}
