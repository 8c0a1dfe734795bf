//! `run.json`: what the run is and how far it got; its commit point (see [`super`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use incept_cache::Cache;
use serde::{Deserialize, Serialize};

use super::{STATE_FILE, not_a_run, write_file};
use crate::backend::Backend;
use crate::cross_validation::CrossValidation;
use crate::rebalance::Select;
use crate::{Error, Result};

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
    /// `null` (infinite) until an epoch has finished.
    #[serde(deserialize_with = "null_is_infinite")]
    pub best_validation_loss: f64,
    /// `null` (NaN) in a refit, which validates on nothing.
    #[serde(deserialize_with = "null_is_nan")]
    pub best_validation_accuracy: f64,
    pub train_seconds: f64,
    pub finished: bool,
    /// Every finished epoch, in order (`metrics.csv` is written from these). Runs from before
    /// it was recorded read their rows from `metrics.csv`.
    #[serde(default)]
    pub epochs: Vec<EpochRecord>,
    /// The SHA-256 (lowercase hex) of each committed checkpoint file (`best.bpk`, `last.bpk`,
    /// `optimizer.bin`) by name, recorded in the commit that wrote it: a file damaged since is
    /// refused by its readers. Empty in runs from before it was recorded, whose files are read
    /// as they are.
    #[serde(default)]
    pub sha256: BTreeMap<String, String>,
    /// A cross-validation's folds and refit (`train-head --folds K`); absent for a run of one
    /// split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_validation: Option<CrossValidation>,
}

impl RunState {
    /// The state of a new run on `cache` (its canonical path) that no epoch has finished.
    pub(crate) fn new(cache: &Cache, canonical_cache: PathBuf, backend: Backend) -> Self {
        RunState {
            classes: cache.classes.clone(),
            input_shape: [cache.shape.height, cache.shape.width, cache.shape.channels],
            cache: canonical_cache,
            cache_model_sha256: cache.settings.model_sha256.clone(),
            cache_stamp: Some(CacheStamp::of(cache)),
            backend,
            completed_epochs: 0,
            best_epoch: 0,
            best_validation_loss: f64::INFINITY,
            best_validation_accuracy: 0.0,
            train_seconds: 0.0,
            finished: false,
            epochs: Vec::new(),
            sha256: BTreeMap::new(),
            cross_validation: None,
        }
    }

    /// Whether finished epoch `record` is the best so far by the figure `select` names (ties of
    /// balanced accuracy or macro-F1 go to the lower validation loss).
    pub(crate) fn improves_on_best(&self, record: &EpochRecord, select: Select) -> bool {
        let lower_loss = record.validation_loss < self.best_validation_loss;
        let figure = |r: &EpochRecord| match select {
            Select::Loss => None,
            Select::BalancedAccuracy => Some(r.validation_balanced_accuracy.unwrap_or(f64::NAN)),
            Select::MacroF1 => Some(r.validation_macro_f1.unwrap_or(f64::NAN)),
        };
        let best = self.epochs.iter().find(|r| r.epoch == self.best_epoch);
        match (figure(record), best.and_then(figure)) {
            (None, _) => lower_loss,
            (Some(_), None) => true,
            (Some(new), Some(best)) => new > best || (new == best && lower_loss),
        }
    }

    /// Whether early stopping ends the run: `patience` (> 0) epochs have finished since the best
    /// one.
    pub(crate) fn patience_exhausted(&self, patience: usize) -> bool {
        patience > 0 && self.completed_epochs >= self.best_epoch + patience
    }

    /// Counts finished epoch `record` (the best so far when `best`); the caller commits it.
    pub(crate) fn record_epoch(&mut self, record: EpochRecord, best: bool) {
        if best {
            self.best_validation_loss = record.validation_loss;
            self.best_validation_accuracy = record.validation_accuracy;
            self.best_epoch = record.epoch;
        }
        self.completed_epochs = record.epoch;
        self.train_seconds += record.seconds;
        self.epochs.push(record);
    }
}

/// JSON has no NaN: serde writes it as `null`, read back here as NaN (a refit's validation
/// figures: there is no validation).
fn null_is_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// JSON has no infinity: serde writes it as `null`, read back here as infinity.
fn null_is_infinite<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::INFINITY))
}

/// Tells one content of a cache file from another: re-extracting rewrites its creation time,
/// growing `--copies` adds samples. `incept runs` compares runs only within one content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStamp {
    pub created: Option<String>,
    pub samples: usize,
    /// The cache's `content_id` (new at every merge; absent in caches of earlier versions and in
    /// runs that recorded none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

impl CacheStamp {
    pub fn of(cache: &Cache) -> Self {
        CacheStamp {
            created: cache.created.clone(),
            samples: cache.len(),
            content_id: cache.content_id.clone(),
        }
    }
}

/// One finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// `null` (NaN) in a refit, which validates on nothing.
    #[serde(deserialize_with = "null_is_nan")]
    pub validation_loss: f64,
    #[serde(deserialize_with = "null_is_nan")]
    pub validation_accuracy: f64,
    /// Mean recall over the classes; absent in runs from before it was recorded.
    #[serde(default)]
    pub validation_balanced_accuracy: Option<f64>,
    /// Absent in runs from before it was recorded.
    #[serde(default)]
    pub validation_macro_f1: Option<f64>,
    pub seconds: f64,
}

pub fn load_state(run_dir: &Path) -> Result<RunState> {
    let path = run_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        not_a_run(run_dir, format!("{}: {e}; train it with `incept train-head`", path.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        not_a_run(
            run_dir,
            format!(
                "{}: {e}; the file is damaged: restore it, or train the run again in a new --run-dir",
                path.display()
            ),
        )
    })
}

pub(crate) fn save_state(run_dir: &Path, state: &RunState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::Data(e.to_string()))?;
    write_file(&run_dir.join(STATE_FILE), text.as_bytes())
}

/// Records whether the run has trained all `planned_epochs`, or stopped early after `patience`
/// epochs without a better one, in `run.json`: the last write of a training command.
pub(crate) fn finish(
    run_dir: &Path,
    state: &mut RunState,
    planned_epochs: usize,
    patience: usize,
) -> Result<()> {
    state.finished = state.completed_epochs >= planned_epochs || state.patience_exhausted(patience);
    save_state(run_dir, state)
}
