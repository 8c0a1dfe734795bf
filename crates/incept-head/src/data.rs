//! Which samples train and which validate, and feeding them in batches from memory or, for
//! caches larger than the memory budget, streamed from disk through a shuffle buffer.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use incept_cache::{Cache, MapShape};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::bilinear::{Projection, pooled_len};
use crate::{Error, Result};

mod spill;
mod split;

use spill::Spill;

pub use split::{
    Split, class_photo_counts, class_sample_counts, empty_classes, photos_per_class, split_all,
    split_by_fold, split_by_source, validation_samples,
};

/// Samples read per disk access when streaming (contiguous, one HDF5 hyperslab).
const DISK_BLOCK: usize = 64;

/// What the store keeps of each map.
#[derive(Clone, Debug)]
pub enum Kept {
    /// The map itself: [H·W·C].
    Maps,
    /// Its channel means, for heads that pool by averaging first (they compute the same from
    /// them): [C], H·W times less memory.
    Averages,
    /// Its second-order pooling: [D·(D+1)/2].
    Bilinear(Arc<Projection>),
}

impl Kept {
    /// Values kept of a map of `shape`.
    fn len(&self, shape: &MapShape) -> usize {
        match self {
            Kept::Maps => shape.len(),
            Kept::Averages => shape.channels,
            Kept::Bilinear(projection) => pooled_len(projection.dimensions),
        }
    }

    /// Appends what is kept of one map.
    ///
    /// # Shapes
    /// `map`: [H·W × C] → appends [H·W × C], [C] or [D·(D+1)/2].
    fn push(&self, map: &[f32], channels: usize, out: &mut Vec<f32>) -> Result<()> {
        match self {
            Kept::Maps => out.extend_from_slice(map),
            Kept::Averages => push_average(map, channels, out),
            Kept::Bilinear(projection) => projection.pool(map, out)?,
        }
        Ok(())
    }
}

/// Feature maps (or what is kept of them) held in memory, or read from the cache on demand.
#[derive(Debug)]
pub enum Store {
    /// # Shapes
    /// [N × kept values].
    Memory { cache: Cache, features: Vec<f32>, kept: Kept },
    Disk {
        cache: Cache,
        buffer_samples: usize,
        kept: Kept,
        /// What is kept of every map, pooled once into a scratch file (not for maps).
        spill: Option<Spill>,
    },
}

/// Appends the mean over positions of each channel of one channels-last map.
///
/// # Shapes
/// `map`: [H·W × C] → appends [C].
fn push_average(map: &[f32], channels: usize, out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + channels, 0.0);
    let sums = &mut out[start..];
    for position in map.chunks_exact(channels) {
        for (sum, value) in sums.iter_mut().zip(position) {
            *sum += value;
        }
    }
    let positions = (map.len() / channels.max(1)).max(1) as f32;
    for sum in sums {
        *sum /= positions;
    }
}

impl Store {
    /// Loads what is `kept` of the cache's maps into memory if it fits `budget_bytes` as float32;
    /// else streams with a shuffle buffer of that size. Either way NaN or infinite values are an
    /// error. Keeping averages, a `--copies 10` cache of amid5 (4.5 GB of `mixed_10` maps)
    /// trains from 180 MB in memory.
    ///
    /// Streaming averages or bilinear pooling, what is kept of every map is computed once into
    /// the scratch file `spill` (beside the run folder) and read back from it at every pass;
    /// without one, every pass pools the maps again. A spill file left there by a killed run is
    /// deleted when this store needs none.
    pub fn open(
        cache: Cache,
        budget_bytes: usize,
        kept: Kept,
        spill: Option<&Path>,
    ) -> Result<Self> {
        let kept_values = kept.len(&cache.shape);
        let per_sample = kept_values * std::mem::size_of::<f32>();
        if Self::fits(&cache, budget_bytes, &kept) {
            let mut features = Vec::with_capacity(kept_values * cache.len());
            let mut start = 0;
            while start < cache.len() {
                let count = DISK_BLOCK.min(cache.len() - start);
                features.extend(read_kept(&cache, &kept, start, count)?);
                start += count;
            }
            if let Some(path) = spill {
                spill::remove(path);
            }
            Ok(Store::Memory { cache, features, kept })
        } else {
            let spill = match (&kept, spill) {
                (Kept::Maps, Some(path)) => {
                    spill::remove(path);
                    None
                }
                (Kept::Maps, None) | (_, None) => None,
                (_, Some(path)) => Some(Spill::write(&cache, &kept, path)?),
            };
            // The buffer plus one block read (of maps, or of the spill's rows) must stay within
            // the budget.
            let block_values = if spill.is_some() { kept_values } else { cache.shape.len() };
            let block_bytes = DISK_BLOCK * block_values * std::mem::size_of::<f32>();
            let buffer_samples = (budget_bytes.saturating_sub(block_bytes) / per_sample).max(1);
            Ok(Store::Disk { cache, buffer_samples, kept, spill })
        }
    }

    /// Whether what is `kept` of `cache` fits `budget_bytes` as float32: held in memory.
    fn fits(cache: &Cache, budget_bytes: usize, kept: &Kept) -> bool {
        spill::bytes(cache, kept) <= budget_bytes as u64
    }

