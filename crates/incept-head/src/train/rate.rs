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

/// How fast a run trained, in training samples per second.
#[derive(Clone, Copy, Debug)]
pub struct TrainingRate {
    /// Over the optimizer steps alone.
    pub steps: f64,
    /// Over the passes over the training samples: the steps and reading their batches (from
    /// disk when streaming). Opening the cache (loading it, or the pooling pass) is not in it.
    pub wall: f64,
    /// Seconds to open the run's data: load the cache into memory, or prepare streaming.
    pub open_seconds: f64,
    /// Whether the cache was streamed from disk.
    pub streaming: bool,
    /// Training samples the steps took.
    pub samples: usize,
}

/// Takes `steps` optimizer steps of the run `request` describes (a new run folder in
/// `request.run_dir`) and returns how fast they went.
pub fn training_rate(
    request: &TrainRequest,
    steps: usize,
    implementation: OptimizerImplementation,
) -> Result<TrainingRate> {
    let _lock = run_folder::lock(&request.run_dir)?;
    let opened = std::time::Instant::now();
    let (run, mut model, mut optimizer) = setup::open(request, implementation)?;
    let open_seconds = opened.elapsed().as_secs_f64();
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
    let samples = throughput.samples as f64;
    Ok(TrainingRate {
        steps: samples / throughput.seconds.max(1e-9),
        wall: samples / throughput.wall_seconds.max(1e-9),
        open_seconds,
        streaming: run.store.is_streaming(),
        samples: throughput.samples,
    })
}
