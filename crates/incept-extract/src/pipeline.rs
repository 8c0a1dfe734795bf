//! `incept extract`: decode + augment on rayon workers, inference on the calling thread, one
//! writer thread owning the cache; bounded channels between them keep memory bounded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use incept_cache::{CacheWriter, Dtype, Settings};

use crate::augment::Augmentation;
use crate::backbone::Device;
use crate::image_io::{DecodeOptions, INPUT_SIZE, PREPROCESSING};
use crate::scan::{ImageFile, scan};
use crate::{Error, Result};

mod load;
mod run;
mod views;

pub(crate) use load::ModelLoad;
use run::run_pipeline;
pub use views::network_views;

/// Everything `incept extract` needs; the CLI's flags map onto this.
#[derive(Clone, Debug)]
pub struct ExtractConfig {
    pub data_dir: PathBuf,
    pub output: PathBuf,
    pub model: PathBuf,
    /// The layer `model` ends at, recorded in the cache.
    pub layer: crate::backbone::Layer,
    /// Augmented copies per image (variants 1..=copies); 0 = originals only.
    pub copies: u32,
    pub augmentation: Augmentation,
    pub seed: u64,
    pub batch_size: usize,
    pub device: Device,
    pub dtype: Dtype,
    pub overwrite: bool,
    /// ONNX Runtime intra-op threads; 0 = all cores.
    pub threads: usize,
    /// Samples per crash-safe segment: the most a kill can lose.
    pub segment_samples: usize,
    /// Whether truncated or corrupt files are refused (the default) or decoded in part.
    pub decode: DecodeOptions,
    /// How new feature maps are compressed (a storage choice: the values do not change).
    pub compression: incept_cache::Compression,
}

/// What an extraction did, for the final summary line.
#[derive(Clone, Debug, Default)]
pub struct ExtractReport {
    pub images: usize,
    pub skipped: Vec<String>,
    pub samples_added: usize,
    pub samples_total: usize,
    pub interrupted: bool,
    pub provider: String,
    pub wall: Duration,
    /// Busy time of the decode + augment workers (summed over workers).
    pub decode: Duration,
    pub inference: Duration,
    pub write: Duration,
    pub bytes_per_sample: f64,
}

