//! One member of a head: SE, pooling, dropout, dense layers, logits.

use burn::prelude::*;
use burn::tensor::activation::relu;

use super::InputShape;
use super::layers::{Dense, SqueezeExcitation, dropout};
use crate::config::{HeadConfig, Pooling};

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

impl Member {
    pub(super) fn new(
        config: &HeadConfig,
        input: InputShape,
        classes: usize,
        device: &Device,
    ) -> Self {
        let channels = input.channels;
        // SE with bilinear pooling is refused by `TrainConfig::validate`.
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
            Pooling::Bilinear => crate::bilinear::pooled_len(config.bilinear_dimensions),
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
    /// `x`: [batch, H, W, C] channels-last feature maps → logits [batch, classes]; for
    /// [`Pooling::Bilinear`], the pooled vectors [batch, 1, 1, D·(D+1)/2]
    /// (`Projection::pool` makes them from maps).
    pub(super) fn forward(
        &self,
        x: Tensor<4>,
        pooling: Pooling,
        dropout_seed: Option<u64>,
    ) -> Tensor<2> {
        let [batch, height, width, channels] = x.dims();
        let map = x.reshape([batch, height * width, channels]); // [batch, H·W, C]
        let average = |map: Tensor<3>| map.mean_dim(1).reshape([batch, channels]); // [batch, C]
        // SE scales each channel by a positive gate, which commutes with averaging and max over
        // positions: the pooled heads scale the pooled [batch, C] features instead of the map,
        // H·W times less work in both passes, the same values.
        let mut features = match (pooling, &self.se) {
            (Pooling::Bilinear, _) => map.reshape([batch, height * width * channels]),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::model::Head;

    #[test]
    fn consecutive_dropouts_combine_and_inference_has_none() {
        let device = burn::prelude::Device::flex();
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
    fn pooled_heads_gate_the_pooled_features_as_if_they_gated_the_map() {
        let device = burn::prelude::Device::flex();
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
}
