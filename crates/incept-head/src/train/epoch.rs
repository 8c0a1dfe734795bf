//! One epoch of training: a shuffled pass over the training samples, one optimizer step per
//! batch, on the cosine learning-rate schedule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::mixup::Mix;
use super::setup::Run;
use crate::config::TrainConfig;
use crate::data::argmax;
use crate::model::Head;
use crate::{Error, Result};

/// How an epoch's pass ended.
pub(super) enum EpochEnd {
    /// Every training sample was seen once.
    Finished(EpochTraining),
    /// Ctrl-C: the epoch is dropped; a resume continues after the last finished one.
    Interrupted,
    /// The step limit of [`training_rate`](super::training_rate) was reached.
    StepLimit,
}

/// The figures of a finished pass.
pub(super) struct EpochTraining {
    /// Mean cross-entropy over the samples (the mean over the ensemble's members); under mixup,
    /// of the blended samples against their blended labels.
    pub loss: f64,
    /// Share of the samples whose combined logits pick their label; under mixup, the blended
    /// samples against each one's dominant label.
    pub accuracy: f64,
    /// The learning rate the epoch trained at.
    pub learning_rate: f64,
}

/// When training stops before the planned epochs: Ctrl-C, or `training_rate`'s step limit.
pub(super) struct Stop<'a> {
    pub interrupted: &'a AtomicBool,
    pub max_steps: Option<usize>,
}

/// The optimizer steps of the whole run and their time alone: the throughput a report states.
#[derive(Default)]
pub(super) struct Throughput {
    pub steps: usize,
    pub samples: usize,
    pub seconds: f64,
    /// Wall time of the passes over the training samples: the steps plus reading the batches
    /// (from memory, or from disk when streaming).
    pub wall_seconds: f64,
}

/// Cosine decay from the configured rate to `final_learning_rate_fraction` of it.
pub(crate) fn learning_rate(config: &TrainConfig, epoch: usize) -> f64 {
    let fraction = config.final_learning_rate_fraction;
    let progress = epoch as f64 / config.epochs.max(1) as f64;
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    config.learning_rate * (fraction + (1.0 - fraction) * cosine)
}

/// Trains `model` for epoch `epoch` (0-based) on the run's training samples and returns it with
/// how the pass ended; a loss that is no longer finite is an error.
///
/// # Shapes
/// Each batch: features [n, H, W, C] ([n, 1, 1, C] for averaged maps) and labels [n].
pub(super) fn train_epoch(
    run: &Run,
    model: Head,
    optimizer: &mut ModuleOptimizer,
    epoch: usize,
    stop: &Stop<'_>,
    throughput: &mut Throughput,
) -> Result<(Head, EpochEnd)> {
    let config = &run.config;
    let rate = learning_rate(config, epoch);
    // Dropout masks and the shuffle depend on (seed, epoch, batch) only: resumed runs match.
    let shuffle =
        incept_core::stable_hash(&[&config.seed.to_le_bytes(), b"shuffle", &epoch.to_le_bytes()]);
    let progress = incept_core::progress::bar(
        run.split.train.len() as u64,
        &format!("epoch {}/{}", epoch + 1, config.epochs),
        "samples",
    );
    let labels = &run.store.cache().labels;
    let dims = run.store.sample_dims();
    let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    let mut batch = 0u64;
    let mut slot = Some(model);
    let pass_started = Instant::now();
    run.store.batches(&run.split.train, config.batch_size, Some(shuffle), |indices, values| {
        if stop.interrupted.load(Ordering::SeqCst)
            || stop.max_steps.is_some_and(|max| throughput.steps >= max)
        {
            return Ok(false);
        }
        let step_started = Instant::now();
        let n = indices.len();
        let current = slot.take().ok_or_else(|| Error::Data("model lost".into()))?;
        let x = Tensor::<4>::from_data(
            TensorData::new(values.to_vec(), [n, dims[0], dims[1], dims[2]]),
            &run.device,
        );
        let targets: Vec<i64> = indices.iter().map(|&i| i64::from(labels[i])).collect();
        let dropout_seed = batch_seed(config.seed, b"dropout", epoch, batch);
        let mix = Mix::draw(config.mixup_alpha, batch_seed(config.seed, b"mixup", epoch, batch), n);
        batch += 1;
        let (stepped, batch_loss, batch_correct) =
            step(run, current, optimizer, rate, Batch { x, targets: &targets, dropout_seed, mix })?;
        slot = Some(stepped);
        correct += batch_correct;
        throughput.seconds += step_started.elapsed().as_secs_f64();
        throughput.samples += n;
        throughput.steps += 1;
        loss_sum += batch_loss * n as f64;
        seen += n;
        progress.inc(n as u64);
        Ok(true)
    })?;
    throughput.wall_seconds += pass_started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let model = slot.ok_or_else(|| Error::Data("model lost".into()))?;
    if stop.interrupted.load(Ordering::SeqCst) {
        return Ok((model, EpochEnd::Interrupted));
    }
    if stop.max_steps.is_some_and(|max| throughput.steps >= max) {
        return Ok((model, EpochEnd::StepLimit));
    }
    let loss = loss_sum / seen.max(1) as f64;
    if !loss.is_finite() {
        return Err(Error::Diverged { epoch: epoch + 1, loss });
    }
    let accuracy = correct as f64 / seen.max(1) as f64;
    Ok((model, EpochEnd::Finished(EpochTraining { loss, accuracy, learning_rate: rate })))
}

