//! The HDF5 feature cache of incept.
//!
//! # Format (a contract: the trainer, tests and outside scripts read it with h5py)
//! - `features`: [N, H, W, C] channels-last, float32 or float16, one chunk per sample, compressed
//!   losslessly ([`COMPRESSION`]).
//! - `labels` int32 [N] (index into `classes`), `source` int32 [N] (index into `sources`),
//!   `variant` int32 [N] (0 = the unaugmented image).
//! - `classes` [C] and `sources` [M] (paths relative to the data folder) as UTF-8 strings.
//! - Root attributes: see [`Settings`] plus `incept_version` and `created`.
//!
//! # Crash safety
//! HDF5 files are not journaled: a process killed while writing one can leave it unreadable. So
//! the cache file itself is never modified in place. Extraction writes complete *segments*
//! (small HDF5 files under `CACHE.h5.parts/`, each written to a temporary name and renamed), and
//! [`CacheWriter::finish`] merges the old cache and the segments into a new file that replaces the
//! old one by an atomic rename. A kill at any moment leaves the old cache intact plus whole
//! segments; the next run picks them up. Merging de-duplicates by (source, variant).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{Array1, Array4, ArrayView4, s};

mod reader;
pub use reader::Cache;

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
const MERGING_SUFFIX: &str = ".merging";
const SEGMENT_PREFIX: &str = "segment-";
/// Samples copied per block while merging: bounds memory (64 × 200 KiB for 5×5×2048 float32).
const MERGE_BLOCK: usize = 64;

/// The lossless compression of `features`: byte shuffle, then deflate at this level. Measured on
/// amid5 (5×5×2048 float32): see the README's "The feature cache" section.
pub const COMPRESSION: &str = "shuffle+deflate";
const DEFLATE_LEVEL: u8 = 1;

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
        "{path} was made with other settings ({differences}); rerun with the same settings, \
         choose another output, or pass --overwrite to replace it"
    )]
    SettingsDiffer { path: PathBuf, differences: String },
    #[error("{path}: feature maps of shape {found} cannot join a cache of shape {expected}")]
    ShapeDiffers { path: PathBuf, expected: MapShape, found: MapShape },
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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Element type of the stored feature maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
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
}

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
        check("input_size", self.input_size.to_string(), wanted.input_size.to_string());
        check("preprocessing", self.preprocessing.clone(), wanted.preprocessing.clone());
        check("augmentation", self.augmentation.clone(), wanted.augmentation.clone());
        check("seed", self.seed.to_string(), wanted.seed.to_string());
        check("copies", self.copies.to_string(), wanted.copies.to_string());
        check("dtype", self.dtype.as_str().to_owned(), wanted.dtype.as_str().to_owned());
        out
    }

    fn write_attributes(&self, file: &hdf5::File, path: &Path) -> Result<()> {
        write_string_attribute(file, "model_sha256", &self.model_sha256, path)?;
        write_scalar_attribute(file, "input_size", &self.input_size, path)?;
        write_string_attribute(file, "preprocessing", &self.preprocessing, path)?;
        write_string_attribute(file, "augmentation", &self.augmentation, path)?;
        write_scalar_attribute(file, "seed", &self.seed, path)?;
        write_scalar_attribute(file, "copies", &self.copies, path)?;
        write_string_attribute(file, "dtype", self.dtype.as_str(), path)?;
        write_string_attribute(file, "incept_version", env!("CARGO_PKG_VERSION"), path)
    }

    fn read_attributes(file: &hdf5::File, path: &Path) -> Result<Self> {
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
        })
    }
}

fn write_string_attribute(file: &hdf5::File, name: &str, value: &str, path: &Path) -> Result<()> {
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

fn missing(path: &Path, what: &str) -> Error {
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

fn write_strings(file: &hdf5::File, name: &str, values: &[String], path: &Path) -> Result<()> {
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
    compress: bool,
    path: &Path,
) -> Result<hdf5::Dataset> {
    let mut builder = file.new_dataset_builder();
    if compress && n > 0 {
        builder = builder.chunk((1, shape.height, shape.width, shape.channels));
        builder = builder.shuffle().deflate(DEFLATE_LEVEL);
    }
    let extent = (n, shape.height, shape.width, shape.channels);
    match dtype {
        Dtype::F32 => builder.empty::<f32>().shape(extent).create(FEATURES).at(path),
        Dtype::F16 => builder.empty::<half::f16>().shape(extent).create(FEATURES).at(path),
    }
}

/// One extracted sample on its way into the cache.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Path relative to the data folder, `/`-separated.
    pub source: String,
    pub class: String,
    pub variant: u32,
    /// # Shapes
    /// [H × W × C], channels last.
    pub features: Vec<f32>,
}

/// Where a not-yet-merged sample lives.
#[derive(Clone, Debug)]
struct SegmentRow {
    segment: usize,
    row: usize,
    source: String,
    class: String,
    variant: u32,
}

/// What [`CacheWriter::finish`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Samples in the cache afterwards.
    pub total: usize,
    /// Samples added by this merge.
    pub added: usize,
}

