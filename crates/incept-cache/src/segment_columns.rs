//! A segment's own record of its rows (`source_paths`, `class_names`, `variant`) and the hash of
//! it, `columns_hash`: a fixed-size attribute that `incept verify` compares with the index's rows
//! without reading the variable-length strings, whose heap HDF5 trusts blindly (a damaged string
//! length there can crash the library).

use std::path::Path;

use ndarray::Array1;

use crate::{SEGMENT_CLASS_NAMES, SEGMENT_SOURCE_PATHS, VARIANT, WithPath, write_strings};

/// Segment attribute (uint64): [`columns_hash`] of its rows.
pub(crate) const COLUMNS_HASH_ATTRIBUTE: &str = "columns_hash";

/// A stable hash of rows (photo, class, variant), in order.
pub(crate) fn columns_hash<'a>(rows: impl Iterator<Item = (&'a str, &'a str, u32)>) -> u64 {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for (photo, class, variant) in rows {
        parts.push(photo.as_bytes().to_vec());
        parts.push(class.as_bytes().to_vec());
        parts.push(variant.to_le_bytes().to_vec());
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    incept_core::stable_hash(&parts)
}

/// Writes a segment's columns and their hash.
pub(crate) fn write_segment_columns(
    file: &hdf5::File,
    sources: &[String],
    classes: &[String],
    variants: &[i32],
    path: &Path,
) -> crate::Result<()> {
    write_strings(file, SEGMENT_SOURCE_PATHS, sources, path)?;
    write_strings(file, SEGMENT_CLASS_NAMES, classes, path)?;
    file.new_dataset_builder()
        .with_data(&Array1::from(variants.to_vec()))
        .create(VARIANT)
        .at(path)?;
    let rows = sources
        .iter()
        .zip(classes)
        .zip(variants)
        .map(|((source, class), &variant)| (source.as_str(), class.as_str(), variant as u32));
    file.new_attr::<u64>()
        .create(COLUMNS_HASH_ATTRIBUTE)
        .at(path)?
        .write_scalar(&columns_hash(rows))
        .at(path)
}
