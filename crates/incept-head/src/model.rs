//! The classifier head: Squeeze-and-Excitation on the channels → Flatten (or global average
//! pooling) → dropout → dense ReLU layers → logits. Unlike the original Keras post, the SE
//! output really scales the map that is flattened.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use burn::module::Param;

use crate::bilinear::Projection;
use crate::config::{HeadConfig, Pooling};
use crate::{Error, Result};

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
    /// A bilinear head's projection, fitted when its run starts; saved with the weights, never
    /// trained.
    pub(crate) projection: Option<ProjectionParams>,
}

/// A parameter no optimizer step touches.
fn fixed<const D: usize>(tensor: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(tensor).set_require_grad(false)
}

/// [`Projection`]'s values as parameters, so the weight files carry them.
#[derive(Module, Debug)]
pub struct ProjectionParams {
    /// [C]
    mean: Param<Tensor<1>>,
    /// [C, D]
    directions: Param<Tensor<2>>,
}

impl Head {
    pub fn new(config: &HeadConfig, input: InputShape, classes: usize, device: &Device) -> Self {
        let members =
            (0..config.ensemble.max(1)).map(|_| Member::new(config, input, classes, device));
        let projection = (config.pooling == Pooling::Bilinear).then(|| ProjectionParams {
            mean: fixed(Tensor::zeros([input.channels], device)),
            directions: fixed(Tensor::zeros([input.channels, config.bilinear_dimensions], device)),
        });
        Head { members: members.collect(), projection }
    }

    /// Sets a bilinear head's projection (when its run starts).
    pub(crate) fn set_projection(&mut self, projection: &Projection) -> Result<()> {
        let params = self
            .projection
            .as_mut()
            .ok_or_else(|| Error::Config("only a bilinear head has a projection".into()))?;
        let device = params.mean.val().device();
        let [channels, dimensions] = params.directions.val().dims();
        if (channels, dimensions) != (projection.channels, projection.dimensions) {
            return Err(Error::Data(format!(
                "a projection of {}×{} for a head of {channels}×{dimensions}",
                projection.channels, projection.dimensions
            )));
        }
        params.mean =
            fixed(Tensor::from_data(TensorData::new(projection.mean.clone(), [channels]), &device));
        params.directions = fixed(Tensor::from_data(
            TensorData::new(projection.directions.clone(), [channels, dimensions]),
            &device,
        ));
        Ok(())
    }

    /// A bilinear head's projection, as plain values.
    pub fn projection(&self) -> Result<Option<Projection>> {
        let Some(params) = &self.projection else { return Ok(None) };
        let read =
            |data: TensorData| data.try_to_vec::<f32>().map_err(|e| Error::Data(format!("{e:?}")));
        let [channels, dimensions] = params.directions.val().dims();
        Ok(Some(Projection {
            channels,
            dimensions,
            mean: read(params.mean.val().into_data())?,
            directions: read(params.directions.val().into_data())?,
        }))
    }

    /// Inference: no dropout. Log-probabilities up to a constant per row (a single head's
    /// logits; for an ensemble the log of the members' mean softmax).
    ///
    /// # Shapes
    /// `x`: [batch, H, W, C] channels-last feature maps → [batch, classes]. A bilinear head
    /// takes the pooled vectors [batch, 1, 1, D·(D+1)/2] instead; `TrainedHead::probabilities`
    /// pools maps for it.
    pub fn forward(&self, x: Tensor<4>, pooling: Pooling) -> Tensor<2> {
        let logits = self.members.iter().map(|m| m.forward(x.clone(), pooling, None)).collect();
        combine(logits)
    }

    /// Training: each member's logits, dropout masks drawn from `dropout_seed` (one seed per
    /// step makes runs reproducible and resumable). Each member gets its own loss.
    ///
    /// # Shapes
    /// `x`: [batch, H, W, C] (a bilinear head: [batch, 1, 1, D·(D+1)/2]) → members ×
    /// [batch, classes].
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
        // A bilinear head takes pooled vectors: 3 directions, 6 values.
        let mut config = TrainConfig::bilinear_preset().head;
        config.bilinear_dimensions = 3;
        let head = Head::new(&config, input, 5, &device);
        assert!(head.members[0].se.is_none());
        let pooled = Tensor::<4>::ones([4, 1, 1, 6], &device);
        assert_eq!(head.forward(pooled, Pooling::Bilinear).dims(), [4, 5]);
    }

    #[test]
    fn a_bilinear_projection_is_kept_as_set_and_never_trained() {
        let device = burn::prelude::Device::flex();
        let mut config = TrainConfig::bilinear_preset().head;
        config.bilinear_dimensions = 2;
        let input = InputShape { height: 2, width: 2, channels: 3 };
        let mut head = Head::new(&config, input, 4, &device);
        let projection = Projection {
            channels: 3,
            dimensions: 2,
            mean: vec![0.5, 0.25, 0.125],
            directions: vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        };
        head.set_projection(&projection).expect("set");
        assert_eq!(head.projection().expect("read"), Some(projection.clone()));
        let params = head.projection.as_ref().expect("bilinear");
        assert!(!params.mean.is_require_grad() && !params.directions.is_require_grad());
        let wrong = Projection { dimensions: 1, directions: vec![1.0, 0.0, 0.0], ..projection };
        assert!(head.set_projection(&wrong).is_err(), "another shape is refused");
        let gap = Head::new(&TrainConfig::default_preset().head, input, 4, &device);
        assert_eq!(gap.projection().expect("read"), None);
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
