//! Fused optimizers for Burn's CPU backends.
//!
//! Burn's `Sgd`, `Adam` and `AdamW` build each update from a chain of tensor operations, and every
//! link allocates a fresh parameter-sized buffer: for the 52 M-weight flatten head that is several
//! 210 MB allocations (and their page faults) per step, as much time as the backward pass. These
//! take the parameter, gradient and state buffers by value (zero-copy on `flex` when uniquely
//! owned), update them in place in one parallel pass and hand them back. Same rules as Burn's
//! (the tests compare them step by step):
//! - SGD: `g += wd·p`; `v = m·v + g` (PyTorch momentum: no dampening, `v = g` at first); `p -= lr·v`.
//! - Adam: `g += wd·p` (L2 penalty), then Adam with bias correction, `ε` outside the square root.
//! - AdamW: Adam on the raw gradient, and the decoupled decay `p -= lr·wd·p`.
//!
//! The loops are compiled for the CPU's widest vectors (AVX2, AVX-512) and picked at run time
//! (`pulp`). Tensors that are not `f32` take the same rules written as Burn tensor operations.

use burn::optim::{LearningRate, Optimizer};
use burn::prelude::*;
use burn::tensor::DType;

mod fused;
mod state;
mod unfused;

pub use state::FusedState;

/// Elements per parallel work item: large enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
/// Burn's default for Adam and AdamW (PyTorch's is 1e-8).
const EPSILON: f32 = 1e-5;

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// SGD; `momentum` 0 is plain SGD.
    Sgd { momentum: f32 },
    /// Adam with the weight decay as an L2 penalty added to the gradient.
    Adam,
    /// AdamW: decoupled weight decay.
    AdamW,
}

/// A fused optimizer (see the module docs).
#[derive(Clone, Debug)]
pub struct Fused {
    rule: Rule,
    weight_decay: f32,
}

impl Fused {
    pub fn new(rule: Rule, weight_decay: f32) -> Self {
        Fused { rule, weight_decay }
    }
}

/// `1 - β₁ᵗ` and `1 - β₂ᵗ`.
fn bias_corrections(time: usize) -> (f32, f32) {
    let t = i32::try_from(time).unwrap_or(i32::MAX);
    (1.0 - BETA_1.powi(t), 1.0 - BETA_2.powi(t))
}

/// Reads a tensor's buffer, zero-copy when the tensor owns it alone.
fn buffer<const D: usize>(tensor: Tensor<D>) -> TensorData {
    // Burn's CPU backends read synchronously: this cannot fail on them.
    tensor.try_into_data().expect("reading a CPU tensor")
}

impl Optimizer for Fused {
    type State<const D: usize> = FusedState<D>;

    fn step<const D: usize>(
        &self,
        learning_rate: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let learning_rate = learning_rate as f32;
        let f32_only = [Some(&tensor), Some(&grad)]
            .into_iter()
            .chain(state.iter().flat_map(|s| [s.first.as_ref(), s.second.as_ref()]))
            .flatten()
            .all(|t| t.dtype() == DType::F32);
        if !f32_only {
            return self.unfused(learning_rate, tensor, grad, state);
        }
        let device = tensor.device();
        let shape = tensor.shape();
        let previous_time = state.as_ref().map_or(0, |s| s.time);
        let (first, second) = state.map_or((None, None), |s| (s.first, s.second));
        // Missing moments start at zero, which gives the first-step rules of Burn.
        let (wants_first, wants_second) = match self.rule {
            Rule::Sgd { momentum } => (momentum > 0.0, false),
            Rule::Adam | Rule::AdamW => (true, true),
        };
        let start = |wanted: bool, moment: Option<Tensor<D>>| {
            moment
                .map(buffer)
                .or_else(|| wanted.then(|| TensorData::zeros::<f32, _>(shape.clone())))
        };
        let mut first = start(wants_first, first);
        let mut second = start(wants_second, second);
        let mut parameter = buffer(tensor);
        let mut gradient = buffer(grad);
        let time = previous_time + 1;
        let fused = self.update(
            learning_rate,
            time,
            &mut parameter,
            &mut gradient,
            first.as_mut(),
            second.as_mut(),
        );
        let to_tensor = |data: TensorData| Tensor::<D>::from_data(data, &device);
        if !fused {
            let state = (previous_time > 0).then(|| FusedState {
                time: previous_time,
                first: first.map(to_tensor),
                second: second.map(to_tensor),
            });
            return self.unfused(learning_rate, to_tensor(parameter), to_tensor(gradient), state);
        }
        let state = (first.is_some() || second.is_some()).then(|| FusedState {
            time,
            first: first.map(to_tensor),
            second: second.map(to_tensor),
        });
        (to_tensor(parameter), state)
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.first = state.first.map(|t| t.to_device(device));
        state.second = state.second.map(|t| t.to_device(device));
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};

