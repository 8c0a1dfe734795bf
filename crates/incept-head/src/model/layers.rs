//! The layers a head is built from: Squeeze-and-Excitation, the dense layer and dropout.

use burn::module::Param;
use burn::nn::LinearConfig;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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

/// Elements per dropout-mask chunk; each chunk has its own generator, so masks are the same
/// whatever the number of threads.
const MASK_CHUNK: usize = 1 << 14;

/// Inverted dropout: zeroes each element with probability `1 − keep` and scales the rest by
/// `1 / keep`. The mask comes from `seed` alone, drawn in parallel (Burn's `Dropout` draws it
/// element by element on one thread: a sixth of the flatten head's training step).
///
/// # Shapes
/// `x`: [batch, width] → same shape.
pub(super) fn dropout(x: Tensor<2>, keep: f64, seed: u64) -> Tensor<2> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropout_keeps_the_given_fraction_scaled_and_follows_its_seed() {
        let device = burn::prelude::Device::flex();
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
    fn dense_computes_x_times_w_transposed_plus_b_and_its_gradients() {
        let device = burn::prelude::Device::flex().autodiff();
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
}
