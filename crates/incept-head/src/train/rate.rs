//! Training throughput for benchmarks: a few optimizer steps of a fresh run, timed, with no
//! validation and no checkpoint. `just bench-train` drives it; `train` never stops by steps.

use std::sync::atomic::AtomicBool;

use super::epoch::{self, EpochEnd, Stop, Throughput};
use super::{TrainRequest, setup};
use crate::{Result, run_folder};

/// Which implementation of the recipe's optimizer rule steps the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerImplementation {
    /// incept's fused loops ([`crate::optim`]): what `train` uses.
    Fused,
    /// Burn's optimizers, the same rules; kept to compare against.
    Burn,
}

/// Takes `steps` optimizer steps of the run `request` describes (a new run folder in
/// `request.run_dir`) and returns the training samples per second over the steps alone.
pub fn training_rate(
    request: &TrainRequest,
    steps: usize,
    implementation: OptimizerImplementation,
) -> Result<f64> {
    let _lock = run_folder::lock(&request.run_dir)?;
    let (run, mut model, mut optimizer) = setup::open(request, implementation)?;
    let never = AtomicBool::new(false);
    let stop = Stop { interrupted: &never, max_steps: Some(steps) };
    let mut throughput = Throughput::default();
    for epoch in 0..run.config.epochs {
        let end;
        (model, end) =
            epoch::train_epoch(&run, model, &mut optimizer, epoch, &stop, &mut throughput)?;
        if !matches!(end, EpochEnd::Finished(_)) {
            break;
        }
    }
    Ok(throughput.samples as f64 / throughput.seconds.max(1e-9))
}