    fn weights(layer: &Linear) -> Vec<f32> {
        let mut values = layer.weight.val().into_data().try_to_vec::<f32>().unwrap();
        if let Some(bias) = &layer.bias {
            values.extend(bias.val().into_data().try_to_vec::<f32>().unwrap());
        }
        values
    }

    /// Trains two copies of one layer with the two optimizers on the same batches.
    fn train_both(
        mut stock: ModuleOptimizer,
        mut fused: ModuleOptimizer,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let device = burn::prelude::Device::flex().autodiff();
        device.seed(3);
        let mut a: Linear = LinearConfig::new(6, 3).init(&device);
        let mut b = a.clone();
        let initial = weights(&a);
        for step in 0..4 {
            let x = Tensor::<2>::random([5, 6], burn::tensor::Distribution::Default, &device)
                .add_scalar(step as f32 * 0.1);
            let grads_a = GradientsParams::from_grads(
                a.forward(x.clone()).powi_scalar(2).sum().backward(),
                &a,
            );
            let grads_b =
                GradientsParams::from_grads(b.forward(x).powi_scalar(2).sum().backward(), &b);
            a = stock.step(0.05, a, grads_a);
            b = fused.step(0.05, b, grads_b);
        }
        (initial, weights(&a), weights(&b))
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn fused_rules_equal_burns_optimizers() {
        let decay = Some(WeightDecayConfig { penalty: 0.01 });
        let momentum = MomentumConfig::new().with_momentum(0.9).with_dampening(0.0);
        let cases: Vec<(&str, ModuleOptimizer, Fused)> = vec![
            (
                "sgd+momentum",
                SgdConfig::new()
                    .with_momentum(Some(momentum))
                    .with_weight_decay(decay.clone())
                    .init(),
                Fused::new(Rule::Sgd { momentum: 0.9 }, 0.01),
            ),
            ("sgd", SgdConfig::new().init(), Fused::new(Rule::Sgd { momentum: 0.0 }, 0.0)),
            (
                "adam",
                AdamConfig::new().with_weight_decay(decay).init(),
                Fused::new(Rule::Adam, 0.01),
            ),
            (
                "adamw",
                AdamWConfig::new().with_weight_decay(0.01).init(),
                Fused::new(Rule::AdamW, 0.01),
            ),
        ];
        for (name, stock, fused) in cases {
            let (initial, a, b) = train_both(stock, fused.into());
            assert_close(&a, &b);
            assert_ne!(a, initial, "{name}: the layer did not move");
        }
    }

    #[test]
    fn unfused_fallback_equals_the_fused_pass() {
        let device = burn::prelude::Device::flex();
        for rule in [Rule::Sgd { momentum: 0.9 }, Rule::Adam, Rule::AdamW] {
            let optimizer = Fused::new(rule, 0.02);
            let mut fused = Tensor::<1>::from_floats([0.5, -1.0, 2.0, 0.0], &device);
            let mut plain = fused.clone();
            let (mut fused_state, mut plain_state) = (None, None);
            for step in 0..3 {
                let grad = Tensor::<1>::from_floats([0.1, -0.2, 0.3, 0.4], &device)
                    .mul_scalar(step as f32 + 1.0);
                (fused, fused_state) = optimizer.step(0.1, fused, grad.clone(), fused_state);
                (plain, plain_state) = optimizer.unfused(0.1, plain, grad, plain_state);
            }
            let fused = fused.into_data().try_to_vec::<f32>().unwrap();
            let plain = plain.into_data().try_to_vec::<f32>().unwrap();
            assert_close(&fused, &plain);
        }
    }
}
