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
    #[error(
        "{path}: its columns (each row's photo, class and variant) are damaged: they do not match \
         the hash written with them; `incept verify {path} --repair` rebuilds an index's columns \
         from its pieces (a self-contained file must be made again)"
    )]
    ColumnsDamaged { path: PathBuf },
    /// Rows whose stored bytes fail their checksum (or cannot be read at all).
    #[error("{}", damaged_message(piece, rows, cache.as_deref(), photos))]
    Damaged {
        /// The file holding the bad chunks.
        piece: PathBuf,
        /// Rows of the cache when `cache` is known, else rows of the piece.
        rows: Vec<usize>,
        /// The cache the piece was read through, once known.
        cache: Option<PathBuf>,
        /// `PHOTO (variant K)` of each row, once known.
        photos: Vec<String>,
    },
    #[error(
        "no space left on device writing {path}; what was written before is kept: free space and \
         run the same command again"
    )]
    DiskFull { path: PathBuf },
    #[error(transparent)]
    Core(incept_core::Error),
}

impl From<incept_core::Error> for Error {
    fn from(error: incept_core::Error) -> Self {
        match error {
            incept_core::Error::Io { path, source } if incept_core::is_disk_full(&source) => {
                Error::DiskFull { path }
            }
            other => Error::Core(other),
        }
    }
}

/// Rows named in a one-line message before "and N more".
const ROWS_NAMED: usize = 3;

fn damaged_message(
    piece: &Path,
    rows: &[usize],
    cache: Option<&Path>,
    photos: &[String],
) -> String {
    let named: Vec<String> = rows
        .iter()
        .take(ROWS_NAMED)
        .enumerate()
        .map(|(k, row)| match photos.get(k) {
            Some(photo) => format!("row {row}: {photo}"),
            None => format!("row {row}"),
        })
        .collect();
    let more = rows.len().saturating_sub(ROWS_NAMED);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    let samples = if rows.len() == 1 { "sample" } else { "samples" };
    match cache {
        Some(cache) => format!(
            "{cache}: {count} damaged {samples} in {piece} ({list}{more}): their stored bytes \
             fail their checksum; run `incept verify {cache} --repair` to re-extract them from \
             their photos",
            cache = cache.display(),
            count = rows.len(),
            piece = piece.display(),
            list = named.join("; "),
        ),
        None => format!(
            "{piece}: {count} damaged {samples} ({list}{more}): their stored bytes fail their \
             checksum; run `incept verify CACHE --repair` on the cache it belongs to",
            piece = piece.display(),
            count = rows.len(),
            list = named.join("; "),
        ),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to HDF5 errors.
pub(crate) trait WithPath<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> WithPath<T> for hdf5::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| {
            // HDF5 reports a full disk inside a many-line error stack: one line instead.
            if incept_core::mentions_disk_full(&source.to_string()) {
                Error::DiskFull { path: path.to_path_buf() }
            } else {
                Error::Hdf5 { path: path.to_path_buf(), source }
            }
        })
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        if incept_core::is_disk_full(&source) {
            Error::DiskFull { path: path.to_path_buf() }
        } else {
            Error::Io { path: path.to_path_buf(), source }
        }
    }
}

/// A cache lacking dataset or attribute `what`.
pub(crate) fn missing(path: &Path, what: &str) -> Error {
    Error::NotACache { path: path.to_path_buf(), missing: what.to_owned() }
}
