//! `incept extract`: decode + augment on rayon workers, inference on the calling thread, one
//! writer thread owning the cache; bounded channels between them keep memory bounded.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use incept_cache::{CacheWriter, Dtype, MapShape, Sample, Settings};
use ndarray::Array4;
use rayon::prelude::*;
use std::sync::mpsc::sync_channel;

use crate::augment::Augmentation;
use crate::backbone::{Backbone, Device};
use crate::image_io::{
    DecodeOptions, INPUT_SIZE, PREPROCESSING, load_for_network, to_network_input,
};
use crate::scan::{ImageFile, scan};
use crate::{Error, Result};

/// Batches in flight between stages (each way): bounds memory whatever the data size.
const QUEUE_DEPTH: usize = 2;

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

/// Where a sample comes from: (relative source path, class, variant).
type SampleKey = (String, String, u32);
/// A prepared network input and its key.
type Prepared = (Vec<f32>, SampleKey);
/// One image's prepared variants (tensor, variant), or why it was skipped.
type PreparedImage = std::result::Result<Vec<(Vec<f32>, u32)>, String>;

/// A batch of prepared network inputs.
struct Batch {
    /// # Shapes
    /// [n, 3, S, S]
    inputs: Array4<f32>,
    samples: Vec<SampleKey>,
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
    let model_sha256 = model_sha256(config)?;
    // The writer lock first: a second writer is refused before it scans anything.
    let mut writer =
        CacheWriter::open(&config.output, settings_for(config, model_sha256), config.overwrite)?;
    writer.set_compression(config.compression);
    let found = scan(&config.data_dir)?;
    for warning in &found.warnings {
        eprintln!("warning: {warning}");
    }
    if found.images.is_empty() {
        return Err(Error::NoImages { path: config.data_dir.clone() });
    }
    eprintln!("{} images in {} classes", found.images.len(), found.classes.len());
    extract_listed(config, writer, &found.images, started, interrupted)
}

/// The sha256 of the config's model, which must exist.
pub(crate) fn model_sha256(config: &ExtractConfig) -> Result<String> {
    if !config.model.is_file() {
        return Err(Error::ModelMissing { path: config.model.clone() });
    }
    Ok(incept_core::sha256_file(&config.model)?)
}

