//! Reading and writing a cache file's datasets: the string and integer columns and the feature
//! maps, whatever their stored type.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::{Extent, SimpleExtents};
use ndarray::{Array1, Array4, ArrayView4, s};

use crate::{
    Compression, DEFLATE_LEVEL, Dtype, Error, FEATURES, MapShape, Result, WithPath, missing,
};

pub(crate) fn read_strings(file: &hdf5::File, name: &str, path: &Path) -> Result<Vec<String>> {
    let dataset = file.dataset(name).map_err(|_| missing(path, name))?;
    let values: Vec<VarLenUnicode> = dataset.read_raw().at(path)?;
    // HDF5 does not check that a "UTF-8" string is UTF-8, and neither does `as_str`: damaged
    // bytes must not become an invalid `str` (their rows then fail the columns' hash instead).
    Ok(values.iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect())
}

pub(crate) fn write_strings(
    file: &hdf5::File,
    name: &str,
    values: &[String],
    path: &Path,
) -> Result<()> {
    let encoded = values
        .iter()
        .map(|v| v.parse::<VarLenUnicode>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("a {name} entry holds a NUL byte"),
        })?;
    file.new_dataset_builder().with_data(&Array1::from(encoded)).create(name).at(path)?;
    Ok(())
}

pub(crate) fn read_i32(file: &hdf5::File, name: &str, path: &Path) -> Result<Vec<i32>> {
    let dataset = file.dataset(name).map_err(|_| missing(path, name))?;
    dataset.read_raw().at(path)
}

/// Opens an existing HDF5 file read-only, with errors that say what is wrong.
pub(crate) fn open_hdf5(path: &Path) -> Result<hdf5::File> {
    if !path.exists() {
        return Err(Error::Missing { path: path.to_path_buf() });
    }
    hdf5::File::open(path).map_err(|source| Error::Unreadable { path: path.to_path_buf(), source })
}

pub(crate) fn map_shape_of(dataset: &hdf5::Dataset, path: &Path) -> Result<(usize, MapShape)> {
    match dataset.shape().as_slice() {
        &[n, height, width, channels] => Ok((n, MapShape { height, width, channels })),
        other => Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("`features` has shape {other:?}, expected [N, H, W, C]"),
        }),
    }
}

/// Reads samples `start..start + count` of a `features` dataset as float32, whatever is stored.
///
/// # Shapes
/// Returns [count, H, W, C].
pub(crate) fn read_feature_block(
    dataset: &hdf5::Dataset,
    dtype: Dtype,
    start: usize,
    count: usize,
    path: &Path,
) -> Result<Array4<f32>> {
    let selection = s![start..start + count, .., .., ..];
    Ok(match dtype {
        Dtype::F32 => dataset.read_slice::<f32, _, _>(selection).at(path)?,
        Dtype::F16 => dataset.read_slice::<half::f16, _, _>(selection).at(path)?.mapv(f32::from),
    })
}

/// [`read_feature_block`], with a failure narrowed down: when the block cannot be read, each row
/// is read alone, and rows that fail (a checksum that does not match, bytes that do not
/// decompress) make an [`Error::Damaged`] naming them, rows `start..` of `path`.
///
/// # Shapes
/// Returns [count, H, W, C].
pub(crate) fn read_checked_block(
    dataset: &hdf5::Dataset,
    dtype: Dtype,
    start: usize,
    count: usize,
    path: &Path,
) -> Result<Array4<f32>> {
    let error = match read_feature_block(dataset, dtype, start, count, path) {
        Ok(block) => return Ok(block),
        Err(error) => error,
    };
    let damaged: Vec<usize> = (start..start + count)
        .filter(|&row| read_feature_block(dataset, dtype, row, 1, path).is_err())
        .collect();
    if damaged.is_empty() {
        return Err(error);
    }
    Err(Error::Damaged {
        piece: path.to_path_buf(),
        rows: damaged,
        cache: None,
        photos: Vec::new(),
    })
}

pub(crate) fn write_feature_block(
    dataset: &hdf5::Dataset,
    dtype: Dtype,
    start: usize,
    block: ArrayView4<'_, f32>,
    path: &Path,
) -> Result<()> {
    let selection = s![start..start + block.shape()[0], .., .., ..];
    match dtype {
        Dtype::F32 => dataset.write_slice(block, selection).at(path),
        Dtype::F16 => dataset.write_slice(&block.mapv(half::f16::from_f32), selection).at(path),
    }
}

pub(crate) fn create_features(
    file: &hdf5::File,
    dtype: Dtype,
    n: usize,
    shape: MapShape,
    compression: Compression,
    path: &Path,
) -> Result<hdf5::Dataset> {
    let extent = (n, shape.height, shape.width, shape.channels);
    create_features_with(file, dtype, extent.into(), (n > 0).then_some(shape), compression, path)
}

/// An empty `features` dataset [0, H, W, C] that can grow to `capacity` rows
/// ([`hdf5::Dataset::resize`]): a segment filled batch by batch, each batch's chunks compressed
/// as it is written.
pub(crate) fn create_growing_features(
    file: &hdf5::File,
    dtype: Dtype,
    capacity: usize,
    shape: MapShape,
    compression: Compression,
    path: &Path,
) -> Result<hdf5::Dataset> {
    let extents = SimpleExtents::from_vec(vec![
        Extent::new(0, Some(capacity)),
        Extent::fixed(shape.height),
        Extent::fixed(shape.width),
        Extent::fixed(shape.channels),
    ]);
    create_features_with(file, dtype, extents, Some(shape), compression, path)
}

fn create_features_with(
    file: &hdf5::File,
    dtype: Dtype,
    extents: SimpleExtents,
    chunk_shape: Option<MapShape>,
    compression: Compression,
    path: &Path,
) -> Result<hdf5::Dataset> {
    let mut builder = file.new_dataset_builder();
    // One chunk per sample (none for an empty fixed-size dataset, which cannot have chunks).
    if let Some(shape) = chunk_shape {
        builder = builder.chunk((1, shape.height, shape.width, shape.channels));
        if compression.shuffled() {
            builder = builder.shuffle();
        }
        builder = match compression {
            Compression::Lzf | Compression::ShuffleLzf => builder.lzf(),
            Compression::Deflate | Compression::ShuffleDeflate => builder.deflate(DEFLATE_LEVEL),
        };
        // Last in the pipeline: the checksum covers the bytes as stored (crate::checksum).
        if crate::checksum::write_checksums() {
            builder = builder.fletcher32();
        }
    }
    match dtype {
        Dtype::F32 => builder.empty::<f32>().shape(extents).create(FEATURES).at(path),
        Dtype::F16 => builder.empty::<half::f16>().shape(extents).create(FEATURES).at(path),
    }
}
