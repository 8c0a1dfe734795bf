//! The fused passes: SGD and Adam/AdamW updating `f32` buffers in place, in parallel.

use burn::prelude::*;
use rayon::prelude::*;

use super::{BETA_1, BETA_2, CHUNK, EPSILON, Fused, Rule, bias_corrections};

impl Fused {
    /// Updates the buffers in place; `false` when one of them cannot be viewed as `f32`.
    pub(super) fn update(
        &self,
        learning_rate: f32,
        time: usize,
        parameter: &mut TensorData,
        gradient: &mut TensorData,
        first: Option<&mut TensorData>,
        second: Option<&mut TensorData>,
    ) -> bool {
        let (Some(Some(p)), Some(Some(g)), Some(first), Some(second)) =
            (as_f32(Some(parameter)), as_f32(Some(gradient)), as_f32(first), as_f32(second))
        else {
            return false;
        };
        match (self.rule, first, second) {
            (Rule::Sgd { momentum }, velocity, _) => {
                sgd(p, g, velocity, momentum, self.weight_decay, learning_rate);
                true
            }
            (rule, Some(m), Some(v)) => {
                let decoupled = rule == Rule::AdamW;
                adam(p, g, m, v, decoupled, self.weight_decay, learning_rate, time);
                true
            }
            _ => false,
        }
    }
}

fn as_f32(data: Option<&mut TensorData>) -> Option<Option<&mut [f32]>> {
    match data {
        Some(data) => data.as_mut_slice::<f32>().ok().map(Some),
        None => Some(None),
    }
}

/// SGD in one pass. `velocity` is `None` without momentum.
fn sgd(
    parameter: &mut [f32],
    gradient: &[f32],
    velocity: Option<&mut [f32]>,
    momentum: f32,
    decay: f32,
    learning_rate: f32,
) {
    let arch = pulp::Arch::new();
    let parameter = parameter.par_chunks_mut(CHUNK).zip(gradient.par_chunks(CHUNK));
    match velocity {
        Some(velocity) => parameter.zip(velocity.par_chunks_mut(CHUNK)).for_each(|((p, g), v)| {
            arch.dispatch(
                #[inline(always)]
                || {
                    for ((p, g), v) in p.iter_mut().zip(g).zip(v) {
                        *v = momentum * *v + (g + decay * *p);
                        *p -= learning_rate * *v;
                    }
                },
            )
        }),
        None => parameter.for_each(|(p, g)| {
            arch.dispatch(
                #[inline(always)]
                || {
                    for (p, g) in p.iter_mut().zip(g) {
                        *p -= learning_rate * (g + decay * *p);
                    }
                },
            )
        }),
    }
}

/// Adam (`decoupled` false, L2 penalty) or AdamW (`decoupled` true) in one pass.
#[allow(clippy::too_many_arguments)]
fn adam(
    parameter: &mut [f32],
    gradient: &[f32],
    first: &mut [f32],
    second: &mut [f32],
    decoupled: bool,
    decay: f32,
    learning_rate: f32,
    time: usize,
) {
    let (correction_1, correction_2) = bias_corrections(time);
    let arch = pulp::Arch::new();
    let (l2, shrink) = if decoupled { (0.0, 1.0 - learning_rate * decay) } else { (decay, 1.0) };
    parameter
        .par_chunks_mut(CHUNK)
        .zip(gradient.par_chunks(CHUNK))
        .zip(first.par_chunks_mut(CHUNK))
        .zip(second.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            arch.dispatch(
                #[inline(always)]
                || {
                    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                        let g = g + l2 * *p;
                        *m = BETA_1 * *m + (1.0 - BETA_1) * g;
                        *v = BETA_2 * *v + (1.0 - BETA_2) * g * g;
                        let delta = (*m / correction_1) / ((*v / correction_2).sqrt() + EPSILON);
                        *p = *p * shrink - learning_rate * delta;
                    }
                },
            )
        });
}
