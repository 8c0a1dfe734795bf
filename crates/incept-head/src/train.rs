//! The training loop: [`train`] sets the run up, then trains epoch after epoch (a pass over the
//! training samples, validation, a checkpoint) and reports the best epoch's metrics. What it
//! writes, and how a kill at any moment is survived, is described in [`crate::run_folder`].
//!
//! - `setup`: the recipe, backend and data checked; the run folder started or resumed.
//! - `epoch`: one pass over the training samples on the learning-rate schedule.
//! - `loss`: the training loss, label smoothing and rebalancing.
//! - `mixup`: how a batch is blended with itself when `mixup_alpha` > 0.
//! - `validation`: per-photo predictions, their loss and metrics.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use incept_report::Metrics;

use crate::Result;
use crate::config::TrainConfig;
use crate::model::Head;
use crate::run_folder::{self, BestEpoch, Checkpoint};

mod epoch;
mod loss;
mod mixup;
mod rate;
mod setup;
mod validation;

pub use crate::backend::Backend;
pub use crate::run_folder::EpochRecord;
pub(crate) use epoch::learning_rate;
pub use rate::{OptimizerImplementation, TrainingRate, training_rate};
pub(crate) use validation::photo_metrics;

use epoch::{EpochEnd, Stop, Throughput};
use setup::Run;
use validation::Predictions;

/// One training run.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub cache: PathBuf,
    pub run_dir: PathBuf,
    pub config: TrainConfig,
    /// Continue the run in `run_dir`: `config` must be its saved recipe, except for a larger
    /// `epochs` and another `patience` (see [`resume_config`](crate::resume::resume_config)).
    pub resume: bool,
    /// `None`: flex for a new run, the run's own backend when resuming.
    pub backend: Option<Backend>,
    /// Print the per-epoch summary lines on stderr.
    pub verbose: bool,
}

#[derive(Clone, Debug)]
pub struct TrainReport {
    pub epochs: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub metrics: Metrics,
    pub interrupted: bool,
    pub train_samples: usize,
    pub validation_samples: usize,
    pub streaming: bool,
    /// Training samples per second over the optimizer steps alone.
    pub samples_per_second: f64,
    /// The backend it trained on.
    pub backend: Backend,
    pub seconds: f64,
}

/// Trains a head as `request` says; Ctrl-C (`interrupted`) stops after saving the last
/// finished epoch, and `--resume` continues from it.
pub fn train(request: &TrainRequest, interrupted: &AtomicBool) -> Result<TrainReport> {
    let started = Instant::now();
    // One writer per run folder, held until training returns.
    let _lock = run_folder::lock(&request.run_dir)?;
    let (mut run, mut model, mut optimizer) = setup::open(request, OptimizerImplementation::Fused)?;
    let stop = Stop { interrupted, max_steps: None };
    let mut throughput = Throughput::default();
    let (mut epochs, mut best_predictions, mut was_interrupted) = (Vec::new(), None, false);
    let refit = run.config.refit_epochs > 0;
    // A refit stops after its epochs of the recipe's schedule.
    let last_epoch = if refit { run.config.refit_epochs } else { run.config.epochs };
    // A refit validates nothing, so has no best to wait for.
    let patience = if refit { 0 } else { run.config.patience };
    for epoch in run.state.completed_epochs..last_epoch {
        if run.state.patience_exhausted(patience) {
            if request.verbose {
                eprintln!(
                    "stopping early after epoch {epoch} of {last_epoch}: no better epoch (by {}) \
                     in the {patience} since epoch {} (--patience {patience})",
                    run.config.select.name(),
                    run.state.best_epoch
                );
            }
            break;
        }
        let epoch_started = Instant::now();
        let end;
        (model, end) =
            epoch::train_epoch(&run, model, &mut optimizer, epoch, &stop, &mut throughput)?;
        let training = match end {
            EpochEnd::Finished(training) => training,
            EpochEnd::Interrupted => {
                was_interrupted = true;
                break;
            }
            // Only `training_rate` sets a step limit.
            EpochEnd::StepLimit => break,
        };
        let predictions = if refit {
            Predictions::none()
        } else {
            validation::predict_split(&run, &model.valid(), &run.validation_device())?
        };
        let metrics = predictions.metrics(&run.classes, run.config.tta)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss: training.loss,
            train_accuracy: training.accuracy,
            validation_loss: if refit { f64::NAN } else { predictions.loss },
            validation_accuracy: if refit { f64::NAN } else { predictions.accuracy() },
            validation_balanced_accuracy: (!refit).then_some(metrics.balanced_accuracy),
            validation_macro_f1: (!refit).then_some(metrics.macro_f1),
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        if request.verbose {
            print_epoch(&record, run.config.epochs, training.learning_rate);
        }
        if checkpoint(&mut run, &model, &optimizer, record.clone(), &predictions, &metrics)? {
            best_predictions = Some(predictions);
        }
        epochs.push(record);
    }
    let metrics = validation::best_metrics(&run, best_predictions)?;
    run_folder::finish(&run.run_dir, &mut run.state, last_epoch, patience)?;
    Ok(TrainReport {
        epochs,
        best_epoch: run.state.best_epoch,
        metrics,
        interrupted: was_interrupted,
        train_samples: run.split.train.len(),
        validation_samples: run.split.validation.len(),
        streaming: run.store.is_streaming(),
        samples_per_second: throughput.samples as f64 / throughput.seconds.max(1e-9),
        backend: run.backend,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Commits finished epoch `record` with `model` and `optimizer` as one checkpoint; when it is
/// the best so far (by the recipe's `select`), the best epoch's weights, `predictions` and
/// `metrics` join it. Returns whether they did.
fn checkpoint(
    run: &mut Run,
    model: &Head,
    optimizer: &ModuleOptimizer,
    record: EpochRecord,
    predictions: &Predictions,
    metrics: &Metrics,
) -> Result<bool> {
    let last_weights = run_folder::weights_bytes(model)?;
    // A refit has no validation to choose by: its weights are those of its last epoch.
    let improved =
        run.config.refit_epochs > 0 || run.state.improves_on_best(&record, run.config.select);
    let best = if improved {
        Some(BestEpoch {
            weights: last_weights.clone(),
            predictions_csv: predictions.to_csv(&run.classes, run.config.tta),
            metrics_json: metrics.to_json(),
            calibration_json: run_folder::RunCalibration::fit(
                &predictions.photos(),
                run.config.tta,
                run_folder::FittedOn::Validation,
            )
            .to_json(),
        })
    } else {
        None
    };
    run.state.record_epoch(record, improved);
    let checkpoint =
        Checkpoint { last_weights, optimizer: run_folder::optimizer_bytes(optimizer)?, best };
    run_folder::commit(&run.run_dir, &mut run.state, checkpoint)?;
    Ok(improved)
}

/// The summary line of a finished epoch, on stderr.
fn print_epoch(record: &EpochRecord, planned_epochs: usize, learning_rate: f64) {
    eprintln!(
        "epoch {:>3}/{}: train loss {:.4} acc {:.3} | validation loss {:.4} acc {:.3} balanced {:.3} | lr {:.2e} | {:.1} s",
        record.epoch,
        planned_epochs,
        record.train_loss,
        record.train_accuracy,
        record.validation_loss,
        record.validation_accuracy,
        record.validation_balanced_accuracy.unwrap_or(f64::NAN),
        learning_rate,
        record.seconds
    );
}
