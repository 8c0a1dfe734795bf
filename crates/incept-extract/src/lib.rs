//! Stage 1 of incept: decode photos, augment them (Keras `ImageDataGenerator` semantics), run the
//! InceptionV3 backbone through ONNX Runtime and cache the feature maps ([`incept_cache`]).
//!
//! - [`image_io`]: decode, orientation, RGB, resize, scale to [-1, 1].
//! - [`augment`]: seeded random affine transforms.
//! - [`backbone`]: the ONNX Runtime session and how its shared library is found.
//! - [`pipeline`]: the overlapped decode → inference → write pipeline behind `incept extract`.
//! - [`classify`]: photos through the backbone and a head's closure, behind `incept predict`.
//! - [`scan`]: walking `<class>/<image>` folders.
//! - [`plan`] and [`shard`]: sharded extraction on batch engines (Slurm, Kubernetes, AWS Batch):
//!   a plan made once, shards run anywhere, their status and their merge.

use std::path::PathBuf;

mod augment;
mod backbone;
mod classify;
mod image_io;
mod pipeline;
mod plan;
mod remake;
mod scan;
mod shard;

pub use augment::{ALGORITHM_VERSION, Augmentation, KERAS_ZOOM_RANGE};
pub use backbone::{Backbone, DEFAULT_MODEL, Device, Layer, model_from_environment};
pub use classify::{ClassifyOptions, ClassifyReport, Photo, Views, classify, photos_in};
pub use image_io::{
    DecodeOptions, INPUT_SIZE, PIXEL_OFFSET, PIXEL_SCALE, PREPROCESSING, load_for_network,
    resize_bilinear, to_network_input,
};
pub use pipeline::{ExtractConfig, ExtractReport, extract};
pub use plan::{PLAN_FILE, Plan, PlanOutcome, array_syntax};
pub use remake::{Remade, RemakeConfig, remake_rows};
pub use scan::scan;
pub use shard::{
    ShardIndex, ShardOutcome, ShardState, merge as merge_shards, run_shard, status as shard_status,
};

/// Errors of the extraction stage. Each names the file it is about and, where one exists, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("model not found: {path}; build it with `just model` (part of `just setup`)")]
    ModelMissing { path: PathBuf },
    #[error(
        "the {layer} model was not found (looked for {looked}); run `{convert}` in incept's folder, set INCEPT_MODEL to the model file, or pass --model"
    )]
    ModelNotFound { layer: &'static str, looked: String, convert: &'static str },
    #[error(
        "ONNX Runtime library not found (looked for {looked}); run `just setup` to install it, \
         or point ORT_DYLIB_PATH at libonnxruntime.so"
    )]
    RuntimeMissing { looked: String },
    #[error(
        "ONNX Runtime library {path} could not be loaded: {reason}; run `just setup` to reinstall it"
    )]
    RuntimeUnloadable { path: PathBuf, reason: String },
    #[error("{path}: ONNX Runtime: {reason}")]
    Runtime { path: PathBuf, reason: String },
    #[error(
        "the CUDA execution provider could not be registered ({reason}); run `just setup-gpu` and \
         put the CUDA 13 and cuDNN 9 libraries on LD_LIBRARY_PATH (see README), or use --device cpu"
    )]
    CudaUnavailable { reason: String },
    #[error("{path}: model input/output is not [N, 3, S, S] → [N, C, H, W] float32: {reason}")]
    ModelInterface { path: PathBuf, reason: String },
    #[error(
        "{path} ends at {declared} (its description says so), but the cache would record {given}; pass --layer {declared}"
    )]
    LayerMismatch { path: PathBuf, declared: &'static str, given: &'static str },
    #[error(
        "data folder not found: {path}; pass a folder holding one sub-folder of images per class"
    )]
    DataMissing { path: PathBuf },
    #[error("{path}: no class folders with images; expected <class>/<image> sub-folders")]
    NoImages { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Cache(#[from] incept_cache::Error),
    #[error(transparent)]
    Core(#[from] incept_core::Error),
    #[error(
        "nothing could be extracted from {path}: all {skipped} images were skipped (see warnings above)"
    )]
    NothingExtracted { path: PathBuf, skipped: usize },
    #[error(
        "no space left on device writing {path}: {kept} samples kept; free space and run the same \
         command again to continue"
    )]
    DiskFull { path: PathBuf, kept: usize },
    #[error("cannot make the damaged rows again: {reason}")]
    CannotRemake { reason: String },
    #[error("internal pipeline error: {0}")]
    Pipeline(String),
    #[error("augmentation: {0}; pass ranges of at least 0, each LOW,HIGH with LOW <= HIGH")]
    Augmentation(String),
    #[error("{path}: {reason}")]
    PlanInvalid { path: PathBuf, reason: String },
    #[error("{path} holds another plan: {differences}")]
    PlanDiffers { path: PathBuf, differences: String },
    #[error("{0}")]
    ShardIndex(String),
    #[error(
        "{path}: {reason}; remove it with the shard's .h5 and .h5.parts/, and run the shard again"
    )]
    ForeignMarker { path: PathBuf, reason: String },
    #[error(
        "{marker} says the shard is done but {shard} is missing; remove the marker and the \
         shard's .h5.parts/, and run the shard again"
    )]
    MarkerWithoutShard { marker: PathBuf, shard: PathBuf },
    #[error(
        "{plan}: not every shard is done; run shards {missing} (e.g. sbatch --array={missing}), \
         then merge again{problems}",
        problems = if problems.is_empty() { String::new() } else { format!("\n  {problems}") }
    )]
    ShardsIncomplete { plan: PathBuf, missing: String, problems: String },
}

impl Error {
    /// Whether retrying the same command cannot help (exit status 2 for batch engines): a bad
    /// or foreign plan, an index out of range, a marker of another plan, a folder it may not
    /// write. Everything else (a crash, a full disk, a lock) may pass on a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::PlanInvalid { .. }
            | Error::PlanDiffers { .. }
            | Error::ShardIndex(_)
            | Error::ForeignMarker { .. }
            | Error::MarkerWithoutShard { .. }
            | Error::ShardsIncomplete { .. }
            | Error::ModelMissing { .. }
            | Error::ModelNotFound { .. }
            | Error::LayerMismatch { .. }
            | Error::DataMissing { .. } => true,
            Error::Io { source, .. }
            | Error::Core(incept_core::Error::Io { source, .. })
            | Error::Cache(incept_cache::Error::Io { source, .. })
            | Error::Cache(incept_cache::Error::Core(incept_core::Error::Io { source, .. })) => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                )
            }
            // The files on disk contradict the plan: the same command fails the same way.
            Error::Cache(
                incept_cache::Error::SettingsDiffer { .. }
                | incept_cache::Error::ShapeDiffers { .. }
                | incept_cache::Error::Duplicate { .. }
                | incept_cache::Error::NotACache { .. }
                | incept_cache::Error::WouldOrphan { .. },
            ) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
