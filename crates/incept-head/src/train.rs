//! The training loop. What it writes, and how a kill at any moment is survived, is described
//! in [`crate::run_folder`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig,
};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use incept_cache::Cache;
use incept_report::{Metrics, csv_field};
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, TrainConfig};
use crate::data::{
    Split, Store, empty_classes, mean_by_photo, split_by_source, validation_samples,
};
use crate::model::{Head, InputShape};
use crate::optim::{Fused, Rule};
use crate::run_folder::{BEST_WEIGHTS, BestEpoch, Checkpoint, LAST_WEIGHTS, STATE_FILE, io};
pub use crate::run_folder::{CacheStamp, EpochRecord, RunState, load_state};
use crate::{Error, Result};

/// Burn's CPU backends, chosen at run time (Burn 0.22 dispatches by device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// burn-ndarray (with OpenBLAS when built with the `blas` feature).
    Ndarray,
    /// Burn's pure-Rust `flex` backend: the fastest here (see `just bench-train`).
    #[default]
    Flex,
}

impl Backend {
    // burn-ndarray is deprecated upstream in favour of flex; it stays selectable because the
    // user named it, and `just bench-train` compares the two.
    #[allow(deprecated)]
    pub fn device(self) -> Device {
        match self {
            Backend::Ndarray => Device::ndarray(),
            Backend::Flex => Device::flex(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Ndarray if cfg!(feature = "blas") => "ndarray+openblas",
            Backend::Ndarray => "ndarray",
            Backend::Flex => "flex",
        }
    }
}

/// One training run.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub cache: PathBuf,
    pub run_dir: PathBuf,
    pub config: TrainConfig,
    /// Continue the run in `run_dir`: `config` must be its saved recipe, except for a larger
    /// `epochs` (see [`resume_config`]).
    pub resume: bool,
    /// `None`: flex for a new run, the run's own backend when resuming.
    pub backend: Option<Backend>,
    /// Stop after this many optimizer steps (benchmarks); `None` trains the configured epochs.
    pub max_steps: Option<usize>,
    /// incept's fused optimizer ([`crate::optim`]) instead of Burn's (same rules; benchmarks).
    pub fused_optimizer: bool,
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

/// Validation predictions: per photo, the averaged class probabilities.
struct Predictions {
    sources: Vec<String>,
    labels: Vec<usize>,
    probabilities: Vec<Vec<f64>>,
    /// Per photo, the probabilities of the photo alone (variant 0), when it was validated.
    single_view: Vec<Option<Vec<f64>>>,
    loss: f64,
}

fn optimizer(config: &TrainConfig, fused: bool) -> ModuleOptimizer {
    if fused {
        let rule = match config.optimizer {
            OptimizerKind::Sgd => Rule::Sgd { momentum: config.momentum as f32 },
            OptimizerKind::Adam => Rule::Adam,
            OptimizerKind::Adamw => Rule::AdamW,
        };
        return Fused::new(rule, config.weight_decay as f32).into();
    }
    let decay = (config.weight_decay > 0.0)
        .then_some(WeightDecayConfig { penalty: config.weight_decay as f32 });
    match config.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((config.momentum > 0.0).then(|| {
                // No dampening: the momentum of Keras and PyTorch.
                MomentumConfig::new().with_momentum(config.momentum).with_dampening(0.0)
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Adamw => {
            AdamWConfig::new().with_weight_decay(config.weight_decay as f32).init()
        }
    }
}

/// Cosine decay from the configured rate to `final_learning_rate_fraction` of it.
pub(crate) fn learning_rate(config: &TrainConfig, epoch: usize) -> f64 {
    let fraction = config.final_learning_rate_fraction;
    let progress = epoch as f64 / config.epochs.max(1) as f64;
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    config.learning_rate * (fraction + (1.0 - fraction) * cosine)
}

fn classes_must_match(training: &Cache, other: &Cache) -> Result<()> {
    if training.classes == other.classes {
        return Ok(());
    }
    let missing: Vec<&String> =
        training.classes.iter().filter(|c| !other.classes.contains(c)).collect();
    let extra: Vec<&String> =
        other.classes.iter().filter(|c| !training.classes.contains(c)).collect();
    Err(Error::ClassesDiffer {
        path: other.path.clone(),
        differences: format!("missing {missing:?}, extra {extra:?}"),
    })
}

/// Trains a head as `request` says; Ctrl-C (`interrupted`) stops after saving the last
/// finished epoch, and `--resume` continues from it.
pub fn train(request: &TrainRequest, interrupted: &AtomicBool) -> Result<TrainReport> {
    let started = Instant::now();
    let run_dir = &request.run_dir;
    // One writer per run folder; then everything is checked before anything is written: a
    // refused run leaves its folder as it was.
    let _lock = crate::run_folder::lock(run_dir)?;
    let previous = if request.resume { Some(load_state(run_dir)?) } else { None };
    if previous.is_none() && run_dir.join(STATE_FILE).exists() {
        return Err(Error::RunExists { path: run_dir.clone() });
    }
    let (config, extension) = match &previous {
        Some(state) => crate::resume::resume_config(run_dir, state, &request.config)?,
        None => (request.config.clone(), None),
    };
    config.validate()?;
    let backend = match (&previous, request.backend) {
        (Some(state), Some(wanted)) if wanted != state.backend => {
            return Err(Error::ResumeChanges {
                path: run_dir.clone(),
                changes: format!(
                    "--backend (run has {}, this asks {})",
                    state.backend.name(),
                    wanted.name()
                ),
            });
        }
        (Some(state), _) => state.backend,
        (None, wanted) => wanted.unwrap_or_default(),
    };

    let cache = Cache::open(&request.cache)?;
    if let Some(state) = &previous {
        crate::resume::check_same_cache(state, &cache)?;
    }
    let (split, validation_cache) = match &config.validation_cache {
        Some(path) => {
            let other = Cache::open(path)?;
            classes_must_match(&cache, &other)?;
            let split = Split {
                train: (0..cache.len()).collect(),
                validation: validation_samples(&other, config.tta),
            };
            (split, Some(other))
        }
        None => (split_by_source(&cache, config.validation_split, config.tta), None),
    };
    let classes = cache.classes.clone();
    if let Some(&class) = empty_classes(&cache, &split.train, classes.len()).first() {
        return Err(Error::EmptyClass { path: cache.path.clone(), class: classes[class].clone() });
    }
    {
        let validation_source = validation_cache.as_ref().unwrap_or(&cache);
        for class in empty_classes(validation_source, &split.validation, classes.len()) {
            eprintln!(
                "warning: {}: no validation photo of class {:?}; its recall will read 0 (raise --validation-split or add photos)",
                validation_source.path.display(),
                classes[class]
            );
        }
    }
    if split.validation.is_empty() {
        return Err(Error::Config(
            "the validation split holds no photo; raise --validation-split".into(),
        ));
    }
    let shape = InputShape {
        height: cache.shape.height,
        width: cache.shape.width,
        channels: cache.shape.channels,
    };
    let budget = config.memory_budget_mib.saturating_mul(1 << 20);
    let cache_path = std::fs::canonicalize(&cache.path).map_err(io(&cache.path))?;
    let cache_sha = cache.settings.model_sha256.clone();
    let cache_stamp = CacheStamp::of(&cache);
    // Global-average heads average first: they train from the averaged maps.
    let average_positions = config.head.pooling == crate::Pooling::Gap;
    let store = Store::open(cache, budget, average_positions)?;
    let validation_store = match validation_cache {
        Some(other) => Some(Store::open(other, budget, average_positions)?),
        None => None,
    };
    if store.is_streaming() {
        eprintln!(
            "cache larger than the memory budget ({} MiB): streaming it from disk",
            config.memory_budget_mib
        );
    }

    let device = backend.device().autodiff();
    let mut state = previous.clone().unwrap_or(RunState {
        classes: classes.clone(),
        input_shape: [shape.height, shape.width, shape.channels],
        cache: cache_path,
        cache_model_sha256: cache_sha,
        cache_stamp: Some(cache_stamp),
        backend,
        completed_epochs: 0,
        best_epoch: 0,
        best_validation_loss: f64::INFINITY,
        best_validation_accuracy: 0.0,
        train_seconds: 0.0,
        finished: false,
        epochs: Vec::new(),
    });
    if state.classes != classes || state.input_shape != [shape.height, shape.width, shape.channels]
    {
        return Err(Error::NotARun {
            path: run_dir.clone(),
            reason: "it was trained on a cache with other classes or shapes".into(),
        });
    }
    device.seed(config.seed);
    let mut model = Head::new(&config.head, shape, classes.len(), &device);
    let mut optim = optimizer(&config, request.fused_optimizer);
    match &previous {
        Some(_) => {
            if state.completed_epochs > 0 {
                model = crate::run_folder::load_weights(model, run_dir, LAST_WEIGHTS, &state)?;
                optim = crate::run_folder::load_optimizer(optim, run_dir, &state)?;
                if state.epochs.is_empty() {
                    state.epochs = crate::run_folder::records_from_metrics_csv(
                        run_dir,
                        state.completed_epochs,
                    )?;
                }
            }
            if let Some(extension) = &extension {
                crate::resume::record_extension(run_dir, &config)?;
                state.finished = false;
                crate::run_folder::save_state(run_dir, &state)?;
                eprintln!("{extension}");
            }
            crate::run_folder::recover(run_dir, &state)?;
            eprintln!("resuming {} after epoch {}", run_dir.display(), state.completed_epochs);
        }
        None => crate::run_folder::start(run_dir, &config, &state)?,
    }

    let loss_function = CrossEntropyLossConfig::new()
        .with_smoothing((config.label_smoothing > 0.0).then_some(config.label_smoothing as f32))
        .init(&device);
    let labels = store.cache().labels.clone();
    let dims = store.sample_dims();
    let mut epochs = Vec::new();
    let mut steps = 0usize;
    let mut step_seconds = 0.0f64;
    let mut stepped_samples = 0usize;
    let mut interrupted_now = false;
    let mut best_predictions = None;

    for epoch in state.completed_epochs..config.epochs {
        let epoch_started = Instant::now();
        let rate = learning_rate(&config, epoch);
        // Dropout masks and the shuffle depend on (seed, epoch, batch) only: resumed runs match.
        let shuffle = incept_core::stable_hash(&[
            &config.seed.to_le_bytes(),
            b"shuffle",
            &epoch.to_le_bytes(),
        ]);
        let progress = incept_core::progress::bar(
            split.train.len() as u64,
            &format!("epoch {}/{}", epoch + 1, config.epochs),
            "samples",
        );
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut batch = 0u64;
        let mut slot = Some(model);
        store.batches(&split.train, config.batch_size, Some(shuffle), |indices, values| {
            if interrupted.load(Ordering::SeqCst)
                || request.max_steps.is_some_and(|max| steps >= max)
            {
                return Ok(false);
            }
            let step_started = Instant::now();
            let n = indices.len();
            let current = slot.take().ok_or_else(|| Error::Data("model lost".into()))?;
            let x = Tensor::<4>::from_data(
                TensorData::new(values.to_vec(), [n, dims[0], dims[1], dims[2]]),
                &device,
            );
            let targets: Vec<i64> = indices.iter().map(|&i| i64::from(labels[i])).collect();
            let y = Tensor::<1, Int>::from_data(TensorData::new(targets.clone(), [n]), &device);
            let dropout_seed = incept_core::stable_hash(&[
                &config.seed.to_le_bytes(),
                b"dropout",
                &epoch.to_le_bytes(),
                &batch.to_le_bytes(),
            ]);
            batch += 1;
            let member_logits = current.forward_train(x, config.head.pooling, dropout_seed);
            let members = member_logits.len();
            // Each member learns from its own loss: the sum keeps every member's gradient whole.
            let loss = member_logits
                .iter()
                .map(|logits| loss_function.forward(logits.clone(), y.clone()))
                .reduce(|a, b| a + b)
                .ok_or_else(|| Error::Data("a head without members".into()))?;
            let batch_loss = f64::from(loss.clone().into_scalar::<f32>()) / members as f64;
            let combined =
                crate::model::combine(member_logits.into_iter().map(|l| l.detach()).collect());
            correct += count_correct(&combined.into_data(), &targets)?;
            let gradients = GradientsParams::from_grads(loss.backward(), &current);
            slot = Some(optim.step(rate, current, gradients));
            step_seconds += step_started.elapsed().as_secs_f64();
            stepped_samples += n;
            steps += 1;
            loss_sum += batch_loss * n as f64;
            seen += n;
            progress.inc(n as u64);
            Ok(true)
        })?;
        progress.finish_and_clear();
        model = slot.ok_or_else(|| Error::Data("model lost".into()))?;
        if interrupted.load(Ordering::SeqCst) {
            interrupted_now = true;
            break;
        }
        if request.max_steps.is_some_and(|max| steps >= max) {
            break;
        }
        let train_loss = loss_sum / seen.max(1) as f64;
        if !train_loss.is_finite() {
            return Err(Error::Diverged { epoch: epoch + 1, loss: train_loss });
        }
        let validation_device = device.clone().inner();
        let predictions = predict_split(
            &model.valid(),
            &validation_device,
            &config,
            validation_store.as_ref().unwrap_or(&store),
            &split.validation,
        )?;
        let validation_accuracy = accuracy(&predictions);
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            validation_loss: predictions.loss,
            validation_accuracy,
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        if request.verbose {
            eprintln!(
                "epoch {:>3}/{}: train loss {:.4} acc {:.3} | validation loss {:.4} acc {:.3} | lr {:.2e} | {:.1} s",
                record.epoch,
                config.epochs,
                record.train_loss,
                record.train_accuracy,
                record.validation_loss,
                record.validation_accuracy,
                rate,
                record.seconds
            );
        }
        // Checkpoint: one commit of weights, optimizer state, metrics and (if best) predictions.
        let last_weights = crate::run_folder::weights_bytes(&model)?;
        let improved = predictions.loss < state.best_validation_loss;
        let best = if improved {
            state.best_validation_loss = predictions.loss;
            state.best_validation_accuracy = validation_accuracy;
            state.best_epoch = epoch + 1;
            Some(BestEpoch {
                weights: last_weights.clone(),
                predictions_csv: predictions_csv(&classes, &predictions),
                metrics_json: metrics_of(&classes, &predictions, config.tta)?.to_json(),
            })
        } else {
            None
        };
        state.completed_epochs = epoch + 1;
        state.train_seconds += record.seconds;
        state.epochs.push(record.clone());
        let checkpoint = Checkpoint {
            last_weights,
            optimizer: crate::run_folder::optimizer_bytes(&optim)?,
            best,
        };
        crate::run_folder::commit(run_dir, &state, checkpoint)?;
        if improved {
            best_predictions = Some(predictions);
        }
        epochs.push(record);
    }

    // Metrics of the best epoch, as committed with it; recomputed from best.bpk only for a run
    // of an earlier version, whose checkpoints did not hold them.
    let validation_device = device.clone().inner();
    let committed = match &best_predictions {
        Some(_) => None,
        None => crate::run_folder::read_metrics(run_dir, &state)?,
    };
    let recompute = best_predictions.is_none() && committed.is_none();
    let predictions = match best_predictions {
        Some(predictions) => Some(predictions),
        // A benchmark that stopped before the first epoch ended: throughput only.
        None if request.max_steps.is_some() && state.best_epoch == 0 => None,
        None if committed.is_some() => None,
        None => {
            if state.best_epoch == 0 {
                return Err(Error::NotARun {
                    path: run_dir.clone(),
                    reason: "no epoch finished".into(),
                });
            }
            let loaded = crate::run_folder::load_weights(
                Head::new(&config.head, shape, classes.len(), &validation_device),
                run_dir,
                BEST_WEIGHTS,
                &state,
            )?;
            Some(predict_split(
                &loaded,
                &validation_device,
                &config,
                validation_store.as_ref().unwrap_or(&store),
                &split.validation,
            )?)
        }
    };
    let metrics = match (&predictions, committed) {
        (_, Some(committed)) => committed,
        (Some(predictions), None) => {
            let metrics = metrics_of(&classes, predictions, config.tta)?;
            if recompute {
                crate::run_folder::write_metrics_json(run_dir, &metrics)?;
            }
            metrics
        }
        (None, None) => Metrics::from_labels(&classes, &[], &[])?,
    };
    state.finished = state.completed_epochs >= config.epochs;
    crate::run_folder::save_state(run_dir, &state)?;
    Ok(TrainReport {
        epochs,
        best_epoch: state.best_epoch,
        metrics,
        interrupted: interrupted_now,
        train_samples: split.train.len(),
        validation_samples: split.validation.len(),
        streaming: store.is_streaming(),
        samples_per_second: stepped_samples as f64 / step_seconds.max(1e-9),
        backend,
        seconds: started.elapsed().as_secs_f64(),
    })
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

/// The accuracy of each photo's own view (`rows`, one per photo, with `labels`); `None` when a
/// photo's own view was not among the samples.
pub(crate) fn single_view_accuracy<'a>(
    rows: impl Iterator<Item = Option<&'a Vec<f64>>>,
    labels: &[usize],
) -> Option<f64> {
    let predicted: Vec<usize> = rows.map(|row| row.map(|r| argmax(r))).collect::<Option<_>>()?;
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Some(correct as f64 / predicted.len().max(1) as f64)
}

pub(crate) fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = index;
        }
    }
    best
}

