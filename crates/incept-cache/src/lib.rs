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

use hdf5::types::VarLenUnicode;
use ndarray::{Array1, Array4, ArrayView4, s};

mod chunks;
mod combine;
mod index;
mod reader;
mod writer;
pub use combine::{copy_into_one_file, index_over};
pub use index::{INDEX_FORMAT_VERSION, PieceRef, relative_path};
pub use reader::Cache;
pub use writer::{CacheWriter, MergeSummary, Sample, rows_on_disk};

pub const FEATURES: &str = "features";
pub const LABELS: &str = "labels";
pub const SOURCE: &str = "source";
pub const VARIANT: &str = "variant";
pub const CLASSES: &str = "classes";
pub const SOURCES: &str = "sources";
/// Per-sample string columns of a segment (merged into `classes`/`sources` indices).
const SEGMENT_SOURCE_PATHS: &str = "source_paths";
const SEGMENT_CLASS_NAMES: &str = "class_names";
const PARTS_SUFFIX: &str = ".parts";
const LOCK_SUFFIX: &str = ".lock";
/// The fixed merge file of incept 0.1.0 and the temporary segment suffix; a leftover of a run
/// killed by that version is removed.
const LEGACY_MERGING_SUFFIX: &str = ".merging";
const LEGACY_SEGMENT_TEMPORARY_SUFFIX: &str = ".tmp";
const SEGMENT_PREFIX: &str = "segment-";
/// A self-contained cache of incept 0.1.0 linked into the pieces folder when it first grows.
const LEGACY_LINK_PREFIX: &str = "whole-";

/// The lossless compression of the feature maps, one chunk a sample; both are filters h5py reads
/// without plugins. Measured on amid5: see the README's "The feature cache" section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Compression {
    /// Byte shuffle, then LZF: about 2.5× deflate's speed for 20 % more bytes; extraction, which
    /// compresses while inference runs on the same cores, is faster with it.
    #[default]
    Lzf,
    /// Byte shuffle, then deflate at [`DEFLATE_LEVEL`]: the smaller cache.
    Deflate,
}

/// Deflate's level: level 4 stored 3 % fewer bytes at three times the CPU time.
const DEFLATE_LEVEL: u8 = 1;

impl Compression {
    /// The `compression` attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Lzf => "shuffle+lzf",
            Compression::Deflate => "shuffle+deflate",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Compression::Lzf, Compression::Deflate].into_iter().find(|c| c.as_str() == text)
    }
}

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
trait WithPath<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> WithPath<T> for hdf5::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Hdf5 { path: path.to_path_buf(), source })
    }
}

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

pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Element type of the stored feature maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Dtype {
    #[default]
    F32,
    F16,
}

impl Dtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
        }
    }

    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "float32" | "f32" => Some(Dtype::F32),
            "float16" | "f16" => Some(Dtype::F16),
            _ => None,
        }
    }
}

/// Shape of one sample's feature map, channels last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl MapShape {
    /// Values per sample: H × W × C.
    pub fn len(self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for MapShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.height, self.width, self.channels)
    }
}

/// Everything that determines the cached values; two runs may share a cache only if equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub model_sha256: String,
    /// Side of the square network input, pixels.
    pub input_size: u32,
    /// Human-readable description of resize and scaling.
    pub preprocessing: String,
    /// JSON with every augmentation parameter and its unit.
    pub augmentation: String,
    pub seed: u64,
    /// Augmented copies per image (variants 1..=copies); 0 means originals only.
    pub copies: u32,
    pub dtype: Dtype,
    /// Version of the augmentation draw (random number generator and how parameters are drawn
    /// from it): caches whose draws differ must not be mixed. Caches made before it was recorded
    /// read as version 1, the algorithm they were made with.
    pub augmentation_version: u32,
    /// The backbone layer whose output the maps are (`mixed_10`: Keras' `include_top=False`
    /// output; `mixed_9`: one block earlier). Caches made before it was recorded read as
    /// `mixed_10`, the only layer incept extracted then.
    pub layer: String,
}

/// The augmentation version of caches that do not record one.
const UNRECORDED_AUGMENTATION_VERSION: u32 = 1;
/// The layer of caches that do not record one.
const UNRECORDED_LAYER: &str = "mixed_10";

impl Settings {
    /// Names (and values) of the fields in which `self` (the existing cache) and `wanted` differ.
    pub fn differences(&self, wanted: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, have: String, want: String| {
            if have != want {
                out.push(format!("{name}: cache has {have}, this run wants {want}"));
            }
        };
        check("model_sha256", self.model_sha256.clone(), wanted.model_sha256.clone());
        check("layer", self.layer.clone(), wanted.layer.clone());
        check("input_size", self.input_size.to_string(), wanted.input_size.to_string());
        check("preprocessing", self.preprocessing.clone(), wanted.preprocessing.clone());
        check("augmentation", self.augmentation.clone(), wanted.augmentation.clone());
        check("seed", self.seed.to_string(), wanted.seed.to_string());
        check("copies", self.copies.to_string(), wanted.copies.to_string());
        check("dtype", self.dtype.as_str().to_owned(), wanted.dtype.as_str().to_owned());
        check(
            "augmentation_version",
            self.augmentation_version.to_string(),
            wanted.augmentation_version.to_string(),
        );
        out
    }