impl ExtractReport {
    pub fn samples_per_second(&self) -> f64 {
        self.samples_added as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// One image and the variants of it still to extract.
#[derive(Clone, Debug)]
struct Job {
    image: ImageFile,
    variants: Vec<u32>,
}

/// The settings stored in (and checked against) the cache.
pub fn settings_for(config: &ExtractConfig, model_sha256: String) -> Settings {
    settings_from(
        config.copies,
        &config.augmentation,
        config.seed,
        config.dtype,
        config.layer,
        model_sha256,
    )
}

/// The settings of a cache extracted with these choices.
pub(crate) fn settings_from(
    copies: u32,
    augmentation: &Augmentation,
    seed: u64,
    dtype: Dtype,
    layer: crate::backbone::Layer,
    model_sha256: String,
) -> Settings {
    Settings {
        model_sha256,
        input_size: INPUT_SIZE,
        preprocessing: PREPROCESSING.to_owned(),
        augmentation: if copies == 0 {
            "{\"enabled\":false}".to_owned()
        } else {
            augmentation.to_json()
        },
        seed,
        copies,
        dtype,
        augmentation_version: crate::augment::ALGORITHM_VERSION,
        layer: layer.name().to_owned(),
    }
}

/// Runs the extraction; `interrupted` (set by Ctrl-C) stops it cleanly, keeping what is done.
pub fn extract(config: &ExtractConfig, interrupted: &AtomicBool) -> Result<ExtractReport> {
    let started = Instant::now();
    if !config.data_dir.is_dir() {
        return Err(Error::DataMissing { path: config.data_dir.clone() });
    }
    config.augmentation.check().map_err(Error::Augmentation)?;
    // The model loads while it is hashed, the cache opened and the photos scanned.
    let model = ModelLoad::start(config);
    let model_sha256 = model_sha256(config)?;
    // The writer lock first: a second writer is refused before it scans anything.
    let mut writer =
        CacheWriter::open(&config.output, settings_for(config, model_sha256), config.overwrite)?;
    writer.set_compression(config.compression);
    writer.set_data_folder(&config.data_dir)?;
    let found = scan(&config.data_dir)?;
    for warning in &found.warnings {
        eprintln!("warning: {warning}");
    }
    if found.images.is_empty() {
        return Err(Error::NoImages { path: config.data_dir.clone() });
    }
    eprintln!("{} images in {} classes", found.images.len(), found.classes.len());
    extract_listed(config, writer, &found.images, started, interrupted, model)
}

/// The sha256 of the config's model, which must exist.
pub(crate) fn model_sha256(config: &ExtractConfig) -> Result<String> {
    if !config.model.is_file() {
        return Err(Error::ModelMissing { path: config.model.clone() });
    }
    Ok(incept_core::sha256_file(&config.model)?)
}

/// Extracts the samples of `images` that `writer`'s cache lacks with `model` (started loading by
/// the caller) and finishes the cache. Shared by `incept extract` (images from a scan) and a
/// shard of a plan (images from the plan).
pub(crate) fn extract_listed(
    config: &ExtractConfig,
    writer: CacheWriter,
    images: &[ImageFile],
    started: Instant,
    interrupted: &AtomicBool,
    model: ModelLoad,
) -> Result<ExtractReport> {
    extract_into(config, writer, images, started, interrupted, model).map_err(|error| match error {
        // What a full disk leaves: the committed segments, counted for the message.
        Error::Cache(incept_cache::Error::DiskFull { path }) => {
            Error::DiskFull { path, kept: incept_cache::rows_on_disk(&config.output) }
        }
        other => other,
    })
}

fn extract_into(
    config: &ExtractConfig,
    mut writer: CacheWriter,
    images: &[ImageFile],
    started: Instant,
    interrupted: &AtomicBool,
    model: ModelLoad,
) -> Result<ExtractReport> {
    let jobs: Vec<Job> = images
        .iter()
        .filter_map(|image| {
            let variants: Vec<u32> =
                (0..=config.copies).filter(|&v| !writer.is_done(&image.relative, v)).collect();
            (!variants.is_empty()).then(|| Job { image: image.clone(), variants })
        })
        .collect();
    let todo: usize = jobs.iter().map(|j| j.variants.len()).sum();
    let mut report = ExtractReport { images: images.len(), ..ExtractReport::default() };
    eprintln!("{} samples cached or pending, {todo} to extract", writer.done_count());
    if todo > 0 {
        run_pipeline(config, jobs, todo, &mut writer, &mut report, interrupted, model)?;
    }
    report.interrupted = interrupted.load(Ordering::SeqCst);
    if report.interrupted && config.overwrite && config.output.exists() {
        // Replacing now would swap the whole old cache for part of the new one.
        eprintln!(
            "{}: kept as it was; the {} samples extracted so far are kept, pending: run the same \
             command (with --overwrite) to continue",
            config.output.display(),
            writer.done_count()
        );
        report.wall = started.elapsed();
        return Ok(report);
    }
    let write_started = Instant::now();
    let summary = writer.finish()?;
    report.write += write_started.elapsed();
    report.samples_total = summary.total;
    report.wall = started.elapsed();
    if summary.total == 0 {
        return Err(Error::NothingExtracted {
            path: config.data_dir.clone(),
            skipped: report.skipped.len(),
        });
    }
    let cache = incept_cache::Cache::open(&config.output)?;
    report.bytes_per_sample = cache.stored_feature_bytes() as f64 / cache.len().max(1) as f64;
    Ok(report)
}