/// Class probabilities of `indices`, averaged per source photo.
///
/// # Shapes
/// Each batch: features [n, H, W, C] → probabilities [n, classes].
fn predict_split(
    model: &Head,
    device: &Device,
    config: &TrainConfig,
    store: &Store,
    indices: &[usize],
) -> Result<Predictions> {
    let dims = store.sample_dims();
    let cache = store.cache();
    let classes = cache.classes.len();
    let photos = mean_by_photo(
        store,
        indices,
        config.batch_size.max(64),
        |l| l as usize,
        |values, n| {
            let x = Tensor::<4>::from_data(
                TensorData::new(values.to_vec(), [n, dims[0], dims[1], dims[2]]),
                device,
            );
            let log_probabilities =
                log_softmax(model.forward(x, config.head.pooling), 1).into_data();
            let rows =
                log_probabilities.try_to_vec::<f32>().map_err(|e| Error::Data(format!("{e:?}")))?;
            Ok(rows
                .chunks(classes)
                .map(|r| r.iter().map(|&lp| f64::from(lp).exp()).collect())
                .collect())
        },
    )?;
    let mut predictions = Predictions {
        sources: Vec::new(),
        labels: Vec::new(),
        probabilities: Vec::new(),
        single_view: Vec::new(),
        loss: 0.0,
    };
    for photo in photos {
        predictions.loss -= photo.probabilities[photo.label].max(1e-12).ln();
        predictions.sources.push(cache.sources[photo.source as usize].clone());
        predictions.labels.push(photo.label);
        predictions.probabilities.push(photo.probabilities);
        predictions.single_view.push(photo.single_view);
    }
    predictions.loss /= predictions.labels.len().max(1) as f64;
    Ok(predictions)
}

