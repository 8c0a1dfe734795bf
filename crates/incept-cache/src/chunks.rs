//! Copying feature maps between caches as stored: HDF5 direct chunk I/O (`H5Dread_chunk`,
//! `H5Dwrite_chunk`, HDF5 ≥ 1.10.3) moves each sample's compressed chunk without decompressing
//! or compressing it again, so packing segments or `merge --copy` costs I/O, not deflate.
#![allow(unsafe_code)]

use std::path::Path;

use hdf5_sys::h5::{haddr_t, hsize_t};
use hdf5_sys::h5d::{H5Dget_chunk_info_by_coord, H5Dread_chunk, H5Dwrite_chunk};
use hdf5_sys::h5p::H5P_DEFAULT;

use crate::{Dtype, Error, Result, read_feature_block, write_feature_block};

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
                let block = read_feature_block(source, dtype, row, 1, source_path)?;
                let start = at + k * DECODED_BLOCK + j;
                write_feature_block(target, dtype, start, block.view(), target_path)?;
            }
        }
        return Ok(());
    }
    let failed =
        |path: &Path, what: String| Error::Corrupt { path: path.to_path_buf(), reason: what };
    // The HDF5 library is not thread-safe: every call goes through the crate's lock.
    hdf5::sync::sync(|| {
        let mut buffer: Vec<u8> = Vec::new();
        for (k, &row) in rows.iter().enumerate() {
            let offset: [hsize_t; 4] = [row as hsize_t, 0, 0, 0];
            let (mut mask, mut address, mut size): (u32, haddr_t, hsize_t) = (0, 0, 0);
            // SAFETY: the dataset id is live (held by `source`), `offset` has one entry per
            // dimension of the 4-d dataset, and the out-pointers point at locals.
            let status = unsafe {
                H5Dget_chunk_info_by_coord(
                    source.id(),
                    offset.as_ptr(),
                    &mut mask,
                    &mut address,
                    &mut size,
                )
            };
            if status < 0 || size == 0 {
                return Err(failed(source_path, format!("row {row} has no stored chunk")));
            }
            buffer.resize(size as usize, 0);
            let mut filters: u32 = 0;
            // SAFETY: `buffer` holds `size` bytes, the chunk's stored size just queried.
            let status = unsafe {
                H5Dread_chunk(
                    source.id(),
                    H5P_DEFAULT,
                    offset.as_ptr(),
                    &mut filters,
                    buffer.as_mut_ptr().cast(),
                )
            };
            if status < 0 {
                return Err(failed(source_path, format!("row {row}: its chunk could not be read")));
            }
            let target_offset: [hsize_t; 4] = [(at + k) as hsize_t, 0, 0, 0];
            // SAFETY: as above; `buffer` holds the `size` bytes written.
            let status = unsafe {
                H5Dwrite_chunk(
                    target.id(),
                    H5P_DEFAULT,
                    filters,
                    target_offset.as_ptr(),
                    size as usize,
                    buffer.as_ptr().cast(),
                )
            };
            if status < 0 {
                return Err(failed(
                    target_path,
                    format!("row {}: chunk could not be written", at + k),
                ));
            }
        }
        Ok(())
    })
}
