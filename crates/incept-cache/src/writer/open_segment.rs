//! A segment filled batch by batch: each batch's feature maps are compressed and written as
//! it arrives (on the writer thread, while inference goes on), so ending a run only closes the
//! last segment instead of compressing all of it after the last batch.

use std::path::Path;

use incept_core::atomic::Temporary;
use ndarray::Array4;

use super::{BASE_ATTRIBUTE, CacheWriter, DEFAULT_SEGMENT_SAMPLES, Sample};
use crate::{
    Dtype, Error, MapShape, Result, SEGMENT_PREFIX, WithPath, create_growing_features, io_error,
    write_feature_block, write_string_attribute,
};

/// A segment being written: a temporary file that [`CacheWriter::commit_segment`] renames into
/// `CACHE.h5.parts/`. Dropped without a commit, its temporary file is removed: a segment is in
/// the pieces folder whole or not at all.
#[derive(Debug)]
pub(super) struct OpenSegment {
    file: hdf5::File,
    features: hdf5::Dataset,
    dtype: Dtype,
    shape: MapShape,
    capacity: usize,
    sources: Vec<String>,
    classes: Vec<String>,
    variants: Vec<i32>,
    /// Declared last: dropped after the file is closed.
    temporary: Temporary,
}

impl OpenSegment {
    fn len(&self) -> usize {
        self.variants.len()
    }

    /// The maps of `samples` as one block, each checked against the segment's shape.
    ///
    /// # Shapes
    /// [samples, H, W, C]
    fn block(&self, samples: &[Sample]) -> Result<Array4<f32>> {
        let path = self.temporary.final_path();
        let shape = self.shape;
        let mut block =
            Array4::<f32>::zeros((samples.len(), shape.height, shape.width, shape.channels));
        for (mut row, sample) in block.outer_iter_mut().zip(samples) {
            let values = ndarray::ArrayView3::from_shape(
                (shape.height, shape.width, shape.channels),
                &sample.features,
            )
            .map_err(|_| Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "sample {} has {} values, not {}",
                    sample.source,
                    sample.features.len(),
                    shape.len()
                ),
            })?;
            row.assign(&values);
        }
        Ok(block)
    }

    /// Appends `samples` (at most the room left) and their maps `block`, compressing them now.
    ///
    /// # Shapes
    /// `block`: [samples, H, W, C]
    fn write(&mut self, samples: &[Sample], block: Array4<f32>) -> Result<()> {
        let (path, shape) = (self.temporary.path(), self.shape);
        let start = self.len();
        let rows = start + samples.len();
        self.features.resize((rows, shape.height, shape.width, shape.channels)).at(path)?;
        write_feature_block(&self.features, self.dtype, start, block.view(), path)?;
        for sample in samples {
            self.sources.push(sample.source.clone());
            self.classes.push(sample.class.clone());
            self.variants.push(sample.variant as i32);
        }
        Ok(())
    }

    /// Writes the columns, closes the file and renames it into place; returns the samples'
    /// keys. On error the temporary file is removed (after HDF5 has closed it).
    fn commit(self) -> Result<Vec<(String, u32)>> {
        let OpenSegment { file, features, sources, classes, variants, temporary, .. } = self;
        close_segment(file, features, &sources, &classes, &variants, temporary.path())?;
        temporary.commit()?;
        Ok(sources.into_iter().zip(variants.into_iter().map(|v| v as u32)).collect())
    }
}

/// Writes a segment's columns and closes it; `file` is closed (or dropped) before this returns.
fn close_segment(
    file: hdf5::File,
    features: hdf5::Dataset,
    sources: &[String],
    classes: &[String],
    variants: &[i32],
    path: &Path,
) -> Result<()> {
    crate::segment_columns::write_segment_columns(&file, sources, classes, variants, path)?;
    drop(features);
    file.flush().at(path)?;
    // Closing (not just dropping) reports a failed final write.
    file.close().at(path)
}

