//! A segment's own record of its rows (`source_paths`, `class_names`, `variant`) and the hash of
//! rows, `columns_hash`: a fixed-size attribute. On a segment, `incept verify` compares it with the
//! index's rows without reading the variable-length strings, whose heap HDF5 trusts blindly (a
//! damaged string length there can crash the library). On a cache (index or self-contained), every
//! open checks its columns against it: a flipped label or photo index is refused, not trained on.

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
    write_columns_hash(file, columns_hash(rows), path)
}

/// Writes the `columns_hash` attribute.
pub(crate) fn write_columns_hash(file: &hdf5::File, hash: u64, path: &Path) -> crate::Result<()> {
    file.new_attr::<u64>().create(COLUMNS_HASH_ATTRIBUTE).at(path)?.write_scalar(&hash).at(path)
}

/// The recorded `columns_hash` of a file, if it has one.
pub(crate) fn recorded_columns_hash(file: &hdf5::File) -> Option<u64> {
    file.attr(COLUMNS_HASH_ATTRIBUTE).and_then(|attribute| attribute.read_scalar::<u64>()).ok()
}

/// Whether rows (photo, class, variant) match a file's recorded hash (true without one).
pub(crate) fn matches_recorded<'a>(
    file: &hdf5::File,
    rows: impl Iterator<Item = (&'a str, &'a str, u32)>,
) -> bool {
    recorded_columns_hash(file).is_none_or(|hash| hash == columns_hash(rows))
}
