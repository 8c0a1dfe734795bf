//! The command line as clap sees it: every subcommand's arguments with their help text. `main`
//! dispatches on [`Command`]; the command modules turn these into the libraries' configs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use incept_cache::{Compression, Dtype};
use incept_extract::{Augmentation, Device, Layer};
use incept_head::{Backend, OptimizerKind, Pooling, Rebalance, Select};

use crate::{compare, export, report, suspects};

/// Transfer learning from a frozen InceptionV3: cache its feature maps once, train many heads.
#[derive(Debug, Parser)]
#[command(name = "incept", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode, augment and run InceptionV3 over <class>/<image> folders; cache feature maps in HDF5.
    Extract(ExtractArgs),
    /// Train a classifier head (SE + dropout + dense) on a feature cache.
    TrainHead(TrainArgs),
    /// List the runs trained from one cache (or in one folder) side by side.
    Runs(RunsArgs),
    /// Confusion matrix and per-class metrics of a trained head.
    Confusion(ConfusionArgs),
    /// Runs validated on the same photos compared photo by photo: the difference in accuracy
    /// with a paired 95 % interval and the exact McNemar test, with TTA and single view.
    Compare(compare::CompareArgs),
    /// Photos whose label is probably wrong: confident learning on a run's predictions (every
    /// photo for a cross-validation), the least likely label first.
    Suspects(suspects::SuspectsArgs),
    /// Classify photos end to end with a trained head.
    Predict(PredictArgs),
    /// A self-contained HTML page about a trained head: figures, confusion matrix, training
    /// curves and thumbnails of the photos behind its mistakes.
    Report(report::ReportArgs),
    /// Plan a sharded extraction for a batch engine (Slurm, Kubernetes, AWS Batch).
    Plan(PlanArgs),
    /// Which shards of a plan are done, partial or missing (missing ones in array syntax).
    Status(StatusArgs),
    /// Merge the finished shards of a plan into one cache.
    Merge(MergeArgs),
    /// Write a run's backbone and head as one ONNX classifier: pixels in, probabilities out.
    Export(export::ExportArgs),
    /// Check every stored byte of a cache against its checksum; with --repair, make the damaged
    /// rows again from their photos.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The feature cache to check.
    pub(crate) cache: PathBuf,
    /// Make the damaged rows again from their photos (with the cache's model and settings) and
    /// replace the damaged pieces; the old cache stays whole until the repaired one is in place.
    #[arg(long)]
    pub(crate) repair: bool,
    /// The data folder of the photos [default: the one the cache records].
    #[arg(long, requires = "repair")]
    pub(crate) data: Option<PathBuf>,
    /// The ONNX backbone the cache was made with [default: the converted model whose sha256 the
    /// cache records].
    #[arg(long, requires = "repair")]
    pub(crate) model: Option<PathBuf>,
    /// Drop the rows of photos that are gone instead of refusing to repair.
    #[arg(long, requires = "repair")]
    pub(crate) drop_missing: bool,
    /// Images per inference batch.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// cpu, cuda, cuda:N, or auto (CUDA if it registers, else CPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub(crate) device: Device,
    /// ONNX Runtime threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Decode truncated JPEGs as far as they go (as extraction did, if it was given this).
    #[arg(long)]
    pub(crate) allow_truncated: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExtractArgs {
    /// Folder holding one sub-folder of images per class.
    #[arg(required_unless_present = "plan")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The HDF5 cache to create or extend.
    #[arg(short, long, required_unless_present = "plan")]
    pub(crate) output: Option<PathBuf>,
    /// Run one shard of a plan made by `incept plan` (its settings are the plan's).
    #[arg(long, value_name = "PLAN_DIR", requires = "shard", conflicts_with_all = [
        "data_dir", "output", "overwrite", "copies", "no_augment", "seed", "layer", "model", "dtype",
        "rotation_range", "width_shift_range", "height_shift_range", "shear_range", "zoom_range",
        "no_horizontal_flip", "vertical_flip", "channel_shift_range", "brightness_range",
    ])]
    pub(crate) plan: Option<PathBuf>,
    /// The shard to run (0-based), or `auto`: from SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX
    /// (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long, requires = "plan", value_name = "I|auto")]
    pub(crate) shard: Option<ShardArg>,
    /// Added to the engine's index with `--shard auto` (only), for plans larger than one job
    /// array.
    #[arg(long, default_value_t = 0, requires = "shard")]
    pub(crate) shard_offset: usize,
    /// Replace an existing cache made with other settings.
    #[arg(long)]
    pub(crate) overwrite: bool,
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
    #[command(flatten)]
    pub(crate) machine: MachineArgs,
}