/// Extracts the samples of `images` that `writer`'s cache lacks and finishes the cache. Shared by
/// `incept extract` (images from a scan) and a shard of a plan (images from the plan).
pub(crate) fn extract_listed(
    config: &ExtractConfig,
    mut writer: CacheWriter,
    images: &[ImageFile],
    started: Instant,
    interrupted: &AtomicBool,
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
        run_pipeline(config, jobs, todo, &mut writer, &mut report, interrupted)?;
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

fn run_pipeline(
    config: &ExtractConfig,
    jobs: Vec<Job>,
    todo: usize,
    writer: &mut CacheWriter,
    report: &mut ExtractReport,
    interrupted: &AtomicBool,
) -> Result<()> {
    let batch_size = config.batch_size.max(1);
    let side = INPUT_SIZE as usize;
    let progress = incept_core::progress::bar(todo as u64, "extract", "samples");
    let (batch_sender, batch_receiver) = sync_channel::<Batch>(QUEUE_DEPTH);
    let (sample_sender, sample_receiver) = sync_channel::<(Vec<Sample>, MapShape)>(QUEUE_DEPTH);

    std::thread::scope(|scope| -> Result<()> {
        // Producer: decode + augment on the rayon pool, one group of images per batch.
        let producer_progress = progress.clone();
        let producer = scope.spawn(move || {
            let progress = producer_progress;
            let mut skipped = Vec::new();
            let mut busy = Duration::ZERO;
            let mut pending: Vec<Prepared> = Vec::new();
            let images_per_group = batch_size.div_ceil(config.copies as usize + 1).max(1);
            let send = |pending: &mut Vec<Prepared>, all: bool| -> bool {
                while pending.len() >= batch_size || (all && !pending.is_empty()) {
                    let take = pending.len().min(batch_size);
                    let chunk: Vec<_> = pending.drain(..take).collect();
                    let mut inputs = Array4::<f32>::zeros((take, 3, side, side));
                    let mut samples = Vec::with_capacity(take);
                    for (mut slot, (tensor, meta)) in inputs.outer_iter_mut().zip(chunk) {
                        // A fresh standard-layout array: each sample is one contiguous run.
                        slot.as_slice_mut()
                            .expect("invariant: rows of a new C-order array are contiguous")
                            .copy_from_slice(&tensor);
                        samples.push(meta);
                    }
                    if batch_sender.send(Batch { inputs, samples }).is_err() {
                        return false;
                    }
                }
                true
            };
            for group in jobs.chunks(images_per_group) {
                if interrupted.load(Ordering::SeqCst) {
                    break;
                }
                let prepared: Vec<(PreparedImage, Duration)> = group
                    .par_iter()
                    .map(|job| {
                        let started = Instant::now();
                        let result = prepare(job, config);
                        (result, started.elapsed())
                    })
                    .collect();
                for (job, (result, took)) in group.iter().zip(prepared) {
                    busy += took;
                    match result {
                        Ok(tensors) => {
                            for (tensor, variant) in tensors {
                                pending.push((
                                    tensor,
                                    (job.image.relative.clone(), job.image.class.clone(), variant),
                                ));
                            }
                        }
                        Err(reason) => {
                            let message =
                                format!("{}: {reason}; skipped", job.image.path.display());
                            progress.suspend(|| eprintln!("warning: {message}"));
                            progress.inc(job.variants.len() as u64);
                            skipped.push(message);
                        }
                    }
                }
                if !send(&mut pending, false) {
                    break;
                }
            }
            send(&mut pending, true);
            (skipped, busy)
        });

        // Writer: the only owner of the cache; one crash-safe segment per `segment_samples`.
        let writer_thread = scope.spawn(move || -> Result<Duration> {
            let mut busy = Duration::ZERO;
            let mut buffer: Vec<Sample> = Vec::new();
            let mut shape = None;
            for (samples, map_shape) in sample_receiver {
                shape = Some(map_shape);
                buffer.extend(samples);
                if buffer.len() >= config.segment_samples.max(1) {
                    let started = Instant::now();
                    writer.write_segment(&buffer, map_shape)?;
                    busy += started.elapsed();
                    buffer.clear();
                }
            }
            if let (Some(map_shape), false) = (shape, buffer.is_empty()) {
                let started = Instant::now();
                writer.write_segment(&buffer, map_shape)?;
                busy += started.elapsed();
            }
            Ok(busy)
        });

        // Inference on this thread; the model loads while the producer decodes the first photos.
        let mut inference = Duration::ZERO;
        let mut produced = 0;
        let mut failure = None;
        let loaded = Backbone::load(&config.model, config.device, config.threads)
            .and_then(|backbone| backbone.check_layer(config.layer).map(|()| backbone));
        let mut backbone = match loaded {
            Ok(backbone) => Some(backbone),
            Err(error) => {
                failure = Some(error);
                None
            }
        };
        if let Some(backbone) = &backbone {
            report.provider = backbone.provider.clone();
        }
        // Without a model, no batch is taken: dropping the receiver stops the producer.
        let batches = backbone.is_some().then_some(batch_receiver).into_iter().flatten();
        for batch in batches {
            let Some(backbone) = backbone.as_mut() else { break };
            let started = Instant::now();
            let output = match backbone.run(batch.inputs.view()) {
                Ok(output) => output,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            inference += started.elapsed();
            let (_, height, width, channels) = output.dim();
            let shape = MapShape { height, width, channels };
            let samples: Vec<Sample> = output
                .outer_iter()
                .zip(batch.samples)
                .map(|(features, (source, class, variant))| Sample {
                    source,
                    class,
                    variant,
                    features: features.iter().copied().collect(),
                })
                .collect();
            progress.inc(samples.len() as u64);
            produced += samples.len();
            if sample_sender.send((samples, shape)).is_err() {
                break;
            }
        }
        drop(sample_sender);
        progress.finish_and_clear();
        let (skipped, decode) =
            producer.join().map_err(|_| Error::Pipeline("decode worker panicked".into()))?;
        let write =
            writer_thread.join().map_err(|_| Error::Pipeline("writer panicked".into()))??;
        if let Some(error) = failure {
            return Err(error);
        }
        report.skipped = skipped;
        report.decode = decode;
        report.inference = inference;
        report.write = write;
        report.samples_added = produced;
        Ok(())
    })
}

/// Decodes one image and prepares each wanted variant.
///
/// # Shapes
/// Each tensor is [3 × S × S], planar RGB in [-1, 1].
fn prepare(job: &Job, config: &ExtractConfig) -> std::result::Result<Vec<(Vec<f32>, u32)>, String> {
    let tensors = network_views(
        &job.image.path,
        &job.image.relative,
        &job.variants,
        &config.augmentation,
        config.seed,
        config.decode,
    )?;
    Ok(tensors.into_iter().zip(job.variants.iter().copied()).collect())
}

/// The network inputs of one photo's variants, exactly as extraction makes them: variant 0 is the
/// photo itself, variant k ≥ 1 its k-th augmented draw, which depends on `seed`, `relative` (the
/// photo's path relative to its data folder) and k alone. `incept predict --tta` uses it too.
///
/// # Shapes
/// Each tensor is [3 × S × S], planar RGB in [-1, 1].
pub fn network_views(
    path: &std::path::Path,
    relative: &str,
    variants: &[u32],
    augmentation: &Augmentation,
    seed: u64,
    decode: DecodeOptions,
) -> std::result::Result<Vec<Vec<f32>>, String> {
    let image = load_for_network(path, decode)?;
    let (width, height) = image.dimensions();
    let plane = 3 * (width * height) as usize;
    Ok(variants
        .iter()
        .map(|&variant| {
            let mut tensor = vec![0.0f32; plane];
            if variant == 0 {
                to_network_input(&image, &mut tensor);
            } else {
                augmentation
                    .draw(seed, relative, variant, height, width)
                    .apply(&image, &mut tensor);
            }
            tensor
        })
        .collect())
}
