//! Classifying photos with the backbone and a trained head (`incept predict`): each batch of
//! photos is decoded into its views on the rayon pool, run through the backbone, and the head's
//! class probabilities are averaged over each photo's views.
//!
//! The head is a closure, so this crate needs no head crate: it gets feature maps and returns
//! class probabilities.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::Error;
use crate::augment::Augmentation;
use crate::backbone::Backbone;
use crate::image_io::{DecodeOptions, INPUT_SIZE};
use crate::pipeline::network_views;
use crate::scan::{image_files, relative_path};

/// A photo to classify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Photo {
    pub path: PathBuf,
    /// The key its augmented views are drawn with (see [`network_views`]): its path relative to
    /// the folder it was found in, made as a cache's `sources` are; a file given by itself is
    /// keyed by its name.
    pub key: String,
}

/// How each photo is seen: the views whose probabilities are averaged.
#[derive(Clone, Debug, PartialEq)]
pub struct Views {
    /// 0: the photo itself; k ≥ 1: its k-th augmented draw.
    pub variants: Vec<u32>,
    /// The augmentation and seed the draws follow (those of the cache the head was trained on,
    /// so that the views are the variants it was validated with).
    pub augmentation: Augmentation,
    pub seed: u64,
}

/// Everything [`classify`] needs besides the photos, the backbone and the head.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifyOptions {
    pub views: Views,
    /// Network inputs per backbone batch (photos × views); at least one photo a batch.
    pub batch_size: usize,
    pub decode: DecodeOptions,
}

/// What [`classify`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassifyReport {
    /// Photos whose probabilities were handed out.
    pub classified: usize,
    /// One line per photo that could not be read (`PATH: reason; skipped`), also printed as a
    /// warning when it happened.
    pub unreadable: Vec<String>,
}

/// One photo's network inputs, one per view, or why it could not be read.
///
/// # Shapes
/// Each tensor is [3 × S × S].
type PreparedViews = std::result::Result<Vec<Vec<f32>>, String>;

/// The photos to classify under `inputs` (files, or folders searched recursively as
/// [`image_files`] does), each keyed by its path relative to the input it was found under, and
/// warnings naming what was skipped.
pub fn photos_in(inputs: &[PathBuf]) -> (Vec<Photo>, Vec<String>) {
    let mut photos = Vec::new();
    let mut warnings = Vec::new();
    for input in inputs {
        let (found, skipped) = image_files(std::slice::from_ref(input));
        warnings.extend(skipped);
        for path in found {
            let key = match relative_path(input, &path) {
                Ok(relative) if !relative.is_empty() => relative,
                _ => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            photos.push(Photo { path, key });
        }
    }
    (photos, warnings)
}

/// Classifies `photos` in order, with a progress bar on stderr. Per batch, `head` takes the
/// backbone's feature maps and returns one row of class probabilities per map; `emit` gets the
/// batch's readable photos and each one's probabilities averaged over its views (called with
/// the progress bar hidden, so it may print). Unreadable photos are skipped with a warning.
///
/// # Shapes
/// `head(features, rows)`: features [rows × (H·W·C)], channels last → [rows][classes], rows =
/// photos × views, each photo's views together. `emit(paths, probabilities)`: [photos][classes].
pub fn classify<E: From<Error>>(
    photos: &[Photo],
    backbone: &mut Backbone,
    options: &ClassifyOptions,
    mut head: impl FnMut(&[f32], usize) -> std::result::Result<Vec<Vec<f64>>, E>,
    mut emit: impl FnMut(&[&Path], &[Vec<f64>]),
) -> std::result::Result<ClassifyReport, E> {
    let progress = incept_core::progress::bar(photos.len() as u64, "predict", "images");
    let side = INPUT_SIZE as usize;
    let views = &options.views;
    let view_count = views.variants.len().max(1);
    let photos_per_batch = (options.batch_size.max(1) / view_count).max(1);
    let mut report = ClassifyReport::default();
    for chunk in photos.chunks(photos_per_batch) {
        let prepared: Vec<(&Path, PreparedViews)> = chunk
            .par_iter()
            .map(|photo| {
                let tensors = network_views(
                    &photo.path,
                    &photo.key,
                    &views.variants,
                    &views.augmentation,
                    views.seed,
                    options.decode,
                );
                (photo.path.as_path(), tensors)
            })
            .collect();
        let mut batch = Vec::new();
        let mut names = Vec::new();
        for (path, result) in prepared {
            match result {
                Ok(tensors) => {
                    for tensor in tensors {
                        batch.extend_from_slice(&tensor);
                    }
                    names.push(path);
                }
                Err(reason) => {
                    let message = format!("{}: {reason}; skipped", path.display());
                    progress.suspend(|| eprintln!("warning: {message}"));
                    report.unreadable.push(message);
                }
            }
        }
        progress.inc(chunk.len() as u64);
        if names.is_empty() {
            continue;
        }
        let rows = names.len() * view_count;
        // [photos × views, 3, S, S] → [photos × views, H, W, C] → [photos × views, classes]
        let inputs = ndarray::ArrayView4::from_shape((rows, 3, side, side), &batch)
            .map_err(|e| Error::Pipeline(format!("network inputs: {e}")))?;
        let features = backbone.run(inputs)?;
        let values = features.as_slice().ok_or_else(|| Error::Pipeline("feature layout".into()))?;
        let per_view = head(values, rows)?;
        let probabilities = mean_per_photo(&per_view, view_count);
        progress.suspend(|| emit(&names, &probabilities));
        report.classified += names.len();
    }
    progress.finish_and_clear();
    Ok(report)
}

/// The mean of each photo's `views` consecutive rows.
///
/// # Shapes
/// `per_view`: [photos × views][classes] → [photos][classes].
fn mean_per_photo(per_view: &[Vec<f64>], views: usize) -> Vec<Vec<f64>> {
    per_view
        .chunks(views)
        .map(|views| {
            let mut mean = vec![0.0; views[0].len()];
            for view in views {
                for (sum, p) in mean.iter_mut().zip(view) {
                    *sum += p / views.len() as f64;
                }
            }
            mean
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_averaged_per_photo() {
        let per_view = vec![vec![1.0, 0.0], vec![0.5, 0.5], vec![0.0, 1.0], vec![0.0, 1.0]];
        assert_eq!(mean_per_photo(&per_view, 2), vec![vec![0.75, 0.25], vec![0.0, 1.0]]);
        assert_eq!(mean_per_photo(&per_view[..1], 1), vec![vec![1.0, 0.0]]);
    }
}