/// Adds samples to a cache crash-safely; see the crate docs.
#[derive(Debug)]
pub struct CacheWriter {
    path: PathBuf,
    parts: PathBuf,
    settings: Settings,
    shape: Option<MapShape>,
    done: HashSet<(String, u32)>,
    segments: Vec<PathBuf>,
    next_segment: u64,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl CacheWriter {
    /// Opens (or prepares) the cache at `path` for adding samples made with `settings`.
    ///
    /// Refuses, naming the differences, if the cache or pending segments were made with other
    /// settings, unless `overwrite` (which deletes them first).
    pub fn open(path: &Path, settings: Settings, overwrite: bool) -> Result<Self> {
        let parts = with_suffix(path, PARTS_SUFFIX);
        let merging = with_suffix(path, MERGING_SUFFIX);
        if overwrite {
            remove_if_exists(path)?;
            if parts.exists() {
                std::fs::remove_dir_all(&parts).map_err(io_error(&parts))?;
            }
        }
        // Left by a merge that was interrupted: the cache and the segments are still whole.
        remove_if_exists(&merging)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        let mut writer = CacheWriter {
            path: path.to_path_buf(),
            parts,
            settings,
            shape: None,
            done: HashSet::new(),
            segments: Vec::new(),
            next_segment: 0,
        };
        if path.exists() {
            let cache = Cache::open(path)?;
            writer.check_settings(&cache.settings, path)?;
            writer.shape = Some(cache.shape);
            writer.done = cache.keys();
        }
        writer.scan_segments()?;
        Ok(writer)
    }

    /// Accepts a cache (or segment) made with the same settings. The number of copies may differ:
    /// variant k of a photo depends on (seed, path, k) alone, so raising `--copies` only adds the
    /// new variants, and a smaller request is already satisfied; the larger count is kept.
    fn check_settings(&mut self, found: &Settings, path: &Path) -> Result<()> {
        let mut comparable = self.settings.clone();
        comparable.copies = found.copies;
        if found.copies == 0 || self.settings.copies == 0 {
            // Originals only carry no augmentation parameters to compare.
            comparable.augmentation = found.augmentation.clone();
        }
        let differences = found.differences(&comparable);
        if !differences.is_empty() {
            return Err(Error::SettingsDiffer {
                path: path.to_path_buf(),
                differences: differences.join("; "),
            });
        }
        if found.copies > self.settings.copies {
            self.settings.copies = found.copies;
            self.settings.augmentation = found.augmentation.clone();
        }
        Ok(())
    }

    fn scan_segments(&mut self) -> Result<()> {
        if !self.parts.exists() {
            return Ok(());
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.parts).map_err(io_error(&self.parts))? {
            let entry = entry.map_err(io_error(&self.parts))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A segment whose write was interrupted: never renamed, so never counted.
                remove_if_exists(&entry.path())?;
            } else if name.starts_with(SEGMENT_PREFIX) && name.ends_with(".h5") {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            let path = self.parts.join(&name);
            let number = name
                .trim_start_matches(SEGMENT_PREFIX)
                .trim_end_matches(".h5")
                .parse::<u64>()
                .unwrap_or(0);
            self.next_segment = self.next_segment.max(number + 1);
            let file = open_hdf5(&path)?;
            let settings = Settings::read_attributes(&file, &path)?;
            self.check_settings(&settings, &path)?;
            let (_, shape) = map_shape_of(&file.dataset(FEATURES).at(&path)?, &path)?;
            self.check_shape(shape, &path)?;
            let sources = read_strings(&file, SEGMENT_SOURCE_PATHS, &path)?;
            let variants = read_i32(&file, VARIANT, &path)?;
            for (source, variant) in sources.into_iter().zip(variants) {
                self.done.insert((source, variant as u32));
            }
            self.segments.push(path);
        }
        Ok(())
    }

    fn check_shape(&mut self, found: MapShape, path: &Path) -> Result<()> {
        match self.shape {
            Some(expected) if expected != found => {
                Err(Error::ShapeDiffers { path: path.to_path_buf(), expected, found })
            }
            _ => {
                self.shape = Some(found);
                Ok(())
            }
        }
    }

    /// Whether (source, variant) is already in the cache or a pending segment.
    pub fn is_done(&self, source: &str, variant: u32) -> bool {
        self.done.contains(&(source.to_owned(), variant))
    }

    /// Samples in the cache plus pending segments.
    pub fn done_count(&self) -> usize {
        self.done.len()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `samples` as one new segment, atomically (temporary name, then rename).
    pub fn write_segment(&mut self, samples: &[Sample], shape: MapShape) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.parts).map_err(io_error(&self.parts))?;
        let final_path = self.parts.join(format!("{SEGMENT_PREFIX}{:08}.h5", self.next_segment));
        self.check_shape(shape, &final_path)?;
        let temporary = with_suffix(&final_path, ".tmp");
        {
            let file = hdf5::File::create(&temporary).at(&temporary)?;
            self.settings.write_attributes(&file, &temporary)?;
            let dataset = create_features(
                &file,
                self.settings.dtype,
                samples.len(),
                shape,
                false,
                &temporary,
            )?;
            let mut block =
                Array4::<f32>::zeros((samples.len(), shape.height, shape.width, shape.channels));
            for (mut row, sample) in block.outer_iter_mut().zip(samples) {
                let values = ndarray::ArrayView3::from_shape(
                    (shape.height, shape.width, shape.channels),
                    &sample.features,
                )
                .map_err(|_| Error::Corrupt {
                    path: temporary.clone(),
                    reason: format!(
                        "sample {} has {} values, not {}",
                        sample.source,
                        sample.features.len(),
                        shape.len()
                    ),
                })?;
                row.assign(&values);
            }
            write_feature_block(&dataset, self.settings.dtype, 0, block.view(), &temporary)?;
            let sources: Vec<String> = samples.iter().map(|s| s.source.clone()).collect();
            let classes: Vec<String> = samples.iter().map(|s| s.class.clone()).collect();
            let variants: Vec<i32> = samples.iter().map(|s| s.variant as i32).collect();
            write_strings(&file, SEGMENT_SOURCE_PATHS, &sources, &temporary)?;
            write_strings(&file, SEGMENT_CLASS_NAMES, &classes, &temporary)?;
            file.new_dataset_builder()
                .with_data(&Array1::from(variants))
                .create(VARIANT)
                .at(&temporary)?;
            file.flush().at(&temporary)?;
        }
        sync_file(&temporary)?;
        std::fs::rename(&temporary, &final_path).map_err(io_error(&final_path))?;
        self.next_segment += 1;
        for sample in samples {
            self.done.insert((sample.source.clone(), sample.variant));
        }
        self.segments.push(final_path);
        Ok(())
    }