/// Which shard: a number or `auto`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ShardArg {
    Index(usize),
    Auto,
}

impl std::str::FromStr for ShardArg {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "auto" {
            return Ok(ShardArg::Auto);
        }
        text.parse()
            .map(ShardArg::Index)
            .map_err(|_| format!("{text:?}: expected a number or auto"))
    }
}

/// The augmentation defaults: the blog post's Keras `ImageDataGenerator` settings.
const KERAS: Augmentation = Augmentation::KERAS;

/// What decides the cached values (recorded in the cache, or in a plan).
#[derive(Debug, Args)]
pub(crate) struct SettingsArgs {
    /// Augmented copies per image (variants 1..=K; variant 0 is the original).
    #[arg(long, default_value_t = 2)]
    pub(crate) copies: u32,
    /// Store only the unaugmented images (same as --copies 0).
    #[arg(long)]
    pub(crate) no_augment: bool,
    /// Seed of the augmentation draws.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// The backbone layer to cache: mixed_10 (Keras' no-top output), or one, two or three
    /// blocks earlier (mixed_9, mixed_8, mixed_7: what `just demo` caches; docs/HEADS.md).
    #[arg(long, value_enum, default_value = "mixed_10")]
    pub(crate) layer: Layer,
    /// The ONNX backbone [default: the file INCEPT_MODEL names, else the --layer's model under
    /// incept's models/]; with another model, say with --layer which layer it ends at (a model
    /// converted by incept that says otherwise is refused).
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Element type of the stored feature maps.
    #[arg(long, value_enum, default_value = "f32")]
    pub(crate) dtype: Dtype,
    /// Rotation range, degrees (uniform in ±this).
    #[arg(long, default_value_t = KERAS.rotation_range_degrees)]
    pub(crate) rotation_range: f64,
    /// Horizontal shift range, fraction of the width (uniform in ±this).
    #[arg(long, default_value_t = KERAS.width_shift_fraction)]
    pub(crate) width_shift_range: f64,
    /// Vertical shift range, fraction of the height (uniform in ±this).
    #[arg(long, default_value_t = KERAS.height_shift_fraction)]
    pub(crate) height_shift_range: f64,
    /// Shear range, degrees (Keras' unit; uniform in ±this).
    #[arg(long, default_value_t = KERAS.shear_range_degrees)]
    pub(crate) shear_range: f64,
    /// Zoom range, factor: zx, zy uniform in [1 - this, 1 + this]; > 1 zooms out.
    #[arg(long, default_value_t = incept_extract::KERAS_ZOOM_RANGE)]
    pub(crate) zoom_range: f64,
    /// Do not mirror images left-right (by default, with probability 1/2).
    #[arg(long)]
    pub(crate) no_horizontal_flip: bool,
    /// Also mirror images top-bottom, with probability 1/2 (Keras' `vertical_flip`; off by
    /// default, as in the blog post). A cache records it: it is one of the cache's settings.
    #[arg(long)]
    pub(crate) vertical_flip: bool,
    /// Keras' `channel_shift_range`, pixel values of 0-255: one shift drawn in ±this is added
    /// to every channel, clipped to the image's own range (off by default, as in the blog post).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) channel_shift_range: f64,
    /// Keras' `brightness_range` LOW,HIGH: a brightness factor drawn in it, applied as tf.keras
    /// does (PIL's Brightness on the 8-bit image); off by default, as in the blog post.
    #[arg(long, value_name = "LOW,HIGH", value_delimiter = ',')]
    pub(crate) brightness_range: Option<Vec<f64>>,
}

/// How this machine runs the extraction (never recorded: any worker may differ).
#[derive(Debug, Args)]
pub(crate) struct MachineArgs {
    /// Images per inference batch.
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// cpu, cuda, cuda:N, or auto (CUDA if it registers, else CPU).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub(crate) device: Device,
    /// ONNX Runtime threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Decode truncated JPEGs as far as they go (PIL's LOAD_TRUNCATED_IMAGES) instead of
    /// skipping them.
    #[arg(long)]
    pub(crate) allow_truncated: bool,
    /// Compression of the new feature maps: lzf (faster extraction) or deflate (about 15 %
    /// smaller); h5py reads both, and one cache may hold pieces of each.
    #[arg(long, value_enum, default_value = "lzf")]
    pub(crate) compression: Compression,
    /// Samples per crash-safe segment (the most an interruption can lose).
    #[arg(long, default_value_t = incept_cache::DEFAULT_SEGMENT_SAMPLES, hide = true)]
    pub(crate) segment_samples: usize,
}

