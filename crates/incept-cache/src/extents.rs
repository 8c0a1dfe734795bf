//! Where each row's chunk lies, recorded when a piece is written (`chunk_extents`). A checksum
//! proves a chunk's bytes whole but not that it is the chunk of *this* row: a damaged entry of
//! HDF5's chunk index (a B-tree without checksums) can send row 57 to row 56's chunk, whose
//! checksum passes. Every read and `incept verify` compare HDF5's answer with the record.
#![allow(unsafe_code)]

use std::path::Path;

use hdf5_sys::h5::{haddr_t, hsize_t};
use hdf5_sys::h5d::H5Dget_chunk_info_by_coord;
use ndarray::Array2;

use crate::{Error, Result, WithPath};

/// Piece dataset: uint64 [n, 2], the file address and stored size of each row's chunk.
pub(crate) const CHUNK_EXTENTS: &str = "chunk_extents";

/// (file address, stored bytes) of a row's chunk.
pub(crate) type Extent = (u64, u64);

/// Where HDF5's chunk index says the chunk of `row` is; `None` if it finds none. The caller holds
/// the HDF5 lock (or none is needed: the call takes it).
pub(crate) fn locate(dataset: &hdf5::Dataset, row: usize) -> Option<Extent> {
    let offset: [hsize_t; 4] = [row as hsize_t, 0, 0, 0];
    let (mut mask, mut address, mut size): (u32, haddr_t, hsize_t) = (0, 0, 0);
    // SAFETY: the dataset id is live (held by `dataset`), `offset` has one entry per dimension
    // of the 4-d dataset, and the out-pointers point at locals.
    let status = hdf5::sync::sync(|| unsafe {
        H5Dget_chunk_info_by_coord(
            dataset.id(),
            offset.as_ptr(),
            &mut mask,
            &mut address,
            &mut size,
        )
    });
    (status >= 0 && size > 0).then_some((address, size))
}

/// Records where every row's chunk of `features` (in `file`, flushed first) lies.
pub(crate) fn record(file: &hdf5::File, features: &hdf5::Dataset, path: &Path) -> Result<()> {
    file.flush().at(path)?;
    let rows = features.shape().first().copied().unwrap_or(0);
    let mut extents = Array2::<u64>::zeros((rows, 2));
    for row in 0..rows {
        let (address, size) = locate(features, row).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("row {row} was written but HDF5 finds no chunk for it"),
        })?;
        extents[[row, 0]] = address;
        extents[[row, 1]] = size;
    }
    file.new_dataset_builder().with_data(&extents).create(CHUNK_EXTENTS).at(path)?;
    Ok(())
}

/// The recorded extents of a piece of `rows` rows; `None` for pieces written before they were
/// recorded, or whose record is not [rows, 2] (then reads cannot check; `verify` says so).
pub(crate) fn recorded(file: &hdf5::File, rows: usize) -> Option<Vec<Extent>> {
    let dataset = file.dataset(CHUNK_EXTENTS).ok()?;
    let values: Array2<u64> = dataset.read_2d().ok()?;
    (values.dim() == (rows, 2)).then(|| values.outer_iter().map(|r| (r[0], r[1])).collect())
}

/// Rows `start..start + count` whose chunk HDF5 finds elsewhere than recorded.
pub(crate) fn misplaced(
    dataset: &hdf5::Dataset,
    extents: &[Extent],
    start: usize,
    count: usize,
) -> Vec<usize> {
    (start..start + count)
        .filter(|&row| extents.get(row).is_none_or(|&wanted| locate(dataset, row) != Some(wanted)))
        .collect()
}
