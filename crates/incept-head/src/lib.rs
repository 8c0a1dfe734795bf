//! Stage 2 of incept: train classifier heads with Burn on cached feature maps, without ever
//! running the backbone, so many heads can be tried against one cache.
//!
//! - [`config`]: presets, TOML, validation of the training configuration.
//! - [`model`]: the SE + dropout + dense head.
//! - [`bilinear`]: second-order pooling and the projection it is fitted with.
//! - [`rebalance`]: class weights and logit adjustment for skewed collections; best-epoch choice.
//! - [`optim`]: fused SGD/Adam/AdamW updates for the CPU backends.
//! - [`data`]: the validation split by source photo; batches from memory or streamed from disk.
//! - [`backend`]: which of Burn's CPU backends trains and runs a head.
//! - [`train`]: the training loop.
//! - [`run_folder`]: the run folder's files and its crash-safe checkpoints.
//! - [`resume`]: what `--resume` may and may not change.
//! - [`runs`]: reading run folders back: trained heads for inference, listings.

use std::path::PathBuf;

mod backend;
mod bilinear;
mod compare;
mod config;
pub mod cross_validation;
mod data;
mod model;
mod optim;
mod rebalance;
mod resume;
// The run folder is a documented contract (docs/FORMATS.md) that tools read: public.
pub mod run_folder;
mod runs;
mod train;
mod values;

pub use backend::Backend;
pub use bilinear::{
    NORM_EPSILON as BILINEAR_NORM_EPSILON, Projection, pooled_len as bilinear_pooled_len,
};
pub use compare::{Accuracy, ComparedPair, ComparedRun, Comparison, View, compare_runs};
pub use config::{OptimizerKind, Pooling, TrainConfig};
pub use model::{Head, InputShape};
pub use rebalance::{Rebalance, SKEW_RATIO, SKEWED_DEFAULT, Select};
pub use runs::{CachePhoto, RunSummary, TrainedHead, list_runs};
pub use train::{
    OptimizerImplementation, TrainReport, TrainRequest, TrainingRate, train, training_rate,
};
pub use values::{DenseValues, HeadValues, MemberValues};

/// Errors of the head stage; each names its file and, where one exists, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cache(#[from] incept_cache::Error),
    #[error(transparent)]
    Report(#[from] incept_report::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "no space left on device writing {path}: the run keeps its last finished epoch; free \
         space and continue it with `incept train-head … --resume`"
    )]
    DiskFull { path: PathBuf },
    #[error(
        "{path}: streaming needs scratch files of {needed_mib} MiB beside the run folder, and \
         that disk has {free_mib} MiB free; free space there (a new run can instead take a \
         --run-dir on a larger disk, or a --memory-budget-mib above what the features need so \
         they are held in memory)"
    )]
    SpillNoSpace { path: PathBuf, needed_mib: u64, free_mib: u64 },
    #[error("configuration: {0}")]
    Config(String),
    #[error(
        "{path}: class {class:?} has no training photo; add photos of it or remove its folder and re-extract"
    )]
    EmptyClass { path: PathBuf, class: String },
    #[error(
        "{path}: classes differ from the training cache ({differences}); extract both from folders with the same class names"
    )]
    ClassesDiffer { path: PathBuf, differences: String },
    #[error(
        "{path}: sample {sample} ({source_path}) holds NaN or infinite features; re-extract it (delete the cache and run `incept extract` again)"
    )]
    NonFinite { path: PathBuf, sample: usize, source_path: String },
    #[error(
        "{path}: already holds a run; pass --resume to continue it or choose another --run-dir"
    )]
    RunExists { path: PathBuf },
    #[error(
        "{path} is being trained by another incept process ({owner}); wait for it to finish or stop it, then run again"
    )]
    RunLocked { path: PathBuf, owner: String },
    #[error("{path}: not a run folder of `incept train-head` ({reason})")]
    NotARun { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    /// A checkpoint file whose bytes are not the ones `run.json` recorded the SHA-256 of.
    #[error(
        "{path}: damaged (its SHA-256 differs from the one run.json recorded when it was written); {fix}"
    )]
    Damaged { path: PathBuf, fix: &'static str },
    #[error(
        "{path}: these weights do not fit the head that config.toml describes ({reason}); restore the run's config.toml if it was edited; a run made by an earlier version of incept must be trained again"
    )]
    WeightsDoNotFit { path: PathBuf, reason: String },
    #[error(
        "{path}: --resume continues the run's saved recipe, and {changes} would change it; drop them (or repeat the run's own values), or start a new run in another --run-dir"
    )]
    ResumeChanges { path: PathBuf, changes: String },
    #[error(
        "{path}: not the cache this run was trained on ({reason}); resume with that cache, or start a new run in another --run-dir"
    )]
    CacheChanged { path: PathBuf, reason: String },
    #[error("{path}: feature maps are {found}, the head was trained on {expected}")]
    ShapeMismatch { path: PathBuf, expected: String, found: String },
    #[error("{path}: class {class:?} is unknown to the head (it knows {known})")]
    UnknownClass { path: PathBuf, class: String, known: String },
    #[error(
        "{a} and {b} were not validated on the same photos: {reason}; compare runs validated on one split of one collection (the same --validation-split or --validation-cache, caches of the same photos)"
    )]
    NotComparable { a: PathBuf, b: PathBuf, reason: String },
    #[error(
        "{path}: a cross-validation of {folds} heads, none trained on every photo; train its recipe on every photo with `incept train-head CACHE --run-dir {path} --folds {folds} --refit --resume`, or use one fold's head ({path}/folds/fold-1)"
    )]
    NoRefit { path: PathBuf, folds: usize },
    #[error("data: {0}")]
    Data(String),
    #[error("training diverged at epoch {epoch}: the loss became {loss}; lower --learning-rate")]
    Diverged { epoch: usize, loss: f64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
