//! The classifier head: Squeeze-and-Excitation on the channels → Flatten (or global average
//! pooling) → dropout → dense ReLU layers → logits. Unlike the original Keras post, the SE
//! output really scales the map that is flattened.

use burn::module::Param;
use burn::nn::LinearConfig;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::config::{HeadConfig, Pooling};

/// Squeeze-and-Excitation: global average pool → Dense C/r, ReLU → Dense C, sigmoid → scale.
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    pub(crate) squeeze: Dense,
    pub(crate) excite: Dense,
}

impl SqueezeExcitation {
    /// # Shapes
    /// `x`: [batch, positions, channels] → same shape, each channel scaled by its gate in (0, 1).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, _, channels] = x.dims();
        let pooled = x.clone().mean_dim(1).reshape([batch, channels]); // [batch, C]
        x * self.gate(pooled).reshape([batch, 1, channels])
    }

    /// The channel gates from the globally averaged map.
    ///
    /// # Shapes
    /// `pooled`: [batch, C] → [batch, C], each in (0, 1).
    pub fn gate(&self, pooled: Tensor<2>) -> Tensor<2> {
        sigmoid(self.excite.forward(relu(self.squeeze.forward(pooled))))
    }
}

/// A dense layer `x·Wᵀ + b` whose weight is stored [out, in], as PyTorch stores it, not
/// [in, out] as Burn's `Linear` does. For the matrix products autodiff makes from
/// `W·xᵀ`, gemm reads the weight in the order it is stored in all three (forward, input gradient,
/// weight gradient); with `Linear`'s layout the input gradient walks the 210 MB weight of the
/// flatten head across its rows and takes four times as long.
#[derive(Module, Debug)]
pub struct Dense {
    /// [out, in]
    pub(crate) weight: Param<Tensor<2>>,
    /// [out]
    pub(crate) bias: Param<Tensor<1>>,
}

impl Dense {
    /// The same initial distribution as Burn's `Linear` (Kaiming uniform with the input count as
    /// fan-in), drawn lazily: loading saved weights draws nothing.
    pub fn new(inputs: usize, outputs: usize, device: &Device) -> Self {
        let initializer = LinearConfig::new(inputs, outputs).initializer;
        Dense {
            weight: initializer.init_with([outputs, inputs], Some(inputs), Some(outputs), device),
            bias: initializer.init_with([outputs], Some(inputs), Some(outputs), device),
        }
    }

    /// # Shapes
    /// `x`: [batch, in] → [batch, out].
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let transposed = self.weight.val().matmul(x.transpose()); // [out, batch]
        transposed.transpose() + self.bias.val().unsqueeze_dim(0)
    }
}

/// One head: SE → pooling → dropout → dense layers → logits.
#[derive(Module, Debug)]
pub struct Member {
    pub(crate) se: Option<SqueezeExcitation>,
    /// Probability of keeping a feature through all the dropout layers after pooling: consecutive
    /// dropouts with rates pᵢ are one dropout that keeps Π(1 − pᵢ), the same distribution.
    keep: f64,
    pub(crate) dense: Vec<Dense>,
    /// Probability of keeping a unit after each hidden layer (1 = no dropout there).
    hidden_keep: f64,
    pub(crate) output: Dense,
}

/// Elements per dropout-mask chunk; each chunk has its own generator, so masks are the same
/// whatever the number of threads.
const MASK_CHUNK: usize = 1 << 14;

/// Inverted dropout: zeroes each element with probability `1 − keep` and scales the rest by
/// `1 / keep`. The mask comes from `seed` alone, drawn in parallel (Burn's `Dropout` draws it
/// element by element on one thread: a sixth of the flatten head's training step).
///
/// # Shapes
/// `x`: [batch, width] → same shape.
fn dropout(x: Tensor<2>, keep: f64, seed: u64) -> Tensor<2> {
    if keep >= 1.0 {
        return x;
    }
    let [batch, width] = x.dims();
    let scale = (1.0 / keep) as f32;
    // Keep when a uniform u32 falls below keep·2³².
    let threshold = (keep * 4_294_967_296.0) as u64;
    let mut mask = vec![0.0f32; batch * width];
    mask.par_chunks_mut(MASK_CHUNK).enumerate().for_each(|(chunk, values)| {
        let mut rng = ChaCha8Rng::seed_from_u64(incept_core::stable_hash(&[
            &seed.to_le_bytes(),
            &chunk.to_le_bytes(),
        ]));
        for value in values {
            if u64::from(rng.next_u32()) < threshold {
                *value = scale;
            }
        }
    });
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [batch, width]), &x.device());
    x * mask
}