    pub(crate) fn write_attributes(&self, file: &hdf5::File, path: &Path) -> Result<()> {
        write_string_attribute(file, "model_sha256", &self.model_sha256, path)?;
        write_scalar_attribute(file, "input_size", &self.input_size, path)?;
        write_string_attribute(file, "preprocessing", &self.preprocessing, path)?;
        write_string_attribute(file, "augmentation", &self.augmentation, path)?;
        write_scalar_attribute(file, "seed", &self.seed, path)?;
        write_scalar_attribute(file, "copies", &self.copies, path)?;
        write_string_attribute(file, "dtype", self.dtype.as_str(), path)?;
        write_scalar_attribute(file, "augmentation_version", &self.augmentation_version, path)?;
        write_string_attribute(file, "layer", &self.layer, path)?;
        write_string_attribute(file, "incept_version", env!("CARGO_PKG_VERSION"), path)
    }

    pub(crate) fn read_attributes(file: &hdf5::File, path: &Path) -> Result<Self> {
        let dtype_name = read_string_attribute(file, "dtype", path)?;
        let dtype = Dtype::parse(&dtype_name).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("unknown dtype attribute {dtype_name:?}"),
        })?;
        Ok(Settings {
            model_sha256: read_string_attribute(file, "model_sha256", path)?,
            input_size: read_scalar_attribute(file, "input_size", path)?,
            preprocessing: read_string_attribute(file, "preprocessing", path)?,
            augmentation: read_string_attribute(file, "augmentation", path)?,
            seed: read_scalar_attribute(file, "seed", path)?,
            copies: read_scalar_attribute(file, "copies", path)?,
            dtype,
            augmentation_version: if file.attr("augmentation_version").is_ok() {
                read_scalar_attribute(file, "augmentation_version", path)?
            } else {
                UNRECORDED_AUGMENTATION_VERSION
            },
            layer: if file.attr("layer").is_ok() {
                read_string_attribute(file, "layer", path)?
            } else {
                UNRECORDED_LAYER.to_owned()
            },
        })
    }
}

pub(crate) fn write_string_attribute(
    file: &hdf5::File,
    name: &str,
    value: &str,
    path: &Path,
) -> Result<()> {
    let value: VarLenUnicode = value.parse().map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("attribute {name} holds a NUL byte"),
    })?;
    file.new_attr::<VarLenUnicode>().create(name).at(path)?.write_scalar(&value).at(path)
}

fn write_scalar_attribute<T: hdf5::H5Type>(
    file: &hdf5::File,
    name: &str,
    value: &T,
    path: &Path,
) -> Result<()> {
    file.new_attr::<T>().create(name).at(path)?.write_scalar(value).at(path)
}

pub(crate) fn missing(path: &Path, what: &str) -> Error {
    Error::NotACache { path: path.to_path_buf(), missing: what.to_owned() }
}

pub(crate) fn read_string_attribute(file: &hdf5::File, name: &str, path: &Path) -> Result<String> {
    let attribute = file.attr(name).map_err(|_| missing(path, &format!("attribute {name}")))?;
    let value: VarLenUnicode = attribute.read_scalar().at(path)?;
    Ok(value.as_str().to_owned())
}

fn read_scalar_attribute<T: hdf5::H5Type>(file: &hdf5::File, name: &str, path: &Path) -> Result<T> {
    let attribute = file.attr(name).map_err(|_| missing(path, &format!("attribute {name}")))?;
    attribute.read_scalar().at(path)
}

pub(crate) fn read_strings(file: &hdf5::File, name: &str, path: &Path) -> Result<Vec<String>> {
    let dataset = file.dataset(name).map_err(|_| missing(path, name))?;
    let values: Vec<VarLenUnicode> = dataset.read_raw().at(path)?;
    Ok(values.iter().map(|v| v.as_str().to_owned()).collect())
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

fn write_feature_block(
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

fn create_features(
    file: &hdf5::File,
    dtype: Dtype,
    n: usize,
    shape: MapShape,
    compression: Compression,
    path: &Path,
) -> Result<hdf5::Dataset> {
    let mut builder = file.new_dataset_builder();
    if n > 0 {
        builder = builder.chunk((1, shape.height, shape.width, shape.channels)).shuffle();
        builder = match compression {
            Compression::Lzf => builder.lzf(),
            Compression::Deflate => builder.deflate(DEFLATE_LEVEL),
        };
    }
    let extent = (n, shape.height, shape.width, shape.channels);
    match dtype {
        Dtype::F32 => builder.empty::<f32>().shape(extent).create(FEATURES).at(path),
        Dtype::F16 => builder.empty::<half::f16>().shape(extent).create(FEATURES).at(path),
    }
}

#[cfg(test)]
mod tests;