    /// Bytes of the scratch file [`Store::open`] writes for `cache` under `budget_bytes`: 0 when
    /// what is kept is held in memory, or when the maps themselves are streamed (no file).
    pub fn spill_bytes(cache: &Cache, budget_bytes: usize, kept: &Kept) -> u64 {
        let bytes = spill::bytes(cache, kept);
        if bytes <= budget_bytes as u64 || matches!(kept, Kept::Maps) { 0 } else { bytes }
    }

    /// Refuses, before any is written, the scratch files at the paths of `caches` where their
    /// disk has less free than they need together (see [`Store::open`]).
    pub fn ensure_spill_space(
        caches: &[(&Cache, &Path)],
        budget_bytes: usize,
        kept: &Kept,
    ) -> Result<()> {
        let needed =
            caches.iter().map(|(cache, _)| Self::spill_bytes(cache, budget_bytes, kept)).sum();
        let paths: Vec<&Path> = caches.iter().map(|(_, path)| *path).collect();
        spill::ensure_space(&paths, needed)
    }

    pub fn cache(&self) -> &Cache {
        match self {
            Store::Memory { cache, .. } | Store::Disk { cache, .. } => cache,
        }
    }

    /// The shape of each sample `batches` hands out: [H, W, C] for maps, else [1, 1, kept].
    pub fn sample_dims(&self) -> [usize; 3] {
        let (Store::Memory { cache, kept, .. } | Store::Disk { cache, kept, .. }) = self;
        let shape = cache.shape;
        match kept {
            Kept::Maps => [shape.height, shape.width, shape.channels],
            other => [1, 1, other.len(&shape)],
        }
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self, Store::Disk { .. })
    }

    /// The scratch file a streamed store reads what it keeps of each map from, if any.
    pub fn spill_path(&self) -> Option<&Path> {
        match self {
            Store::Disk { spill: Some(spill), .. } => Some(spill.path()),
            _ => None,
        }
    }

    /// Calls `visit(indices, features)` for batches of at most `batch_size` samples covering
    /// `indices` once; shuffled with `shuffle_seed` if given, else in order. `visit` returns
    /// false to stop early.
    ///
    /// # Shapes
    /// `features`: [batch × (H·W·C)], rows in the order of the batch's indices.
    pub fn batches(
        &self,
        indices: &[usize],
        batch_size: usize,
        shuffle_seed: Option<u64>,
        mut visit: impl FnMut(&[usize], &[f32]) -> Result<bool>,
    ) -> Result<()> {
        let dim = self.sample_dims().iter().product::<usize>();
        let mut rng = shuffle_seed.map(ChaCha8Rng::seed_from_u64);
        match self {
            Store::Memory { features, .. } => {
                let mut order = indices.to_vec();
                if let Some(rng) = rng.as_mut() {
                    order.shuffle(rng);
                }
                let mut batch = Vec::with_capacity(batch_size * dim);
                for chunk in order.chunks(batch_size) {
                    batch.clear();
                    for &index in chunk {
                        batch.extend_from_slice(&features[index * dim..(index + 1) * dim]);
                    }
                    if !visit(chunk, &batch)? {
                        break;
                    }
                }
                Ok(())
            }
            Store::Disk { cache, buffer_samples, kept, spill } => {
                // Group the wanted samples by block, visit blocks in (shuffled) order, and
                // shuffle within a bounded buffer: memory stays at the budget.
                let mut blocks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for &index in indices {
                    blocks.entry(index / DISK_BLOCK).or_default().push(index);
                }
                let mut block_order: Vec<(usize, Vec<usize>)> = blocks.into_iter().collect();
                if let Some(rng) = rng.as_mut() {
                    block_order.shuffle(rng);
                }
                let mut buffer: Vec<(usize, Vec<f32>)> = Vec::new();
                let mut batch = Vec::with_capacity(batch_size * dim);
                let mut emit = |buffer: &mut Vec<(usize, Vec<f32>)>,
                                rng: &mut Option<ChaCha8Rng>,
                                all: bool|
                 -> Result<bool> {
                    if let Some(rng) = rng.as_mut() {
                        buffer.shuffle(rng);
                    }
                    while buffer.len() >= batch_size || (all && !buffer.is_empty()) {
                        let take = buffer.len().min(batch_size);
                        let rows: Vec<(usize, Vec<f32>)> = buffer.drain(..take).collect();
                        batch.clear();
                        let chunk: Vec<usize> = rows.iter().map(|(i, _)| *i).collect();
                        for (_, row) in &rows {
                            batch.extend_from_slice(row);
                        }
                        if !visit(&chunk, &batch)? {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                };
                for (block, wanted) in block_order {
                    let start = block * DISK_BLOCK;
                    let count = DISK_BLOCK.min(cache.len() - start);
                    // [count × dim]
                    let rows = match spill {
                        Some(spill) => spill.read_rows(start, count)?,
                        None => read_kept(cache, kept, start, count)?,
                    };
                    for index in wanted {
                        let row = &rows[(index - start) * dim..(index - start + 1) * dim];
                        buffer.push((index, row.to_vec()));
                    }
                    if buffer.len() >= *buffer_samples && !emit(&mut buffer, &mut rng, false)? {
                        return Ok(());
                    }
                }
                emit(&mut buffer, &mut rng, true).map(|_| ())
            }
        }
    }
}

/// What `kept` keeps of the cache's maps `start..start + count`, read from the cache; NaN or
/// infinite values are an error.
///
/// # Shapes
/// → [count × kept values].
fn read_kept(cache: &Cache, kept: &Kept, start: usize, count: usize) -> Result<Vec<f32>> {
    let block = cache.read_block(start, count)?;
    let maps = contiguous(cache, &block)?;
    check_finite(cache, start, maps)?;
    let map_len = cache.shape.len();
    match kept {
        Kept::Maps => {
            // The block's own buffer: no second copy of the maps.
            let (values, offset) = block.into_raw_vec_and_offset();
            match offset {
                Some(0) | None if values.len() == count * map_len => Ok(values),
                _ => Err(Error::Data(format!(
                    "{}: an unexpected block layout",
                    cache.path.display()
                ))),
            }
        }
        // In parallel: bilinear pooling is a matrix product a map.
        Kept::Bilinear(_) => Ok(maps
            .par_chunks(map_len)
            .map(|map| {
                let mut row = Vec::with_capacity(kept.len(&cache.shape));
                kept.push(map, cache.shape.channels, &mut row).map(|()| row)
            })
            .collect::<Result<Vec<Vec<f32>>>>()?
            .concat()),
        Kept::Averages => {
            let mut rows = Vec::with_capacity(count * kept.len(&cache.shape));
            for map in maps.chunks_exact(map_len) {
                kept.push(map, cache.shape.channels, &mut rows)?;
            }
            Ok(rows)
        }
    }
}

/// A block read from `cache` as one slice.
fn contiguous<'a>(cache: &Cache, block: &'a ndarray::Array4<f32>) -> Result<&'a [f32]> {
    block.as_slice().ok_or_else(|| {
        Error::Data(format!("{}: a block read is not contiguous in memory", cache.path.display()))
    })
}

