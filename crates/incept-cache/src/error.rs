//! The errors of the feature cache: every one names the file it is about.

use std::path::{Path, PathBuf};

use crate::MapShape;

/// Errors of the feature cache. Every one names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: no such feature cache; create it with `incept extract DATA_DIR -o {path}`")]
    Missing { path: PathBuf },
    #[error(
        "{path}: cannot read it as HDF5 ({source}); is it a feature cache made by `incept extract`?"
    )]
    Unreadable { path: PathBuf, source: hdf5::Error },
    #[error("{path}: HDF5 error: {source}")]
    Hdf5 { path: PathBuf, source: hdf5::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path}: not an incept feature cache (missing `{missing}`); create one with `incept extract`"
    )]
    NotACache { path: PathBuf, missing: String },
    #[error("{path}: corrupt feature cache: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: a cache of format {found}, made by a newer incept (this one reads formats up to {supported}); use that incept, or a newer one"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    #[error(
        "{path} was made with other settings ({differences}); rerun with the same settings, \
         choose another output, or pass --overwrite to replace it"
    )]
    SettingsDiffer { path: PathBuf, differences: String },
    #[error(
        "{path} is a cache with pieces of its own (made by `incept extract`) that a merge would \
         orphan; merge into another file"
    )]
    WouldOrphan { path: PathBuf },
    #[error(
        "{index}: its piece {piece} is missing; restore it (an index and the pieces it names \
         move together), or make the cache again (extract with --overwrite, or merge again)"
    )]
    PieceMissing { index: PathBuf, piece: PathBuf },
    #[error(
        "{path}: ({source_path}, variant {variant}) appears twice; caches to combine must not overlap"
    )]
    Duplicate { path: PathBuf, source_path: String, variant: u32 },
    #[error("{path}: feature maps of shape {found} cannot join a cache of shape {expected}")]
    ShapeDiffers { path: PathBuf, expected: MapShape, found: MapShape },
    #[error(transparent)]
    Core(#[from] incept_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to HDF5 errors.
pub(crate) trait WithPath<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> WithPath<T> for hdf5::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Hdf5 { path: path.to_path_buf(), source })
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// A cache lacking dataset or attribute `what`.
pub(crate) fn missing(path: &Path, what: &str) -> Error {
    Error::NotACache { path: path.to_path_buf(), missing: what.to_owned() }
}
