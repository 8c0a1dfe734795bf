//! The classifier head: Squeeze-and-Excitation on the channels → Flatten (or global average
//! pooling) → dropout → dense ReLU layers → logits. Unlike the original Keras post, the SE
//! output really scales the map that is flattened.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::config::{HeadConfig, Pooling};

mod layers;
mod member;

pub use layers::Dense;
pub use member::Member;

/// The shape of the inputs a head was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

/// The classifier: one [`Member`], or several trained side by side whose softmax outputs are
/// averaged (`ensemble`).
#[derive(Module, Debug)]
pub struct Head {
    pub(crate) members: Vec<Member>,
}

impl Head {
    pub fn new(config: &HeadConfig, input: InputShape, classes: usize, device: &Device) -> Self {
        let members =
            (0..config.ensemble.max(1)).map(|_| Member::new(config, input, classes, device));
        Head { members: members.collect() }
    }

    /// Inference: no dropout. Log-probabilities up to a constant per row (a single head's
    /// logits; for an ensemble the log of the members' mean softmax).
    ///
    /// # Shapes
    /// `x`: [batch, H, W, C] channels-last feature maps → [batch, classes].
    pub fn forward(&self, x: Tensor<4>, pooling: Pooling) -> Tensor<2> {
        let logits = self.members.iter().map(|m| m.forward(x.clone(), pooling, None)).collect();
        combine(logits)
    }

    /// Training: each member's logits, dropout masks drawn from `dropout_seed` (one seed per
    /// step makes runs reproducible and resumable). Each member gets its own loss.
    ///
    /// # Shapes
    /// `x`: [batch, H, W, C] → members × [batch, classes].
    pub fn forward_train(
        &self,
        x: Tensor<4>,
        pooling: Pooling,
        dropout_seed: u64,
    ) -> Vec<Tensor<2>> {
        self.members
            .iter()
            .enumerate()
            .map(|(index, member)| {
                // The first member keeps the step's seed: a single head trains as it always did.
                let seed = match index {
                    0 => dropout_seed,
                    _ => incept_core::stable_hash(&[
                        &dropout_seed.to_le_bytes(),
                        b"member",
                        &index.to_le_bytes(),
                    ]),
                };
                member.forward(x.clone(), pooling, Some(seed))
            })
            .collect()
    }
}

/// Members' logits → one output: the logits themselves for one member, else the log of the mean
/// softmax (floored to stay finite).
///
/// # Shapes
/// members × [batch, classes] → [batch, classes].
pub fn combine(mut logits: Vec<Tensor<2>>) -> Tensor<2> {
    if logits.len() == 1
        && let Some(only) = logits.pop()
    {
        return only;
    }
    let count = logits.len() as f32;
    let probabilities = logits.into_iter().map(|l| softmax(l, 1)).reduce(|a, b| a + b);
    match probabilities {
        Some(sum) => sum.div_scalar(count).clamp_min(1e-30).log(),
        None => Tensor::empty([0, 0], &Device::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    #[test]
    fn shapes_flow_through_every_pooling() {
        let device = burn::prelude::Device::flex();
        let input = InputShape { height: 2, width: 3, channels: 8 };
        let x = Tensor::<4>::ones([4, 2, 3, 8], &device);
        for pooling in [Pooling::Flatten, Pooling::Gap, Pooling::Avgmax] {
            let mut config = TrainConfig::default_preset().head;
            config.pooling = pooling;
            config.dense = vec![16, 16];
            let head = Head::new(&config, input, 5, &device);
            assert_eq!(head.forward(x.clone(), pooling).dims(), [4, 5]);
        }
    }

    #[test]
    fn an_ensemble_averages_its_members_probabilities() {
        let device = burn::prelude::Device::flex();
        let mut config = TrainConfig::default_preset().head;
        config.dense = vec![8];
        config.ensemble = 3;
        let input = InputShape { height: 2, width: 2, channels: 16 };
        let head = Head::new(&config, input, 4, &device);
        assert_eq!(head.members.len(), 3);
        let x = Tensor::<4>::random([5, 2, 2, 16], burn::tensor::Distribution::Default, &device);
        let members: Vec<Vec<f32>> = head
            .members
            .iter()
            .map(|m| softmax(m.forward(x.clone(), Pooling::Gap, None), 1))
            .map(|p| p.into_data().try_to_vec::<f32>().unwrap())
            .collect();
        assert_ne!(members[0], members[1], "members start from different weights");
        let combined = head.forward(x.clone(), Pooling::Gap).exp().into_data();
        let combined = combined.try_to_vec::<f32>().unwrap();
        for (i, value) in combined.iter().enumerate() {
            let mean = members.iter().map(|m| m[i]).sum::<f32>() / 3.0;
            assert!((value - mean).abs() < 1e-5, "{value} vs {mean}");
        }
        assert_eq!(head.forward_train(x, Pooling::Gap, 9).len(), 3);
    }

    #[test]
    fn se_output_reaches_the_classifier() {
        // With SE on, zeroing the excitation weights gates every channel by sigmoid(bias):
        // the logits must differ from the same head without SE.
        let device = burn::prelude::Device::flex();
        let input = InputShape { height: 1, width: 1, channels: 4 };
        let mut config = TrainConfig::default_preset().head;
        config.dense = vec![3];
        config.dropout = vec![];
        device.seed(1);
        let with_se = Head::new(&config, input, 2, &device);
        let mut without = with_se.clone();
        without.members[0].se = None;
        let x = Tensor::<4>::ones([1, 1, 1, 4], &device);
        let a = with_se.forward(x.clone(), Pooling::Flatten).into_data();
        let b = without.forward(x, Pooling::Flatten).into_data();
        assert_ne!(a, b);
    }
}