/// The shape of the inputs a head was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Member {
    fn new(config: &HeadConfig, input: InputShape, classes: usize, device: &Device) -> Self {
        let channels = input.channels;
        let se = config.se.then(|| {
            let bottleneck = (channels / config.se_reduction).max(1);
            SqueezeExcitation {
                squeeze: Dense::new(channels, bottleneck, device),
                excite: Dense::new(bottleneck, channels, device),
            }
        });
        let mut width = match config.pooling {
            Pooling::Flatten => input.height * input.width * channels,
            Pooling::Gap => channels,
            Pooling::Avgmax => 2 * channels,
        };
        let mut dense = Vec::new();
        for &units in &config.dense {
            dense.push(Dense::new(width, units, device));
            width = units;
        }
        Member {
            se,
            keep: config.dropout.iter().map(|p| 1.0 - p).product(),
            dense,
            hidden_keep: 1.0 - config.dense_dropout,
            output: Dense::new(width, classes, device),
        }
    }

    /// Logits; dropout masks drawn from `dropout_seed` when training.
    ///
    /// # Shapes
    /// `x`: [batch, H, W, C] channels-last feature maps → logits [batch, classes].
    fn forward(&self, x: Tensor<4>, pooling: Pooling, dropout_seed: Option<u64>) -> Tensor<2> {
        let [batch, height, width, channels] = x.dims();
        let map = x.reshape([batch, height * width, channels]); // [batch, H·W, C]
        let average = |map: Tensor<3>| map.mean_dim(1).reshape([batch, channels]); // [batch, C]
        // SE scales each channel by a positive gate, which commutes with averaging and max over
        // positions: the pooled heads scale the pooled [batch, C] features instead of the map,
        // H·W times less work in both passes, the same values.
        let mut features = match (pooling, &self.se) {
            (Pooling::Flatten, Some(se)) => {
                se.forward(map).reshape([batch, height * width * channels])
            }
            (Pooling::Flatten, None) => map.reshape([batch, height * width * channels]),
            (Pooling::Gap, Some(se)) => {
                let pooled = average(map);
                pooled.clone() * se.gate(pooled)
            }
            (Pooling::Gap, None) => average(map),
            (Pooling::Avgmax, se) => {
                let pooled = average(map.clone());
                let max = map.max_dim(1).reshape([batch, channels]);
                let features = match se {
                    Some(se) => {
                        let gate = se.gate(pooled.clone());
                        vec![pooled * gate.clone(), max * gate]
                    }
                    None => vec![pooled, max],
                };
                Tensor::cat(features, 1) // [batch, 2·C]
            }
        };
        let seed_for = |layer: usize| {
            dropout_seed
                .map(|seed| incept_core::stable_hash(&[&seed.to_le_bytes(), &layer.to_le_bytes()]))
        };
        if let Some(seed) = seed_for(0) {
            features = dropout(features, self.keep, seed);
        }
        for (index, layer) in self.dense.iter().enumerate() {
            features = relu(layer.forward(features));
            if let Some(seed) = seed_for(index + 1) {
                features = dropout(features, self.hidden_keep, seed);
            }
        }
        self.output.forward(features)
    }
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
        let device = crate::Backend::default().device();
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
    fn dropout_keeps_the_given_fraction_scaled_and_follows_its_seed() {
        let device = crate::Backend::default().device();
        let x = Tensor::<2>::ones([64, 4096], &device);
        let values = |seed| dropout(x.clone(), 0.25, seed).into_data().try_to_vec::<f32>().unwrap();
        let first = values(7);
        let kept = first.iter().filter(|&&v| v != 0.0).count() as f64 / first.len() as f64;
        assert!((kept - 0.25).abs() < 0.01, "kept {kept}");
        assert!(first.iter().all(|&v| v == 0.0 || v == 4.0));
        assert_eq!(first, values(7));
        assert_ne!(first, values(8));
        // keep = 1: untouched.
        assert_eq!(dropout(x.clone(), 1.0, 7).into_data(), x.into_data());
    }

    #[test]
    fn consecutive_dropouts_combine_and_inference_has_none() {
        let device = crate::Backend::default().device();
        let mut config = TrainConfig::default_preset().head;
        config.dropout = vec![0.5, 0.5];
        config.dense = vec![8];
        let input = InputShape { height: 1, width: 1, channels: 16 };
        let head = Head::new(&config, input, 3, &device);
        assert!((head.members[0].keep - 0.25).abs() < 1e-12);
        let x = Tensor::<4>::ones([2, 1, 1, 16], &device);
        let a = head.forward(x.clone(), Pooling::Gap).into_data();
        assert_eq!(a, head.forward(x.clone(), Pooling::Gap).into_data());
        assert_ne!(a, head.forward_train(x, Pooling::Gap, 1)[0].clone().into_data());
    }

    #[test]
    fn an_ensemble_averages_its_members_probabilities() {
        let device = crate::Backend::default().device();
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
    fn dense_computes_x_times_w_transposed_plus_b_and_its_gradients() {
        let device = crate::Backend::default().device().autodiff();
        device.seed(5);
        let (batch, inputs, outputs) = (3, 4, 2);
        let dense = Dense::new(inputs, outputs, &device);
        assert_eq!(dense.weight.dims(), [outputs, inputs]);
        let weight = dense.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let bias = dense.bias.val().into_data().try_to_vec::<f32>().unwrap();
        let x_values: Vec<f32> = (0..batch * inputs).map(|v| v as f32 * 0.25 - 1.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(x_values.clone(), [batch, inputs]), &device)
            .require_grad();
        // Loss Σ c·y with c[b][o] = b + 2o + 1, so dL/dy = c.
        let c: Vec<f32> =
            (0..batch * outputs).map(|k| (k / outputs + 2 * (k % outputs) + 1) as f32).collect();
        let y = dense.forward(x.clone());
        let y_values = y.clone().into_data().try_to_vec::<f32>().unwrap();
        let loss =
            (y * Tensor::<2>::from_data(TensorData::new(c.clone(), [batch, outputs]), &device))
                .sum();
        let grads = loss.backward();
        let grad = |t: Option<Tensor<2>>| t.unwrap().into_data().try_to_vec::<f32>().unwrap();
        let weight_grad = grad(dense.weight.grad(&grads));
        let input_grad = grad(x.grad(&grads));
        let bias_grad = dense.bias.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let close = |a: f32, b: f32| assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        for b in 0..batch {
            for o in 0..outputs {
                let expected = bias[o]
                    + (0..inputs)
                        .map(|i| x_values[b * inputs + i] * weight[o * inputs + i])
                        .sum::<f32>();
                close(y_values[b * outputs + o], expected);
            }
            for i in 0..inputs {
                let expected =
                    (0..outputs).map(|o| c[b * outputs + o] * weight[o * inputs + i]).sum();
                close(input_grad[b * inputs + i], expected);
            }
        }
        for o in 0..outputs {
            close(bias_grad[o], (0..batch).map(|b| c[b * outputs + o]).sum());
            for i in 0..inputs {
                let expected =
                    (0..batch).map(|b| c[b * outputs + o] * x_values[b * inputs + i]).sum();
                close(weight_grad[o * inputs + i], expected);
            }
        }
    }

    #[test]
    fn pooled_heads_gate_the_pooled_features_as_if_they_gated_the_map() {
        let device = crate::Backend::default().device();
        device.seed(2);
        let input = InputShape { height: 3, width: 2, channels: 8 };
        // The long way: scale the whole map by the SE gates, then pool, then the dense layers.
        let long_way = |member: &Member, x: Tensor<4>, pooling: Pooling| {
            let se = member.se.as_ref().unwrap();
            let scaled = se.forward(x.reshape([5, 6, 8])); // [5, 6, 8]
            let average = scaled.clone().mean_dim(1).reshape([5, 8]);
            let mut features = match pooling {
                Pooling::Avgmax => Tensor::cat(vec![average, scaled.max_dim(1).reshape([5, 8])], 1),
                _ => average,
            };
            for layer in &member.dense {
                features = relu(layer.forward(features));
            }
            member.output.forward(features).into_data().try_to_vec::<f32>().unwrap()
        };
        let x = Tensor::<4>::random([5, 3, 2, 8], burn::tensor::Distribution::Default, &device)
            .sub_scalar(0.5);
        for pooling in [Pooling::Gap, Pooling::Avgmax] {
            let mut config = TrainConfig::default_preset().head;
            config.dense = vec![4];
            config.pooling = pooling;
            let head = Head::new(&config, input, 3, &device);
            let expected = long_way(&head.members[0], x.clone(), pooling);
            let got = head.forward(x.clone(), pooling).into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(got.len(), expected.len());
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-5, "{pooling:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn se_output_reaches_the_classifier() {
        // With SE on, zeroing the excitation weights gates every channel by sigmoid(bias):
        // the logits must differ from the same head without SE.
        let device = crate::Backend::default().device();
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