impl CacheWriter {
    /// Samples per segment that [`Self::append`] fills before committing it (at least 1): the
    /// most a kill can lose.
    pub fn set_segment_samples(&mut self, samples: usize) {
        self.segment_samples = samples.max(1);
    }

    /// Adds `samples` to the open segment (opening one first), compressing their maps now, and
    /// commits each segment that reaches the segment size. Call [`Self::commit_segment`] (or
    /// [`Self::finish`], which does) after the last batch.
    pub fn append(&mut self, mut samples: &[Sample], shape: MapShape) -> Result<()> {
        while !samples.is_empty() {
            let mut open = match self.open.take() {
                Some(open) => open,
                None => self.start_segment(shape, self.segment_samples)?,
            };
            if open.shape != shape {
                let error = Error::ShapeDiffers {
                    path: open.temporary.final_path().to_path_buf(),
                    expected: open.shape,
                    found: shape,
                };
                self.open = Some(open);
                return Err(error);
            }
            let room = open.capacity - open.len();
            let (now, rest) = samples.split_at(room.min(samples.len()));
            let block = match open.block(now) {
                Ok(block) => block,
                Err(error) => {
                    // Refused before anything was written: the open segment stays as it was.
                    self.open = Some(open);
                    return Err(error);
                }
            };
            // On a write error `open` is dropped, and its temporary file with it: a file HDF5
            // failed to write is not a segment.
            open.write(now, block)?;
            samples = rest;
            let full = open.len() == open.capacity;
            self.open = Some(open);
            if full {
                self.commit_segment()?;
            }
        }
        Ok(())
    }

    /// Writes `samples` as one new segment of their own, atomically.
    pub fn write_segment(&mut self, samples: &[Sample], shape: MapShape) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.commit_segment()?;
        self.open = Some(self.start_segment(shape, samples.len())?);
        // Exactly full once appended: `append` commits it.
        self.append(samples, shape)
    }

    /// Commits the open segment, if any: its samples become pending work that [`Self::finish`]
    /// (or the next run) adds to the cache.
    pub fn commit_segment(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        if open.len() == 0 {
            // Opened for a batch that was refused: nothing to keep (its file goes with it).
            return Ok(());
        }
        let path = open.temporary.final_path().to_path_buf();
        // Raised first: a commit that fails after its rename must not let a later segment
        // take the same name.
        self.next_segment += 1;
        for key in open.commit()? {
            self.done.insert(key);
        }
        self.segments.push(path);
        Ok(())
    }

    fn start_segment(&mut self, shape: MapShape, capacity: usize) -> Result<OpenSegment> {
        std::fs::create_dir_all(&self.parts).map_err(io_error(&self.parts))?;
        let final_path = self.parts.join(format!("{SEGMENT_PREFIX}{:08}.h5", self.next_segment));
        self.check_shape(shape, &final_path)?;
        let temporary = Temporary::beside(&final_path);
        let file = create_segment_file(self, temporary.path(), shape, capacity)?;
        let features = file.dataset(crate::FEATURES).at(temporary.path())?;
        Ok(OpenSegment {
            file,
            features,
            dtype: self.settings.dtype,
            shape,
            capacity,
            sources: Vec::with_capacity(capacity.min(DEFAULT_SEGMENT_SAMPLES)),
            classes: Vec::with_capacity(capacity.min(DEFAULT_SEGMENT_SAMPLES)),
            variants: Vec::with_capacity(capacity.min(DEFAULT_SEGMENT_SAMPLES)),
            temporary,
        })
    }
}

fn create_segment_file(
    writer: &CacheWriter,
    path: &Path,
    shape: MapShape,
    capacity: usize,
) -> Result<hdf5::File> {
    let file = hdf5::File::create_excl(path).at(path)?;
    writer.settings.write_attributes(&file, path)?;
    write_string_attribute(&file, BASE_ATTRIBUTE, &writer.base, path)?;
    create_growing_features(
        &file,
        writer.settings.dtype,
        capacity,
        shape,
        writer.compression,
        path,
    )?;
    Ok(file)
}