fn accuracy(predictions: &Predictions) -> f64 {
    let correct = predictions
        .probabilities
        .iter()
        .zip(&predictions.labels)
        .filter(|(p, label)| argmax(p) == **label)
        .count();
    correct as f64 / predictions.labels.len().max(1) as f64
}

/// The metrics of `predictions`; with test-time augmentation, also the single-view accuracy
/// (each photo alone), when every photo's own view was validated.
fn metrics_of(classes: &[String], predictions: &Predictions, tta: bool) -> Result<Metrics> {
    let predicted: Vec<usize> = predictions.probabilities.iter().map(|p| argmax(p)).collect();
    let mut metrics = Metrics::from_labels(classes, &predictions.labels, &predicted)?;
    if tta {
        metrics.single_view_accuracy = single_view_accuracy(
            predictions.single_view.iter().map(Option::as_ref),
            &predictions.labels,
        );
    }
    Ok(metrics)
}

/// `predictions.csv`: source, label, predicted, one probability column per class.
fn predictions_csv(classes: &[String], predictions: &Predictions) -> String {
    let mut text = String::from("source,label,predicted");
    for class in classes {
        text.push(',');
        text.push_str(&csv_field(&format!("p_{class}")));
    }
    text.push('\n');
    for ((source, &label), probabilities) in
        predictions.sources.iter().zip(&predictions.labels).zip(&predictions.probabilities)
    {
        text.push_str(&format!(
            "{},{},{}",
            csv_field(source),
            csv_field(&classes[label]),
            csv_field(&classes[argmax(probabilities)])
        ));
        for p in probabilities {
            text.push_str(&format!(",{p:.6}"));
        }
        text.push('\n');
    }
    text
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

    #[test]
    fn argmax_picks_the_first_largest() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
    }
}
