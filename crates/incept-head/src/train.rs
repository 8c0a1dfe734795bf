//! The training loop and the run folder.
//!
//! # The run folder (a contract: `confusion`, `runs` and outside scripts read it)
//! - `config.toml`: the resolved [`TrainConfig`].
//! - `run.json`: classes, input shape, the cache it was trained on, progress ([`RunState`]).
//! - `best.bpk` (lowest validation loss) and `last.bpk`: weights (Burn's burnpack format);
//!   `optimizer.bin`: optimizer state for `--resume`.
//! - `metrics.csv`: epoch, train_loss, train_accuracy, validation_loss, validation_accuracy,
//!   seconds (one row per finished epoch).
//! - `metrics.json`: the best epoch's [`Metrics`] on the validation photos.
//! - `predictions.csv`: source path, label, predicted, one probability column per class.

use std::path::{Path, PathBuf};
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
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "config.toml";
pub const STATE_FILE: &str = "run.json";
pub const BEST_WEIGHTS: &str = "best.bpk";
pub const LAST_WEIGHTS: &str = "last.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
pub const METRICS_CSV: &str = "metrics.csv";
pub const METRICS_JSON: &str = "metrics.json";
pub const PREDICTIONS_CSV: &str = "predictions.csv";
const METRICS_CSV_HEADER: &str =
    "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,seconds\n";

/// Burn's CPU backends, chosen at run time (Burn 0.22 dispatches by device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn-ndarray (with OpenBLAS when built with the `blas` feature).
    Ndarray,
    /// Burn's pure-Rust `flex` backend: the fastest here (see `just bench-train`).
    #[default]
    Flex,
}

impl Backend {
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "ndarray" => Ok(Backend::Ndarray),
            "flex" => Ok(Backend::Flex),
            other => Err(Error::Config(format!("unknown backend {other:?}; use ndarray or flex"))),
        }
    }

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

/// What `run.json` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub classes: Vec<String>,
    /// [H, W, C] of the feature maps the head takes.
    pub input_shape: [usize; 3],
    pub cache: PathBuf,
    pub cache_model_sha256: String,
    /// The cache's content when the run started (absent in runs from before it was recorded).
    #[serde(default)]
    pub cache_stamp: Option<CacheStamp>,
    pub backend: Backend,
    pub completed_epochs: usize,
    pub best_epoch: usize,
    pub best_validation_loss: f64,
    pub best_validation_accuracy: f64,
    pub train_seconds: f64,
    pub finished: bool,
}

/// Tells one content of a cache file from another: re-extracting rewrites its creation time,
/// growing `--copies` adds samples. `incept runs` compares runs only within one content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStamp {
    pub created: Option<String>,
    pub samples: usize,
}

impl CacheStamp {
    pub fn of(cache: &Cache) -> Self {
        CacheStamp { created: cache.created.clone(), samples: cache.len() }
    }
}

/// One training run.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub cache: PathBuf,
    pub run_dir: PathBuf,
    pub config: TrainConfig,
    pub resume: bool,
    pub backend: Backend,
    /// Stop after this many optimizer steps (benchmarks); `None` trains the configured epochs.
    pub max_steps: Option<usize>,
    /// incept's fused optimizer ([`crate::optim`]) instead of Burn's (same rules; benchmarks).
    pub fused_optimizer: bool,
    /// Print the per-epoch summary lines on stderr.
    pub verbose: bool,
}

/// One finished epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub seconds: f64,
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
    pub seconds: f64,
}

