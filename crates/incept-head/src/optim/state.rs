//! The per-parameter state of the fused optimizers, and how it is saved and restored.

use burn::optim::{RecordState, StateSink, StateSource};
use burn::prelude::*;
use burn_pack::Scalar;

/// Per-parameter state: SGD keeps the velocity in `first`; Adam the two moments.
#[derive(Clone, Debug)]
pub struct FusedState<const D: usize> {
    /// Steps taken so far (Adam's bias correction).
    pub(super) time: usize,
    pub(super) first: Option<Tensor<D>>,
    pub(super) second: Option<Tensor<D>>,
}

impl<const D: usize> RecordState for FusedState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        out.push_scalar(prefix, "time", Scalar::from(self.time));
        if let Some(first) = &self.first {
            out.push_tensor(prefix, "first", first.to_data());
        }
        if let Some(second) = &self.second {
            out.push_tensor(prefix, "second", second.to_data());
        }
    }

    fn state_unflatten(prefix: &str, source: &mut StateSource, device: &Device) -> Option<Self> {
        let time = usize::try_from(source.take_scalar(prefix, "time")?).ok()?;
        let mut tensor = |leaf| {
            source.take_tensor(prefix, leaf).map(|data| Tensor::<D>::from_data(data, device))
        };
        Some(FusedState { time, first: tensor("first"), second: tensor("second") })
    }
}
