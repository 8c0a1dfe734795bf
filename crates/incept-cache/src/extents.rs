//! Finding a row's stored chunk in HDF5's chunk index (one chunk per row).
#![allow(unsafe_code)]

use hdf5_sys::h5::{haddr_t, hsize_t};
use hdf5_sys::h5d::H5Dget_chunk_info_by_coord;

unsafe extern "C" {
    /// HDF5 ≥ 1.10.2: the stored size of one chunk, found through the chunk index (a B-tree
    /// lookup). Not bound by hdf5-sys.
    fn H5Dget_chunk_storage_size(
        dset_id: hdf5_sys::h5i::hid_t,
        offset: *const hsize_t,
        chunk_bytes: *mut hsize_t,
    ) -> hdf5_sys::h5::herr_t;
}

/// The stored size of `row`'s chunk; `None` if HDF5 finds none. A B-tree lookup: what every
/// read, copy and `verify` of a row uses.
pub(crate) fn stored_size(dataset: &hdf5::Dataset, row: usize) -> Option<u64> {
    let offset: [hsize_t; 4] = [row as hsize_t, 0, 0, 0];
    let mut size: hsize_t = 0;
    // SAFETY: the dataset id is live (held by `dataset`), `offset` has one entry per dimension
    // of the 4-d dataset, and the out-pointer points at a local.
    let status = hdf5::sync::sync(|| unsafe {
        H5Dget_chunk_storage_size(dataset.id(), offset.as_ptr(), &mut size)
    });
    (status >= 0 && size > 0).then_some(size)
}

/// Where `row`'s chunk lies in the file: (address, stored size). For tests and benchmarks that
/// damage a cache on purpose only: HDF5 1.10 answers it by walking every chunk of the dataset
/// (`H5B_iterate`), so a call costs time in proportion to the rows.
pub(crate) fn locate(dataset: &hdf5::Dataset, row: usize) -> Option<(u64, u64)> {
    let offset: [hsize_t; 4] = [row as hsize_t, 0, 0, 0];
    let (mut mask, mut address, mut size): (u32, haddr_t, hsize_t) = (0, 0, 0);
    // SAFETY: as in `stored_size`, with three out-pointers to locals.
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
