//! Mixup in feature space (Zhang et al., "mixup: Beyond Empirical Risk Minimization", 2018):
//! each training batch is blended with a shuffled copy of itself, `λ·x + (1 − λ)·x[partner]`,
//! and the loss is the same blend of the two labels' losses. A head sees the (pooled) cached
//! features, so the blend is of features, not of photos. One `λ ~ Beta(α, α)` per batch, as the
//! paper does; α = 0 switches it off.

use burn::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::loss::TrainingLoss;

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

    /// The batch blended with its partner rows, `λ·x + (1 − λ)·x[partner]`, and what its loss
    /// needs.
    ///
    /// # Shapes
    /// `x`: [n, H, W, C] → [n, H, W, C]; `targets`: [n].
    pub fn blend(&self, x: Tensor<4>, targets: &[i64]) -> (Tensor<4>, Blend) {
        let device = x.device();
        let rows = self.partner.len();
        let indices = |values: Vec<i64>| {
            Tensor::<1, Int>::from_data(TensorData::new(values, [rows]), &device)
        };
        let partner_rows = indices(self.partner.iter().map(|&row| row as i64).collect());
        let partner_x = x.clone().select(0, partner_rows);
        let blended = x * self.share + partner_x * (1.0 - self.share);
        let partner_targets = indices(self.partner.iter().map(|&row| targets[row]).collect());
        (blended, Blend { partner_targets, share: self.share })
    }
}

/// A blended batch's partner labels and λ, for its loss.
pub(super) struct Blend {
    /// [n]: the label of each row's partner.
    partner_targets: Tensor<1, Int>,
    share: f64,
}

impl Blend {
    /// `λ·loss(logits, targets) + (1 − λ)·loss(logits, partner targets)`.
    ///
    /// # Shapes
    /// `logits`: [n, classes]; `targets`: [n] → [1].
    pub fn loss(
        &self,
        loss: &TrainingLoss,
        logits: Tensor<2>,
        targets: Tensor<1, Int>,
    ) -> Tensor<1> {
        loss.forward(logits.clone(), targets) * self.share
            + loss.forward(logits, self.partner_targets.clone()) * (1.0 - self.share)
    }
}

/// A draw of Beta(α, α) as X / (X + Y) = 1 / (1 + e^(ln Y − ln X)) with X, Y ~ Gamma(α):
/// in logarithms, because for a small α the draws underflow to 0.
fn beta(rng: &mut ChaCha8Rng, alpha: f64) -> f64 {
    let log_x = log_gamma_draw(rng, alpha);
    let log_y = log_gamma_draw(rng, alpha);
    1.0 / (1.0 + (log_y - log_x).exp())
}

/// The logarithm of a Gamma(shape, 1) draw: below shape 1 a Gamma(shape + 1) draw scaled by
/// U^(1/shape), which in logarithms cannot underflow.
fn log_gamma_draw(rng: &mut ChaCha8Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let uniform: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        return gamma(rng, shape + 1.0).ln() + uniform.ln() / shape;
    }
    gamma(rng, shape).ln()
}

/// A draw of Gamma(shape, 1) for shape ≥ 1: Marsaglia and Tsang's method.
fn gamma(rng: &mut ChaCha8Rng, shape: f64) -> f64 {
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
    use crate::rebalance::Rebalance;
    use crate::train::loss::smoothed_cross_entropy;

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
    fn a_tiny_alpha_draws_shares_near_zero_or_one() {
        let shares: Vec<f64> =
            (0..200u64).filter_map(|seed| Mix::draw(1e-3, seed, 2)).map(|mix| mix.share).collect();
        assert!(shares.iter().all(|share| !(0.01..=0.99).contains(share)), "{shares:?}");
        assert!(shares.iter().any(|&share| share < 0.5) && shares.iter().any(|&share| share > 0.5));
    }

    #[test]
    fn a_blend_mixes_rows_and_losses_by_the_share() {
        let device = Device::flex();
        let mix = Mix { share: 0.3, partner: vec![2, 0, 3, 1] };
        let rows: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(rows.clone(), [4, 1, 1, 3]), &device);
        let targets = [0i64, 1, 2, 1];
        let (blended, blend) = mix.blend(x, &targets);
        let blended = blended.into_data().try_to_vec::<f32>().expect("f32");
        for (row, &partner) in mix.partner.iter().enumerate() {
            for column in 0..3 {
                let expected = 0.3 * rows[row * 3 + column] + 0.7 * rows[partner * 3 + column];
                assert!((blended[row * 3 + column] - expected).abs() < 1e-5, "row {row}");
            }
        }
        // The rows' own labels weigh λ, their partners' 1 − λ, each with label smoothing.
        let logits: Vec<f32> = vec![2.0, -1.0, 0.5, 0.1, 0.3, -0.2, -1.5, 1.0, 2.5, 0.0, 0.7, 0.2];
        let loss = TrainingLoss::new(0.1, Rebalance::None, &[1, 1, 1], &device);
        let logits_tensor =
            Tensor::<2>::from_data(TensorData::new(logits.clone(), [4, 3]), &device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [4]), &device);
        let got = f64::from(blend.loss(&loss, logits_tensor, y).into_scalar::<f32>());
        let expected = (0..4)
            .map(|row| {
                let own = targets[row] as usize;
                let partner = targets[mix.partner[row]] as usize;
                let row_logits = &logits[row * 3..row * 3 + 3];
                0.3 * smoothed_cross_entropy(row_logits, own, 0.1)
                    + 0.7 * smoothed_cross_entropy(row_logits, partner, 0.1)
            })
            .sum::<f64>()
            / 4.0;
        assert!((got - expected).abs() < 1e-5, "{got} against {expected}");
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
