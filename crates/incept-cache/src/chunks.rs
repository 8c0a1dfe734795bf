//! Copying feature maps between caches as stored: HDF5 direct chunk I/O (`H5Dread_chunk`,
//! `H5Dwrite_chunk`, HDF5 ≥ 1.10.3) moves each sample's compressed chunk without decompressing
//! or compressing it again, so packing segments or `merge --copy` costs I/O, not deflate.
#![allow(unsafe_code)]

use std::path::Path;

use hdf5_sys::h5::hsize_t;
use hdf5_sys::h5d::{H5Dread_chunk, H5Dwrite_chunk};
use hdf5_sys::h5p::H5P_DEFAULT;

use crate::checksum::{checksum_filter_position, chunk_is_whole};
use crate::{Dtype, Error, Result, WithPath, read_feature_block, write_feature_block};

/// Samples per block when chunks cannot be copied as they are (decoded, then encoded again).
const DECODED_BLOCK: usize = 64;

/// Whether `source`'s rows can move to `target` chunk by chunk: the same one-sample chunks and
/// the same filters (segments of incept 0.1.0 were stored contiguous and raw: they cannot).
fn same_chunking(source: &hdf5::Dataset, target: &hdf5::Dataset) -> bool {
    let (Some(a), Some(b)) = (source.chunk(), target.chunk()) else {
        return false;
    };
    a == b && a.first() == Some(&1) && source.filters() == target.filters()
}

/// Copies rows `rows` of `source` into `target`, at rows `at..at + rows.len()`.
pub(crate) fn copy_rows(
    source: &hdf5::Dataset,
    source_path: &Path,
    rows: &[usize],
    target: &hdf5::Dataset,
    target_path: &Path,
    at: usize,
    dtype: Dtype,
) -> Result<()> {
    if !same_chunking(source, target) {
        for (k, chunk) in rows.chunks(DECODED_BLOCK).enumerate() {
            for (j, &row) in chunk.iter().enumerate() {
                // [1, H, W, C]
                let block =
                    read_feature_block(source, dtype, row, 1, source_path).map_err(|_| {
                        Error::Damaged {
                            piece: source_path.to_path_buf(),
                            rows: vec![row],
                            cache: None,
                            photos: Vec::new(),
                        }
                    })?;
                let start = at + k * DECODED_BLOCK + j;
                write_feature_block(target, dtype, start, block.view(), target_path)?;
            }
        }
        return Ok(());
    }
    let failed =
        |path: &Path, what: String| Error::Corrupt { path: path.to_path_buf(), reason: what };
    let checksum_bit = checksum_filter_position(source);

    // The HDF5 library is not thread-safe: every call goes through the crate's lock.
    hdf5::sync::sync(|| {
        let mut buffer: Vec<u8> = Vec::new();
        for (k, &row) in rows.iter().enumerate() {
            let filters = read_stored_chunk(source, source_path, row, &mut buffer)?;
            // A damaged chunk is refused, not copied on: its bad checksum would travel with it,
            // but the copy would look like a new, whole cache.
            if !stored_chunk_is_whole(&buffer, filters, checksum_bit) {
                return Err(Error::Damaged {
                    piece: source_path.to_path_buf(),
                    rows: vec![row],
                    cache: None,
                    photos: Vec::new(),
                });
            }
            let target_offset: [hsize_t; 4] = [(at + k) as hsize_t, 0, 0, 0];
            // SAFETY: as above; `buffer` holds the `size` bytes written.
            let status = unsafe {
                H5Dwrite_chunk(
                    target.id(),
                    H5P_DEFAULT,
                    filters,
                    target_offset.as_ptr(),
                    buffer.len(),
                    buffer.as_ptr().cast(),
                )
            };
            if status < 0 {
                // HDF5's own error (a full disk among them) says why.
                let error = hdf5::h5check(status).at(target_path);
                return Err(match error {
                    Err(Error::DiskFull { path }) => Error::DiskFull { path },
                    _ => failed(target_path, format!("row {}: chunk could not be written", at + k)),
                });
            }
        }
        Ok(())
    })
}

/// Reads the chunk of `row` as stored (compressed, with its checksum if any) into `buffer`;
/// returns its filter mask. The caller holds the HDF5 lock.
pub(crate) fn read_stored_chunk(
    dataset: &hdf5::Dataset,
    path: &Path,
    row: usize,
    buffer: &mut Vec<u8>,
) -> Result<u32> {
    // A chunk the index of the piece cannot find or HDF5 cannot read is as damaged as one whose
    // checksum fails.
    let failed = || Error::Damaged {
        piece: path.to_path_buf(),
        rows: vec![row],
        cache: None,
        photos: Vec::new(),
    };
    let Some(size) = crate::extents::stored_size(dataset, row) else {
        return Err(failed());
    };
    // A chunk's recorded size comes from the piece's chunk index, which has no checksum: a
    // damaged one must not make this allocate terabytes. Compressed bytes exceed the raw map by
    // little (LZF and deflate add a few percent to incompressible data).
    let raw =
        dataset.shape().iter().skip(1).product::<usize>() * dataset.dtype().map_or(4, |t| t.size());
    if size as usize > 2 * raw + 4096 {
        return Err(failed());
    }
    let offset: [hsize_t; 4] = [row as hsize_t, 0, 0, 0];
    buffer.resize(size as usize, 0);
    let mut filters: u32 = 0;
    // SAFETY: `buffer` holds `size` bytes, the chunk's stored size just queried.
    let status = unsafe {
        H5Dread_chunk(
            dataset.id(),
            H5P_DEFAULT,
            offset.as_ptr(),
            &mut filters,
            buffer.as_mut_ptr().cast(),
        )
    };
    if status < 0 {
        return Err(failed());
    }
    Ok(filters)
}

/// Whether a stored chunk passes its checksum: true for a dataset without one (`checksum_bit`
/// `None`) or a chunk whose mask says the checksum filter was skipped.
pub(crate) fn stored_chunk_is_whole(
    stored: &[u8],
    filters: u32,
    checksum_bit: Option<usize>,
) -> bool {
    match checksum_bit {
        Some(bit) if filters & (1 << bit) == 0 => chunk_is_whole(stored),
        _ => true,
    }
}

/// Where the stored bytes of sample `row` of the `features` dataset of the HDF5 file at `path` lie:
/// (offset in the file, length). For tests and benchmarks that damage a cache on purpose.
#[doc(hidden)]
pub fn stored_chunk_extent(path: &Path, row: usize) -> Result<(u64, u64)> {
    let file = crate::open_hdf5(path)?;
    let dataset =
        file.dataset(crate::FEATURES).map_err(|_| crate::missing(path, crate::FEATURES))?;
    crate::extents::locate(&dataset, row).ok_or_else(|| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("row {row} has no stored chunk"),
    })
}