/// The seed of one batch's random draws of kind `kind` (dropout masks, mixup blends): it
/// depends on (seed, epoch, batch) only, so a resumed run draws as the uninterrupted one.
fn batch_seed(seed: u64, kind: &[u8], epoch: usize, batch: u64) -> u64 {
    incept_core::stable_hash(&[
        &seed.to_le_bytes(),
        kind,
        &epoch.to_le_bytes(),
        &batch.to_le_bytes(),
    ])
}

/// One training batch and how it is drawn on.
struct Batch<'a> {
    /// [n, H, W, C]
    x: Tensor<4>,
    /// [n]
    targets: &'a [i64],
    dropout_seed: u64,
    /// How the batch is blended with itself when mixup is on.
    mix: Option<Mix>,
}

/// One optimizer step at learning rate `rate` on a batch; returns the stepped model, the
/// batch's mean loss (over the ensemble's members) and how many of its samples the combined
/// logits classify right (under mixup: against each row's dominant label).
fn step(
    run: &Run,
    model: Head,
    optimizer: &mut ModuleOptimizer,
    rate: f64,
    batch: Batch<'_>,
) -> Result<(Head, f64, usize)> {
    let Batch { x, targets, dropout_seed, mix } = batch;
    let n = targets.len();
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets.to_vec(), [n]), &run.device);
    let (x, blend) = match &mix {
        Some(mix) => {
            let (blended, blend) = mix.blend(x, targets);
            (blended, Some(blend))
        }
        None => (x, None),
    };
    let member_logits = model.forward_train(x, run.config.head.pooling, dropout_seed);
    let members = member_logits.len();
    let member_loss = |logits: &Tensor<2>| match &blend {
        Some(blend) => blend.loss(&run.loss, logits.clone(), y.clone()),
        None => run.loss.forward(logits.clone(), y.clone()),
    };
    // Each member learns from its own loss: the sum keeps every member's gradient whole.
    let loss = member_logits
        .iter()
        .map(member_loss)
        .reduce(|a, b| a + b)
        .ok_or_else(|| Error::Data("a head without members".into()))?;
    let batch_loss = f64::from(loss.clone().into_scalar::<f32>()) / members as f64;
    let combined = crate::model::combine(member_logits.into_iter().map(|l| l.detach()).collect());
    // Under mixup each row counts against its dominant label.
    let dominant: Option<Vec<i64>> =
        mix.as_ref().map(|mix| (0..n).map(|row| mix.dominant_label(targets, row)).collect());
    let correct = count_correct(&combined.into_data(), dominant.as_deref().unwrap_or(targets))?;
    let gradients = GradientsParams::from_grads(loss.backward(), &model);
    Ok((optimizer.step(rate, model, gradients), batch_loss, correct))
}

/// How many rows of `logits` [n, classes] pick their target.
fn count_correct(logits: &TensorData, targets: &[i64]) -> Result<usize> {
    let values =
        logits.try_to_vec::<f32>().map_err(|e| Error::Data(format!("logits as f32: {e:?}")))?;
    let classes = values.len() / targets.len().max(1);
    Ok(values
        .chunks(classes.max(1))
        .zip(targets)
        .filter(|(row, target)| argmax(row) == **target as usize)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_runs_from_rate_to_fraction() {
        let mut config = TrainConfig::default_preset();
        config.epochs = 10;
        config.learning_rate = 1.0;
        config.final_learning_rate_fraction = 0.1;
        assert!((learning_rate(&config, 0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(&config, 5) - 0.55).abs() < 1e-12);
        assert!(learning_rate(&config, 9) > 0.1);
        config.final_learning_rate_fraction = 1.0;
        assert!((learning_rate(&config, 7) - 1.0).abs() < 1e-12);
    }
}