/// Validation predictions: per photo, the averaged class probabilities.
struct Predictions {
    sources: Vec<String>,
    labels: Vec<usize>,
    probabilities: Vec<Vec<f64>>,
    loss: f64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
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
fn learning_rate(config: &TrainConfig, epoch: usize) -> f64 {
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
    let previous = if request.resume { Some(load_state(run_dir)?) } else { None };
    let config = match &previous {
        Some(_) => {
            let mut saved = TrainConfig::from_toml_file(&run_dir.join(CONFIG_FILE))?;
            // Only the epoch count may change when resuming (to train longer).
            saved.epochs = request.config.epochs.max(saved.epochs);
            saved
        }
        None => request.config.clone(),
    };
    config.validate()?;
    if previous.is_none() && run_dir.join(STATE_FILE).exists() {
        return Err(Error::RunExists { path: run_dir.clone() });
    }

    let cache = Cache::open(&request.cache)?;
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
    let cache_path = cache.path.clone();
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

    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    let device = request.backend.device().autodiff();
    let mut state = previous.clone().unwrap_or(RunState {
        classes: classes.clone(),
        input_shape: [shape.height, shape.width, shape.channels],
        cache: std::fs::canonicalize(&cache_path).unwrap_or(cache_path.clone()),
        cache_model_sha256: cache_sha,
        cache_stamp: Some(cache_stamp.clone()),
        backend: request.backend,
        completed_epochs: 0,
        best_epoch: 0,
        best_validation_loss: f64::INFINITY,
        best_validation_accuracy: 0.0,
        train_seconds: 0.0,
        finished: false,
    });
    if let Some(then) = state.cache_stamp.as_ref().filter(|then| **then != cache_stamp) {
        eprintln!(
            "warning: {} changed since this run started ({} samples then, {} now); the resumed epochs train on its new content",
            cache_path.display(),
            then.samples,
            cache_stamp.samples
        );
    }
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
    if previous.is_some() {
        let last = run_dir.join(LAST_WEIGHTS);
        model = model
            .try_load_file(&last)
            .map_err(|e| Error::WeightsDoNotFit { path: last, reason: e.to_string() })?;
        let optimizer_path = run_dir.join(OPTIMIZER_FILE);
        optim = optim
            .load(&optimizer_path)
            .map_err(|e| Error::Weights { path: optimizer_path, reason: e.to_string() })?;
        eprintln!("resuming {} after epoch {}", run_dir.display(), state.completed_epochs);
    } else {
        write_text(&run_dir.join(CONFIG_FILE), &config.to_toml())?;
        write_text(&run_dir.join(METRICS_CSV), METRICS_CSV_HEADER)?;
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
            correct += count_correct(&combined.into_data(), &targets);
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
        let predictions = predict_split(
            &model.valid(),
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
        // Checkpoint: weights, optimizer, then the state that points at them.
        save_weights(&model, &run_dir.join(LAST_WEIGHTS))?;
        let optimizer_path = run_dir.join(OPTIMIZER_FILE);
        optim
            .save(&optimizer_path)
            .map_err(|e| Error::Weights { path: optimizer_path, reason: e.to_string() })?;
        if predictions.loss < state.best_validation_loss {
            save_weights(&model, &run_dir.join(BEST_WEIGHTS))?;
            state.best_validation_loss = predictions.loss;
            state.best_validation_accuracy = validation_accuracy;
            state.best_epoch = epoch + 1;
            write_predictions(run_dir, &classes, &predictions)?;
            best_predictions = Some(predictions);
        }
        append_text(
            &run_dir.join(METRICS_CSV),
            &format!(
                "{},{:.6},{:.6},{:.6},{:.6},{:.3}\n",
                record.epoch,
                record.train_loss,
                record.train_accuracy,
                record.validation_loss,
                record.validation_accuracy,
                record.seconds
            ),
        )?;
        state.completed_epochs = epoch + 1;
        state.train_seconds += record.seconds;
        save_state(run_dir, &state)?;
        epochs.push(record);
    }

    // Metrics of the best epoch: recomputed from best.bpk when this session did not see it.
    let predictions = match best_predictions {
        Some(predictions) => predictions,
        // A benchmark that stopped before the first epoch ended: throughput only.
        None if request.max_steps.is_some() && !run_dir.join(BEST_WEIGHTS).exists() => {
            Predictions {
                sources: Vec::new(),
                labels: Vec::new(),
                probabilities: Vec::new(),
                loss: f64::NAN,
            }
        }
        None => {
            let best = run_dir.join(BEST_WEIGHTS);
            if !best.exists() {
                return Err(Error::NotARun {
                    path: run_dir.clone(),
                    reason: "no epoch finished".into(),
                });
            }
            let loaded = Head::new(&config.head, shape, classes.len(), &device.clone().inner())
                .try_load_file(&best)
                .map_err(|e| Error::Weights { path: best, reason: e.to_string() })?;
            predict_split(
                &loaded,
                &config,
                validation_store.as_ref().unwrap_or(&store),
                &split.validation,
            )?
        }
    };
    let metrics = metrics_of(&classes, &predictions)?;
    write_text(&run_dir.join(METRICS_JSON), &metrics.to_json())?;
    state.finished = state.completed_epochs >= config.epochs;
    save_state(run_dir, &state)?;
    Ok(TrainReport {
        epochs,
        best_epoch: state.best_epoch,
        metrics,
        interrupted: interrupted_now,
        train_samples: split.train.len(),
        validation_samples: split.validation.len(),
        streaming: store.is_streaming(),
        samples_per_second: stepped_samples as f64 / step_seconds.max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn count_correct(logits: &TensorData, targets: &[i64]) -> usize {
    let Ok(values) = logits.try_to_vec::<f32>() else { return 0 };
    let classes = values.len() / targets.len().max(1);
    values
        .chunks(classes.max(1))
        .zip(targets)
        .filter(|(row, target)| argmax(row) == **target as usize)
        .count()
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
    config: &TrainConfig,
    store: &Store,
    indices: &[usize],
) -> Result<Predictions> {
    let dims = store.sample_dims();
    let device = model_device(model);
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
                &device,
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
        loss: 0.0,
    };
    for photo in photos {
        predictions.loss -= photo.probabilities[photo.label].max(1e-12).ln();
        predictions.sources.push(cache.sources[photo.source as usize].clone());
        predictions.labels.push(photo.label);
        predictions.probabilities.push(photo.probabilities);
    }
    predictions.loss /= predictions.labels.len().max(1) as f64;
    Ok(predictions)
}

fn model_device(model: &Head) -> Device {
    model.devices().into_iter().next().unwrap_or_else(|| Backend::default().device())
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

fn metrics_of(classes: &[String], predictions: &Predictions) -> Result<Metrics> {
    let predicted: Vec<usize> = predictions.probabilities.iter().map(|p| argmax(p)).collect();
    Ok(Metrics::from_labels(classes, &predictions.labels, &predicted)?)
}

fn write_predictions(run_dir: &Path, classes: &[String], predictions: &Predictions) -> Result<()> {
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
    write_text(&run_dir.join(PREDICTIONS_CSV), &text)
}

fn save_weights(model: &Head, path: &Path) -> Result<()> {
    // Write beside, then rename: an interrupted save never leaves half a file.
    let partial = path.with_extension("bpk.partial");
    model
        .clone()
        .save_file(&partial)
        .map_err(|e| Error::Weights { path: path.to_path_buf(), reason: e.to_string() })?;
    std::fs::rename(&partial, path).map_err(io(path))
}

pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    incept_core::write_atomically(path, text.as_bytes())
        .map_err(|incept_core::Error::Io { path, source }| Error::Io { path, source })
}

fn append_text(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file =
        std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))
}

fn save_state(run_dir: &Path, state: &RunState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::Data(e.to_string()))?;
    write_text(&run_dir.join(STATE_FILE), &text)
}

pub fn load_state(run_dir: &Path) -> Result<RunState> {
    let path = run_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::NotARun {
        path: run_dir.to_path_buf(),
        reason: format!("{}: {e}", path.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::NotARun {
        path: run_dir.to_path_buf(),
        reason: format!("{}: {e}", path.display()),
    })
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
