//! A trained head's weights as plain arrays, for writing it in another format (ONNX export).

use burn::prelude::*;

use crate::bilinear::Projection;
use crate::model::{Dense, Head};
use crate::runs::TrainedHead;
use crate::{Error, Pooling, Result};

/// A dense layer `y = x·Wᵀ + b`.
#[derive(Clone, Debug)]
pub struct DenseValues {
    pub inputs: usize,
    pub outputs: usize,
    /// [outputs, inputs], row-major.
    pub weight: Vec<f32>,
    /// [outputs]
    pub bias: Vec<f32>,
}

/// One member of a head, in the order it computes (dropout is gone: it only acts in training).
#[derive(Clone, Debug)]
pub struct MemberValues {
    /// Squeeze-and-Excitation's two layers, C → C/r (ReLU) and C/r → C (sigmoid): the gates.
    pub squeeze_excitation: Option<(DenseValues, DenseValues)>,
    /// Hidden layers, each followed by ReLU.
    pub hidden: Vec<DenseValues>,
    /// The layer giving the logits.
    pub output: DenseValues,
}

/// A whole head: how it pools the channels-last map and its members, whose softmax outputs are
/// averaged.
#[derive(Clone, Debug)]
pub struct HeadValues {
    /// The feature maps it takes, [H, W, C].
    pub input_shape: [usize; 3],
    pub pooling: Pooling,
    /// A bilinear head's projection: each position is pooled with it first.
    pub projection: Option<Projection>,
    pub members: Vec<MemberValues>,
}

fn dense_values(dense: &Dense) -> Result<DenseValues> {
    let [outputs, inputs] = dense.weight.val().dims();
    let read =
        |data: TensorData| data.try_to_vec::<f32>().map_err(|e| Error::Data(format!("{e:?}")));
    Ok(DenseValues {
        inputs,
        outputs,
        weight: read(dense.weight.val().into_data())?,
        bias: read(dense.bias.val().into_data())?,
    })
}

fn head_values(head: &Head) -> Result<Vec<MemberValues>> {
    head.members
        .iter()
        .map(|member| {
            let squeeze_excitation = match &member.se {
                Some(se) => Some((dense_values(&se.squeeze)?, dense_values(&se.excite)?)),
                None => None,
            };
            Ok(MemberValues {
                squeeze_excitation,
                hidden: member.dense.iter().map(dense_values).collect::<Result<_>>()?,
                output: dense_values(&member.output)?,
            })
        })
        .collect()
}

impl TrainedHead {
    /// Members whose probabilities the head averages (1 unless trained with `--ensemble`).
    pub fn members(&self) -> usize {
        self.model.members.len()
    }

    /// The best epoch's weights, as plain arrays.
    pub fn values(&self) -> Result<HeadValues> {
        Ok(HeadValues {
            input_shape: self.state.input_shape,
            pooling: self.config.head.pooling,
            projection: self.model.projection()?,
            members: head_values(&self.model)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::model::InputShape;

    #[test]
    fn values_follow_the_layers_and_recompute_the_logits() {
        let device = burn::prelude::Device::flex();
        device.seed(3);
        let mut config = TrainConfig::default_preset().head;
        config.dense = vec![6];
        let input = InputShape { height: 1, width: 1, channels: 8 };
        let head = Head::new(&config, input, 3, &device);
        let members = head_values(&head).expect("values");
        assert_eq!(members.len(), 1);
        let member = &members[0];
        let (squeeze, excite) = member.squeeze_excitation.as_ref().expect("SE is on by default");
        assert_eq!((squeeze.inputs, squeeze.outputs), (8, 8 / config.se_reduction));
        assert_eq!((excite.inputs, excite.outputs), (8 / config.se_reduction, 8));
        assert_eq!((member.hidden[0].inputs, member.hidden[0].outputs), (8, 6));
        assert_eq!((member.output.inputs, member.output.outputs), (6, 3));
        // The logits, recomputed from the values by hand, equal the head's.
        let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.3 - 1.0).collect();
        let dense = |layer: &DenseValues, x: &[f32]| -> Vec<f32> {
            (0..layer.outputs)
                .map(|o| {
                    layer.bias[o]
                        + (0..layer.inputs)
                            .map(|i| layer.weight[o * layer.inputs + i] * x[i])
                            .sum::<f32>()
                })
                .collect()
        };
        let relu = |v: Vec<f32>| v.into_iter().map(|v| v.max(0.0)).collect::<Vec<f32>>();
        let gate: Vec<f32> = dense(excite, &relu(dense(squeeze, &x)))
            .into_iter()
            .map(|v| 1.0 / (1.0 + (-v).exp()))
            .collect();
        let gated: Vec<f32> = x.iter().zip(&gate).map(|(x, g)| x * g).collect();
        let expected = dense(&member.output, &relu(dense(&member.hidden[0], &gated)));
        let tensor = Tensor::<4>::from_data(TensorData::new(x, [1, 1, 1, 8]), &device);
        let got =
            head.forward(tensor, Pooling::Gap).into_data().try_to_vec::<f32>().expect("logits");
        for (a, b) in got.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}