impl MachineArgs {
    /// Planning runs nothing: any machine options do.
    pub(crate) fn default_for_plan() -> Self {
        MachineArgs {
            batch_size: 16,
            device: Device::Cpu,
            threads: 0,
            allow_truncated: false,
            compression: Compression::Lzf,
            segment_samples: incept_cache::DEFAULT_SEGMENT_SAMPLES,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Folder holding one sub-folder of images per class; listed once, here.
    pub(crate) data_dir: PathBuf,
    /// The plan folder: plan.json now, the shards and their markers later.
    #[arg(short, long, value_name = "PLAN_DIR")]
    pub(crate) output: PathBuf,
    /// Number of shards (array tasks); shard i is a fixed, contiguous range of the sorted photos.
    #[arg(long)]
    pub(crate) shards: usize,
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The plan folder made by `incept plan`.
    pub(crate) plan_dir: PathBuf,
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: PredictFormatArg,
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// The plan folder made by `incept plan`, every shard done.
    pub(crate) plan_dir: PathBuf,
    /// The cache to write.
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    /// Write one self-contained file instead of an index over the shards' files.
    #[arg(long)]
    pub(crate) copy: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// The feature cache made by `incept extract`.
    pub(crate) cache: PathBuf,
    /// Folder for this run's config, weights, metrics and predictions.
    #[arg(long)]
    pub(crate) run_dir: PathBuf,
    /// TOML file with any of the options below; flags override it.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Start from a preset: `default` (global average pooling, any cache), `bilinear`
    /// (second-order pooling, the most accurate on amid5; `just demo` uses it) or `blog` (the
    /// post's).
    #[arg(long, value_enum)]
    pub(crate) preset: Option<PresetArg>,
    /// Passes over the training photos.
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Samples per optimizer step.
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    #[arg(long, value_enum)]
    pub(crate) optimizer: Option<OptimizerKind>,
    /// Peak learning rate (cosine-decayed to a fraction of it over the run).
    #[arg(long)]
    pub(crate) learning_rate: Option<f64>,
    /// SGD's momentum.
    #[arg(long)]
    pub(crate) momentum: Option<f64>,
    /// Decoupled weight decay (AdamW) or L2 (SGD, Adam).
    #[arg(long)]
    pub(crate) weight_decay: Option<f64>,
    /// Seed of the weights, the split's shuffling and the dropout masks.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Fraction of source photos held out for validation (split by photo, stable).
    #[arg(long)]
    pub(crate) validation_split: Option<f64>,
    /// Cross-validation: K heads in one run folder, each validated on a different K-th of the
    /// photos (by photo, stratified by class); their pooled predictions judge every photo once.
    /// `confusion`, `report`, `compare` and `runs` read the pooled figures.
    #[arg(long, value_name = "K")]
    pub(crate) folds: Option<usize>,
    /// After the folds, train the recipe on every photo for the folds' median best epoch count:
    /// the head `predict` and `export` use (they refuse a cross-validation without it).
    #[arg(long)]
    pub(crate) refit: bool,
    /// How the loss counters skewed classes: auto (balanced from 10:1 between the largest and
    /// smallest class, else none; the choice is announced and saved), none, balanced (each class
    /// weighs the same), sqrt (1/√n per class) or logit-adjusted (Menon et al. 2021).
    #[arg(long, value_enum)]
    pub(crate) rebalance: Option<Rebalance>,
    /// Which validation figure picks the best epoch: loss (default), balanced-accuracy or
    /// macro-f1.
    #[arg(long, value_enum)]
    pub(crate) select: Option<Select>,
    /// Early stopping: end the run once N epochs have passed without a better one (by
    /// --select). The learning-rate schedule still spans --epochs, so the best epoch is the one
    /// a full run would keep whenever it comes within N epochs of the previous best. 0 (the
    /// default) trains every epoch; with --resume, a new N continues a run that stopped.
    #[arg(long, value_name = "N")]
    pub(crate) patience: Option<usize>,
    /// A separate cache to validate on instead of a split.
    #[arg(long)]
    pub(crate) validation_cache: Option<PathBuf>,
    /// Drop the Squeeze-and-Excitation block.
    #[arg(long)]
    pub(crate) no_se: bool,
    /// How the map becomes a vector: flatten (every position), gap (global average), avgmax
    /// (average and max side by side) or bilinear (second-order pooling; needs --no-se, or
    /// --preset bilinear).
    #[arg(long, value_enum)]
    pub(crate) pooling: Option<Pooling>,
    /// Train K heads side by side and average their softmax outputs.
    #[arg(long, value_name = "K")]
    pub(crate) ensemble: Option<usize>,
    /// Average predictions over all variants of each validation photo (the default preset does).
    #[arg(long, conflicts_with = "no_tta")]
    pub(crate) tta: bool,
    /// Validate on variant 0 of each photo only.
    #[arg(long)]
    pub(crate) no_tta: bool,
    /// Continue an interrupted run from its last finished epoch.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Most memory, in MiB, used to hold the cache in memory; larger caches are streamed.
    #[arg(long)]
    pub(crate) memory_budget_mib: Option<usize>,
    /// Burn CPU backend (default flex, the fastest here; ndarray needs a build with
    /// `--features ndarray`; a resumed run keeps its own).
    #[arg(long, value_enum)]
    pub(crate) backend: Option<Backend>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PresetArg {
    /// SE, global average pooling, three dense layers: works on any cache (docs/HEADS.md).
    Default,
    /// The original blog post's recipe (its three bugs fixed).
    Blog,
    /// The default recipe on second-order (bilinear) pooling, without SE, one dense layer: the
    /// most accurate on amid5 (docs/HEADS.md).
    Bilinear,
}

impl PresetArg {
    /// The preset's name in a TOML file's `preset` key.
    pub(crate) fn name(self) -> &'static str {
        match self {
            PresetArg::Default => "default",
            PresetArg::Blog => "blog",
            PresetArg::Bilinear => "bilinear",
        }
    }
}

/// `cpu`, `cuda`, `cuda:N` or `auto`, for clap.
fn parse_device(text: &str) -> Result<Device, String> {
    Device::parse(text).ok_or_else(|| format!("{text:?}: use cpu, cuda, cuda:N or auto"))
}

#[derive(Debug, Args)]
pub(crate) struct RunsArgs {
    /// A cache (lists runs made from it under ./runs) or a folder of runs.
    pub(crate) target: PathBuf,
    /// Where to look for runs when TARGET is a cache.
    #[arg(long, default_value = "runs")]
    pub(crate) runs_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ConfusionArgs {
    /// The run folder made by `incept train-head`.
    pub(crate) run_dir: PathBuf,
    /// Evaluate the head on this cache instead of the run's validation predictions.
    #[arg(long)]
    pub(crate) cache: Option<PathBuf>,
    /// Average over all variants of each photo (with --cache).
    #[arg(long)]
    pub(crate) tta: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: FormatArg,
    /// Also draw the matrix as a heatmap (.png or .svg).
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum PredictFormatArg {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct PredictArgs {
    /// The run folder made by `incept train-head`.
    pub(crate) run_dir: PathBuf,
    /// Images or folders of images.
    #[arg(required = true)]
    pub(crate) inputs: Vec<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub(crate) top_k: usize,
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: PredictFormatArg,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub(crate) device: Device,
    /// The ONNX backbone [default: the model under models/ that the head's cache was made with].
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    #[arg(long, default_value_t = 16)]
    pub(crate) batch_size: usize,
    /// Decode truncated JPEGs as far as they go instead of skipping them.
    #[arg(long)]
    pub(crate) allow_truncated: bool,
    /// Average the head over the photo and K augmented views drawn as the head's cache drew its
    /// variants (its augmentation and seed; a photo's path relative to the folder given is its
    /// key, as in the cache): the figure a run reports "with TTA". 0: the photo alone.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub(crate) tta: u32,
    /// Answer `uncertain` (still listing the top classes) for a photo whose calibrated top
    /// probability is below P; the report's accuracy–coverage table suggests P for an accuracy.
    #[arg(long, value_name = "P", value_parser = parse_confidence)]
    pub(crate) min_confidence: Option<f64>,
}

/// A probability threshold in (0, 1].
pub(crate) fn parse_confidence(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value <= 1.0 {
        Ok(value)
    } else {
        Err(format!("{value} is not a probability in (0, 1] (e.g. 0.8)"))
    }
}
