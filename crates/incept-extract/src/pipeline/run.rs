//! The overlapped stages: decode + augment on rayon workers, inference, one writer thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use incept_cache::{CacheWriter, MapShape, Sample};
use ndarray::Array4;
use rayon::prelude::*;

use super::load::ModelLoad;
use super::views::prepare;
use super::{ExtractConfig, ExtractReport, Job};
use crate::image_io::INPUT_SIZE;
use crate::{Error, Result};

/// Batches in flight between stages (each way): bounds memory whatever the data size.
const QUEUE_DEPTH: usize = 2;

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

pub(super) fn run_pipeline(
    config: &ExtractConfig,
    jobs: Vec<Job>,
    todo: usize,
    writer: &mut CacheWriter,
    report: &mut ExtractReport,
    interrupted: &AtomicBool,
    model: ModelLoad,
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

        // Writer: the only owner of the cache. Each batch is compressed into the open segment as
        // it arrives; a segment is committed (crash-safe) every `segment_samples`.
        writer.set_segment_samples(config.segment_samples);
        let writer_thread = scope.spawn(move || -> Result<Duration> {
            let mut busy = Duration::ZERO;
            for (samples, map_shape) in sample_receiver {
                let started = Instant::now();
                writer.append(&samples, map_shape)?;
                busy += started.elapsed();
            }
            let started = Instant::now();
            writer.commit_segment()?;
            busy += started.elapsed();
            Ok(busy)
        });

        // Inference on this thread; the model finishes loading while the producer decodes the
        // first photos.
        let mut inference = Duration::ZERO;
        let mut produced = 0;
        let mut failure = None;
        let mut backbone = match model.wait() {
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
