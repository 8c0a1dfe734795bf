//! The update rules as Burn tensor operations, for tensors that are not `f32`.

use burn::prelude::*;

use super::{BETA_1, BETA_2, EPSILON, Fused, FusedState, Rule, bias_corrections};

impl Fused {
    /// The rules written as Burn tensor operations: for tensors that are not `f32`.
    pub(super) fn unfused<const D: usize>(
        &self,
        learning_rate: f32,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<FusedState<D>>,
    ) -> (Tensor<D>, Option<FusedState<D>>) {
        let time = state.as_ref().map_or(0, |s| s.time) + 1;
        let (first, second) = state.map_or((None, None), |s| (s.first, s.second));
        let decay = self.weight_decay;
        match self.rule {
            Rule::Sgd { momentum } => {
                let grad = if decay > 0.0 { grad + tensor.clone().mul_scalar(decay) } else { grad };
                if momentum > 0.0 {
                    let velocity = match first {
                        Some(velocity) => velocity.mul_scalar(momentum) + grad,
                        None => grad,
                    };
                    let updated = tensor - velocity.clone().mul_scalar(learning_rate);
                    (updated, Some(FusedState { time, first: Some(velocity), second: None }))
                } else {
                    (tensor - grad.mul_scalar(learning_rate), None)
                }
            }
            Rule::Adam | Rule::AdamW => {
                let adam_l2 = self.rule == Rule::Adam && decay > 0.0;
                let grad = if adam_l2 { grad + tensor.clone().mul_scalar(decay) } else { grad };
                let first = match first {
                    Some(m) => m.mul_scalar(BETA_1) + grad.clone().mul_scalar(1.0 - BETA_1),
                    None => grad.clone().mul_scalar(1.0 - BETA_1),
                };
                let second = match second {
                    Some(v) => v.mul_scalar(BETA_2) + grad.square().mul_scalar(1.0 - BETA_2),
                    None => grad.square().mul_scalar(1.0 - BETA_2),
                };
                let (correction_1, correction_2) = bias_corrections(time);
                let delta = first
                    .clone()
                    .div_scalar(correction_1)
                    .div(second.clone().div_scalar(correction_2).sqrt().add_scalar(EPSILON));
                let decayed = if self.rule == Rule::AdamW && decay > 0.0 {
                    tensor.mul_scalar(1.0 - learning_rate * decay)
                } else {
                    tensor
                };
                let updated = decayed - delta.mul_scalar(learning_rate);
                (updated, Some(FusedState { time, first: Some(first), second: Some(second) }))
            }
        }
    }
}