    /// Merges the cache and all pending segments into a new cache file that atomically
    /// replaces the old one, then deletes the segments.
    pub fn finish(self) -> Result<MergeSummary> {
        if self.segments.is_empty() {
            let total = if self.path.exists() { Cache::open(&self.path)?.len() } else { 0 };
            return Ok(MergeSummary { total, added: 0 });
        }
        let old = if self.path.exists() { Some(Cache::open(&self.path)?) } else { None };
        let mut present = old.as_ref().map(Cache::keys).unwrap_or_default();
        // Gather the new rows, de-duplicated, in a deterministic order.
        let mut segment_files = Vec::with_capacity(self.segments.len());
        let mut rows: Vec<SegmentRow> = Vec::new();
        for (index, path) in self.segments.iter().enumerate() {
            let file = open_hdf5(path)?;
            let sources = read_strings(&file, SEGMENT_SOURCE_PATHS, path)?;
            let classes = read_strings(&file, SEGMENT_CLASS_NAMES, path)?;
            let variants = read_i32(&file, VARIANT, path)?;
            for (row, ((source, class), variant)) in
                sources.into_iter().zip(classes).zip(variants).enumerate()
            {
                if present.insert((source.clone(), variant as u32)) {
                    rows.push(SegmentRow {
                        segment: index,
                        row,
                        source,
                        class,
                        variant: variant as u32,
                    });
                }
            }
            let dataset = file.dataset(FEATURES).at(path)?;
            segment_files.push((file, dataset));
        }
        rows.sort_by(|a, b| (&a.source, a.variant).cmp(&(&b.source, b.variant)));

        let Some(shape) = self.shape else {
            return Err(Error::Corrupt {
                path: self.parts.clone(),
                reason: "segments without feature maps".into(),
            });
        };
        let old_len = old.as_ref().map_or(0, Cache::len);
        let total = old_len + rows.len();

        // Class and source tables: old entries keep their indices where possible.
        let mut class_set: BTreeSet<String> = rows.iter().map(|r| r.class.clone()).collect();
        let mut sources: Vec<String> = Vec::new();
        if let Some(cache) = &old {
            class_set.extend(cache.classes.iter().cloned());
            sources.extend(cache.sources.iter().cloned());
        }
        let classes: Vec<String> = class_set.into_iter().collect();
        let class_index: HashMap<&str, i32> =
            classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as i32)).collect();
        let mut source_index: HashMap<String, i32> =
            sources.iter().enumerate().map(|(i, s)| (s.clone(), i as i32)).collect();
        for row in &rows {
            if !source_index.contains_key(&row.source) {
                source_index.insert(row.source.clone(), sources.len() as i32);
                sources.push(row.source.clone());
            }
        }

        let merging = with_suffix(&self.path, MERGING_SUFFIX);
        {
            let file = hdf5::File::create(&merging).at(&merging)?;
            let dtype = self.settings.dtype;
            let features = create_features(&file, dtype, total, shape, true, &merging)?;
            let mut labels = Vec::with_capacity(total);
            let mut source_column = Vec::with_capacity(total);
            let mut variants = Vec::with_capacity(total);
            if let Some(cache) = &old {
                let remap: Vec<i32> = cache
                    .classes
                    .iter()
                    .map(|c| class_index.get(c.as_str()).copied().unwrap_or(-1))
                    .collect();
                let mut start = 0;
                while start < old_len {
                    let count = MERGE_BLOCK.min(old_len - start);
                    let block = cache.read_block(start, count)?;
                    write_feature_block(&features, dtype, start, block.view(), &merging)?;
                    start += count;
                }
                labels.extend(cache.labels.iter().map(|&l| remap[l as usize]));
                source_column.extend_from_slice(&cache.source);
                variants.extend_from_slice(&cache.variant);
            }
            let mut block =
                Array4::<f32>::zeros((MERGE_BLOCK, shape.height, shape.width, shape.channels));
            for (chunk_index, chunk) in rows.chunks(MERGE_BLOCK).enumerate() {
                for (slot, row) in chunk.iter().enumerate() {
                    let (_, dataset) = &segment_files[row.segment];
                    let one = read_feature_block(
                        dataset,
                        dtype,
                        row.row,
                        1,
                        &self.segments[row.segment],
                    )?;
                    block.slice_mut(s![slot..slot + 1, .., .., ..]).assign(&one);
                    labels.push(class_index[row.class.as_str()]);
                    source_column.push(source_index[&row.source]);
                    variants.push(row.variant as i32);
                }
                let start = old_len + chunk_index * MERGE_BLOCK;
                write_feature_block(
                    &features,
                    dtype,
                    start,
                    block.slice(s![..chunk.len(), .., .., ..]),
                    &merging,
                )?;
            }
            for (name, values) in [(LABELS, labels), (SOURCE, source_column), (VARIANT, variants)] {
                file.new_dataset_builder()
                    .with_data(&Array1::from(values))
                    .create(name)
                    .at(&merging)?;
            }
            write_strings(&file, CLASSES, &classes, &merging)?;
            write_strings(&file, SOURCES, &sources, &merging)?;
            self.settings.write_attributes(&file, &merging)?;
            let created = old.as_ref().and_then(|c| c.created.clone()).unwrap_or_else(now_rfc3339);
            write_string_attribute(&file, "created", &created, &merging)?;
            write_string_attribute(&file, "compression", COMPRESSION, &merging)?;
            file.flush().at(&merging)?;
        }
        drop(old);
        drop(segment_files);
        sync_file(&merging)?;
        std::fs::rename(&merging, &self.path).map_err(io_error(&self.path))?;
        // The cache now holds every segment's rows; a kill before this line only leaves
        // duplicates that the next merge skips.
        std::fs::remove_dir_all(&self.parts).map_err(io_error(&self.parts))?;
        Ok(MergeSummary { total, added: rows.len() })
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io { path: path.to_path_buf(), source: error })
        }
        _ => Ok(()),
    }
}

fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io_error(path))
}

/// Current UTC time as RFC 3339, without a date library: seconds since the epoch, converted.
fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests;
