//! The classifier head: Squeeze-and-Excitation on the channels → Flatten (or global average
//! pooling) → dropout → dense ReLU layers → logits. Unlike the original Keras post, the SE
//! output really scales the map that is flattened.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};

use crate::config::{HeadConfig, Pooling};

/// Squeeze-and-Excitation: global average pool → Dense C/r, ReLU → Dense C, sigmoid → scale.
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    squeeze: Linear,
    excite: Linear,
}

impl SqueezeExcitation {
    /// # Shapes
    /// `x`: [batch, positions, channels] → same shape, each channel scaled by its gate in (0, 1).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [batch, _, channels] = x.dims();
        let pooled = x.clone().mean_dim(1).reshape([batch, channels]); // [batch, C]
        let gate = sigmoid(self.excite.forward(relu(self.squeeze.forward(pooled)))); // [batch, C]
        x * gate.reshape([batch, 1, channels])
    }
}

/// The head as a Burn module.
#[derive(Module, Debug)]
pub struct Head {
    se: Option<SqueezeExcitation>,
    dropouts: Vec<Dropout>,
    hidden: Vec<Linear>,
    hidden_dropout: Option<Dropout>,
    output: Linear,
}

/// The shape of the inputs a head was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Head {
    pub fn new(config: &HeadConfig, input: InputShape, classes: usize, device: &Device) -> Self {
        let channels = input.channels;
        let se = config.se.then(|| {
            let bottleneck = (channels / config.se_reduction).max(1);
            SqueezeExcitation {
                squeeze: LinearConfig::new(channels, bottleneck).init(device),
                excite: LinearConfig::new(bottleneck, channels).init(device),
            }
        });
        let mut width = match config.pooling {
            Pooling::Flatten => input.height * input.width * channels,
            Pooling::Gap => channels,
        };
        let mut hidden = Vec::new();
        for &units in &config.dense {
            hidden.push(LinearConfig::new(width, units).init(device));
            width = units;
        }
        Head {
            se,
            dropouts: config.dropout.iter().map(|&p| DropoutConfig::new(p).init()).collect(),
            hidden,
            hidden_dropout: (config.dense_dropout > 0.0)
                .then(|| DropoutConfig::new(config.dense_dropout).init()),
            output: LinearConfig::new(width, classes).init(device),
        }
    }

    /// # Shapes
    /// `x`: [batch, H, W, C] channels-last feature maps → logits [batch, classes].
    pub fn forward(&self, x: Tensor<4>, pooling: Pooling) -> Tensor<2> {
        let [batch, height, width, channels] = x.dims();
        let mut map = x.reshape([batch, height * width, channels]); // [batch, H·W, C]
        if let Some(se) = &self.se {
            map = se.forward(map);
        }
        let mut features = match pooling {
            Pooling::Flatten => map.reshape([batch, height * width * channels]),
            Pooling::Gap => map.mean_dim(1).reshape([batch, channels]),
        };
        for dropout in &self.dropouts {
            features = dropout.forward(features);
        }
        for layer in &self.hidden {
            features = relu(layer.forward(features));
            if let Some(dropout) = &self.hidden_dropout {
                features = dropout.forward(features);
            }
        }
        self.output.forward(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;

    #[test]
    fn shapes_flow_through_both_poolings() {
        let device = crate::Backend::default().device();
        let input = InputShape { height: 2, width: 3, channels: 8 };
        let x = Tensor::<4>::ones([4, 2, 3, 8], &device);
        for pooling in [Pooling::Flatten, Pooling::Gap] {
            let mut config = TrainConfig::default_preset().head;
            config.pooling = pooling;
            config.dense = vec![16, 16];
            let head = Head::new(&config, input, 5, &device);
            assert_eq!(head.forward(x.clone(), pooling).dims(), [4, 5]);
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
        without.se = None;
        let x = Tensor::<4>::ones([1, 1, 1, 4], &device);
        let a = with_se.forward(x.clone(), Pooling::Flatten).into_data();
        let b = without.forward(x, Pooling::Flatten).into_data();
        assert_ne!(a, b);
    }
}
