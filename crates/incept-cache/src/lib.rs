//! The HDF5 feature cache of incept.
//!
//! # Format
//! The file format is a contract (the trainer, tests and outside scripts read it with h5py):
//! **docs/FORMATS.md, section 1, is its specification** — every dataset, attribute, piece and
//! lock file, with types and shapes — and `crates/incept-cli/tests/formats.rs` checks a freshly
//! extracted cache against it. In short: `features` [N, H, W, C] float32 or float16, channels
//! last, with the columns `labels`, `source`, `variant`, `classes` and `sources`, and the
//! [`Settings`] among the root attributes. Two layouts carry it; readers need not care which:
//! - **Index (format 2, what `incept extract` and `incept merge` write):** `features` is an HDF5
//!   virtual dataset over immutable piece files (`pieces`, `piece_rows`), the segments of
//!   `CACHE.h5.parts/` or a merged plan's shards' pieces. [`Cache::open`] opens every piece and
//!   refuses a missing one (the virtual dataset would read it as its fill value, NaN).
//! - **Self-contained (format 1: incept 0.1.0, and `incept merge --copy`):** `features` is
//!   stored in the file itself, one compressed chunk per sample.
//!
//! # Growing
//! Adding photos writes new segments and a new index; no existing feature map is read or
//! rewritten, so the cost of a run grows with the new samples only. A self-contained cache that
//! grows becomes the first piece of an index (hard-linked as `CACHE.h5.parts/whole-*.h5`).
//!
//! # Crash safety
//! HDF5 files are not journaled: a process killed while writing one can leave it unreadable. So
//! no file is modified in place. Segments and indexes are written whole through
//! [`incept_core::atomic`] (unique temporary name, fsync, rename, fsync of the folder), and a
//! piece is deleted only once no index names it. A kill at any moment leaves the old index and
//! its pieces intact, plus whole segments that the next run picks up.
//!
//! # Concurrency
//! One writer at a time: [`CacheWriter::open`] takes an exclusive lock on `CACHE.h5.lock`
//! ([`incept_core::lock`]) and holds it until the writer is dropped; a second writer is refused
//! at once with the first one's pid, host and command. Readers take no lock: the index is
//! only ever replaced by a rename and pieces are never modified, so a reader sees the old cache
//! or the new one whole.

use std::path::{Path, PathBuf};

mod checksum;
mod chunks;
mod combine;
mod datasets;
mod error;
mod extents;
mod index;
mod reader;
mod repair;
mod schema;
mod segment_columns;
mod verify;
mod writer;
pub use checksum::benchmark_without_checksums;
pub use chunks::stored_chunk_extent;
pub use combine::{copy_into_one_file, index_over};
pub(crate) use datasets::{
    create_features, create_growing_features, map_shape_of, open_hdf5, read_checked_block,
    read_feature_block, read_i32, read_strings, write_feature_block, write_strings,
};
pub use error::{Error, Result};
pub(crate) use error::{WithPath, io_error, missing};
pub use index::{INDEX_FORMAT_VERSION, PieceRef, relative_path};
pub use reader::Cache;
pub use repair::{RepairSummary, repair};
pub use schema::{
    CLASSES, Compression, Dtype, FEATURES, LABELS, MapShape, SOURCE, SOURCES, Settings, VARIANT,
};
pub(crate) use schema::{
    DEFLATE_LEVEL, SEGMENT_CLASS_NAMES, SEGMENT_SOURCE_PATHS, read_string_attribute,
    write_string_attribute,
};
pub use verify::{PieceReport, RowKey, VerifyReport, verify};
pub use writer::{CacheWriter, DEFAULT_SEGMENT_SAMPLES, MergeSummary, Sample, rows_on_disk};

const PARTS_SUFFIX: &str = ".parts";
const LOCK_SUFFIX: &str = ".lock";
/// The fixed merge file of incept 0.1.0 and the temporary segment suffix; a leftover of a run
/// killed by that version is removed.
const LEGACY_MERGING_SUFFIX: &str = ".merging";
const LEGACY_SEGMENT_TEMPORARY_SUFFIX: &str = ".tmp";
const SEGMENT_PREFIX: &str = "segment-";
/// A self-contained cache of incept 0.1.0 linked into the pieces folder when it first grows.
const LEGACY_LINK_PREFIX: &str = "whole-";

/// `path` with `suffix` appended to its file name (`c.h5` → `c.h5.parts`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A path made canonical, to compare and relate the pieces an index names with files on disk.
pub(crate) fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(io_error(path))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_checksum;
#[cfg(test)]
mod tests_open_segment;