/// One source photo's prediction: its label and the mean class probabilities of its samples.
#[derive(Clone, Debug, PartialEq)]
pub struct PhotoPrediction {
    pub source: i32,
    pub label: usize,
    pub probabilities: Vec<f64>,
    /// The row of the photo itself (variant 0), when it was among the samples.
    pub single_view: Option<Vec<f64>>,
}

/// Runs `probabilities` (a batch of features → one row of class probabilities per sample) over
/// `indices` and averages the rows of each source photo (one row without TTA, all its variants
/// with). Labels go through `label_of` (e.g. to map another cache's classes onto a head's).
///
/// # Shapes
/// `probabilities(features, n)`: features [n × (H·W·C)] → [n][classes].
pub fn mean_by_photo(
    store: &Store,
    indices: &[usize],
    batch_size: usize,
    label_of: impl Fn(i32) -> usize,
    mut probabilities: impl FnMut(&[f32], usize) -> Result<Vec<Vec<f64>>>,
) -> Result<Vec<PhotoPrediction>> {
    let cache = store.cache();
    // Per source photo: label, summed rows, row count, the row of variant 0.
    type Sums = (usize, Vec<f64>, usize, Option<Vec<f64>>);
    let mut by_source: BTreeMap<i32, Sums> = BTreeMap::new();
    store.batches(indices, batch_size, None, |batch, values| {
        for (row, &index) in probabilities(values, batch.len())?.into_iter().zip(batch) {
            let entry = by_source
                .entry(cache.source[index])
                .or_insert_with(|| (label_of(cache.labels[index]), vec![0.0; row.len()], 0, None));
            entry.1.iter_mut().zip(&row).for_each(|(sum, p)| *sum += p);
            entry.2 += 1;
            if cache.variant[index] == 0 {
                entry.3 = Some(row);
            }
        }
        Ok(true)
    })?;
    Ok(by_source
        .into_iter()
        .map(|(source, (label, sums, count, single_view))| PhotoPrediction {
            source,
            label,
            probabilities: sums.iter().map(|s| s / count as f64).collect(),
            single_view,
        })
        .collect())
}

/// The index of the largest of `values` (the first of equals): a row's predicted class.
pub(crate) fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best] {
            best = index;
        }
    }
    best
}

fn check_finite(cache: &Cache, first: usize, values: &[f32]) -> Result<()> {
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        let sample = first + position / cache.shape.len();
        return Err(Error::NonFinite {
            path: cache.path.clone(),
            sample,
            source_path: cache.source_path(sample).to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averaging_a_map_gives_each_channels_mean_over_positions() {
        // Two positions × three channels, channels last; appended after what is there.
        let map = [1.0, 10.0, -3.0, 3.0, 20.0, 5.0];
        let mut out = vec![7.0];
        push_average(&map, 3, &mut out);
        assert_eq!(out, vec![7.0, 2.0, 15.0, 1.0]);
    }

    #[test]
    fn argmax_picks_the_first_largest() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
    }
}
