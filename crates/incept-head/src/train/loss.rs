//! The training loss: cross-entropy with label smoothing, and what `rebalance` adds to it.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::log_softmax;

use crate::rebalance::Rebalance;

/// Cross-entropy with label smoothing; under `balanced` or `sqrt` each sample's whole loss
/// weighs by its class, under `logit-adjusted` the loss sees the logits plus the log priors
/// (and spreads the smoothing mass by the priors).
///
/// Burn's (and PyTorch's) class weights weigh each class's *column* of the smoothed targets:
/// with weights 500 times apart, the smoothing mass on the rare classes then outweighs a common
/// sample's own label, and a head trained so on all of AMID called 96 % of the photos a rare
/// class. Here the sample's smoothed cross-entropy is weighed as a whole.
pub(crate) struct TrainingLoss {
    /// Unweighted: the loss of runs without rebalancing, bit for bit as before it existed.
    plain: CrossEntropyLoss,
    smoothing: f32,
    /// [classes]
    class_weights: Option<Tensor<1>>,
    /// [classes]
    logit_offsets: Option<Tensor<1>>,
}

impl TrainingLoss {
    /// The loss of `rebalance` (resolved) for classes of `counts` training samples.
    pub fn new(smoothing: f64, rebalance: Rebalance, counts: &[usize], device: &Device) -> Self {
        let tensor = |values: Vec<f64>| {
            let length = values.len();
            let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
            Tensor::<1>::from_data(TensorData::new(values, [length]), device)
        };
        let smoothing = smoothing as f32;
        TrainingLoss {
            plain: CrossEntropyLossConfig::new()
                .with_smoothing((smoothing > 0.0).then_some(smoothing))
                .init(device),
            smoothing,
            class_weights: rebalance.loss_weights(counts).map(tensor),
            logit_offsets: rebalance.logit_offsets(counts).map(tensor),
        }
    }

    /// The mean loss of a batch.
    ///
    /// # Shapes
    /// `logits`: [n, classes]; `targets`: [n] → [1].
    pub fn forward(&self, logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        if self.class_weights.is_none() && self.logit_offsets.is_none() {
            return self.plain.forward(logits, targets);
        }
        let [n, classes] = logits.dims();
        let device = logits.device();
        let one_hot = Tensor::<2>::zeros([n, classes], &device).scatter(
            1,
            targets.clone().reshape([n, 1]),
            Tensor::ones([n, 1], &device),
            IndexingUpdateOp::Add,
        );
        let (logits, wanted) = match &self.logit_offsets {
            // The smoothing mass is spread by the priors: uniform in the logits' own (balanced)
            // space. Spread evenly, it would ask the rare classes' logits to rise by the log of
            // the skew on every photo, and the head would call nearly every photo a rare class.
            Some(offsets) => {
                let priors = offsets.clone().exp().unsqueeze_dim(0); // [1, classes]
                let adjusted = logits + offsets.clone().unsqueeze_dim(0);
                (adjusted, one_hot * (1.0 - self.smoothing) + priors * self.smoothing)
            }
            None => (logits, one_hot * (1.0 - self.smoothing) + self.smoothing / classes as f32),
        };
        let per_sample = (log_softmax(logits, 1) * wanted).sum_dim(1).reshape([n]).neg(); // [n]
        match &self.class_weights {
            Some(class_weights) => {
                let weights = class_weights.clone().gather(0, targets); // [n]
                (per_sample * weights.clone()).sum() / weights.sum()
            }
            None => per_sample.mean(),
        }
    }
}

/// Cross-entropy with label smoothing `smoothing` of one row, from its logits: what the tests
/// of the losses compare against.
#[cfg(test)]
pub(super) fn smoothed_cross_entropy(logits: &[f32], target: usize, smoothing: f64) -> f64 {
    let largest = logits.iter().copied().fold(f32::MIN, f32::max) as f64;
    let log_sum = largest + logits.iter().map(|&l| (l as f64 - largest).exp()).sum::<f64>().ln();
    let classes = logits.len() as f64;
    logits
        .iter()
        .enumerate()
        .map(|(class, &logit)| {
            let wanted = if class == target { 1.0 - smoothing } else { 0.0 };
            -(wanted + smoothing / classes) * (logit as f64 - log_sum)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(device: &Device) -> (Vec<f32>, Vec<i64>, Tensor<2>, Tensor<1, Int>) {
        let logits = vec![2.0, -1.0, 0.5, 0.1, 0.3, -0.2, -1.5, 1.0, 2.5, 0.0, 0.7, 0.2];
        let targets = vec![0i64, 0, 2, 1];
        let logits_tensor = Tensor::<2>::from_data(TensorData::new(logits.clone(), [4, 3]), device);
        let targets_tensor =
            Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [4]), device);
        (logits, targets, logits_tensor, targets_tensor)
    }

    fn value(loss: Tensor<1>) -> f64 {
        f64::from(loss.into_scalar::<f32>())
    }

    #[test]
    fn a_weighted_loss_weighs_each_sample_whole() {
        let device = Device::flex();
        let (logits, targets, logits_tensor, targets_tensor) = batch(&device);
        // Training samples per class 600, 300, 100: balanced weights ∝ 1/n.
        let counts = [600, 300, 100];
        let loss = TrainingLoss::new(0.1, Rebalance::Balanced, &counts, &device);
        let got = value(loss.forward(logits_tensor.clone(), targets_tensor.clone()));
        let weight = |class: usize| 1.0 / counts[class] as f64;
        let (mut sum, mut weights) = (0.0, 0.0);
        for (row, &target) in targets.iter().enumerate() {
            let target = target as usize;
            sum +=
                weight(target) * smoothed_cross_entropy(&logits[row * 3..row * 3 + 3], target, 0.1);
            weights += weight(target);
        }
        assert!((got - sum / weights).abs() < 1e-5, "{got} against {}", sum / weights);
        // Without rebalancing it is the plain mean, as Burn computes it.
        let plain = TrainingLoss::new(0.1, Rebalance::None, &counts, &device);
        let mean = (0..4)
            .map(|row| {
                smoothed_cross_entropy(&logits[row * 3..row * 3 + 3], targets[row] as usize, 0.1)
            })
            .sum::<f64>()
            / 4.0;
        assert!((value(plain.forward(logits_tensor, targets_tensor)) - mean).abs() < 1e-5);
    }

    #[test]
    fn logit_adjustment_adds_the_log_priors() {
        let device = Device::flex();
        let (logits, targets, logits_tensor, targets_tensor) = batch(&device);
        let counts = [600, 300, 100];
        let priors: Vec<f64> = counts.iter().map(|&n| n as f64 / 1000.0).collect();
        let loss = TrainingLoss::new(0.1, Rebalance::LogitAdjusted, &counts, &device);
        let got = value(loss.forward(logits_tensor, targets_tensor));
        // −Σ_c ((1 − α)·[c = y] + α·π_c) · ln softmax(logits + ln π)_c, over the rows.
        let expected = (0..4)
            .map(|row| {
                let adjusted: Vec<f64> = (0..3)
                    .map(|class| f64::from(logits[row * 3 + class]) + priors[class].ln())
                    .collect();
                let log_sum = adjusted.iter().map(|a| a.exp()).sum::<f64>().ln();
                (0..3)
                    .map(|class| {
                        let own = if class == targets[row] as usize { 0.9 } else { 0.0 };
                        -(own + 0.1 * priors[class]) * (adjusted[class] - log_sum)
                    })
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 4.0;
        assert!((got - expected).abs() < 1e-5, "{got} against {expected}");
    }
}
