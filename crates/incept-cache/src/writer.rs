//! Adding samples to a cache: segments, the merge, the writer lock (see the crate docs).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4, s};

use crate::{
    CLASSES, COMPRESSION, Cache, Error, FEATURES, LABELS, LEGACY_MERGING_SUFFIX,
    LEGACY_SEGMENT_TEMPORARY_SUFFIX, LOCK_SUFFIX, MERGE_BLOCK, MapShape, PARTS_SUFFIX, Result,
    SEGMENT_CLASS_NAMES, SEGMENT_PREFIX, SEGMENT_SOURCE_PATHS, SOURCE, SOURCES, Settings, VARIANT,
    WithPath, create_features, io_error, map_shape_of, open_hdf5, read_feature_block, read_i32,
    read_strings, write_feature_block, write_string_attribute, write_strings,
};

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

/// Adds samples to a cache crash-safely, as its only writer; see the crate docs.
#[derive(Debug)]
pub struct CacheWriter {
    path: PathBuf,
    parts: PathBuf,
    settings: Settings,
    shape: Option<MapShape>,
    done: HashSet<(String, u32)>,
    segments: Vec<PathBuf>,
    next_segment: u64,
    /// `--overwrite`: the old cache's samples are not kept; it is replaced at [`Self::finish`].
    replace: bool,
    _lock: incept_core::lock::WriterLock,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl CacheWriter {
    /// Opens (or prepares) the cache at `path` for adding samples made with `settings`, taking
    /// the writer lock first (a second writer is refused, naming the first).
    ///
    /// Refuses, naming the differences, if the cache or pending segments were made with other
    /// settings, unless `overwrite`: then the old cache stays readable until [`Self::finish`]
    /// replaces it, and pending segments of other settings are deleted (those of these settings,
    /// left by an interrupted `--overwrite` run, are kept).
    pub fn open(path: &Path, settings: Settings, overwrite: bool) -> Result<Self> {
        let parts = with_suffix(path, PARTS_SUFFIX);
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(io_error(folder))?;
        let lock = incept_core::lock::WriterLock::acquire(&with_suffix(path, LOCK_SUFFIX), path)?;
        // Leftovers of runs that were killed: never renamed into place, so never counted.
        remove_if_exists(&with_suffix(path, LEGACY_MERGING_SUFFIX))?;
        incept_core::atomic::remove_stale_temporaries(folder)?;
        incept_core::atomic::remove_stale_temporaries(&parts)?;
        let mut writer = CacheWriter {
            path: path.to_path_buf(),
            parts,
            settings,
            shape: None,
            done: HashSet::new(),
            segments: Vec::new(),
            next_segment: 0,
            replace: overwrite,
            _lock: lock,
        };
        if path.exists() && !overwrite {
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
        let differences = self.differences_from(found);
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

    fn differences_from(&self, found: &Settings) -> Vec<String> {
        let mut comparable = self.settings.clone();
        comparable.copies = found.copies;
        if found.copies == 0 || self.settings.copies == 0 {
            // Originals only carry no augmentation parameters to compare.
            comparable.augmentation = found.augmentation.clone();
        }
        found.differences(&comparable)
    }

    fn scan_segments(&mut self) -> Result<()> {
        if !self.parts.exists() {
            return Ok(());
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.parts).map_err(io_error(&self.parts))? {
            let entry = entry.map_err(io_error(&self.parts))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(SEGMENT_PREFIX) && name.ends_with(LEGACY_SEGMENT_TEMPORARY_SUFFIX) {
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
                .map_err(|_| Error::Corrupt {
                    path: path.clone(),
                    reason: "not a segment name incept writes (segment-NNNNNNNN.h5); move it away"
                        .into(),
                })?;
            self.next_segment = self.next_segment.max(number + 1);
            let file = open_hdf5(&path)?;
            let settings = Settings::read_attributes(&file, &path)?;
            if self.replace && !self.differences_from(&settings).is_empty() {
                // Pending work of the settings being replaced.
                drop(file);
                remove_if_exists(&path)?;
                continue;
            }
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

    /// Writes `samples` as one new segment, atomically.
    pub fn write_segment(&mut self, samples: &[Sample], shape: MapShape) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.parts).map_err(io_error(&self.parts))?;
        let final_path = self.parts.join(format!("{SEGMENT_PREFIX}{:08}.h5", self.next_segment));
        self.check_shape(shape, &final_path)?;
        incept_core::write_atomically_with(&final_path, |temporary| {
            self.write_segment_file(temporary, samples, shape)
        })?;
        self.next_segment += 1;
        for sample in samples {
            self.done.insert((sample.source.clone(), sample.variant));
        }
        self.segments.push(final_path);
        Ok(())
    }

    fn write_segment_file(&self, path: &Path, samples: &[Sample], shape: MapShape) -> Result<()> {
        let file = hdf5::File::create_excl(path).at(path)?;
        self.settings.write_attributes(&file, path)?;
        let dataset =
            create_features(&file, self.settings.dtype, samples.len(), shape, false, path)?;
        let mut block =
            Array4::<f32>::zeros((samples.len(), shape.height, shape.width, shape.channels));
        for (mut row, sample) in block.outer_iter_mut().zip(samples) {
            let values = ndarray::ArrayView3::from_shape(
                (shape.height, shape.width, shape.channels),
                &sample.features,
            )
            .map_err(|_| Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "sample {} has {} values, not {}",
                    sample.source,
                    sample.features.len(),
                    shape.len()
                ),
            })?;
            row.assign(&values);
        }
        write_feature_block(&dataset, self.settings.dtype, 0, block.view(), path)?;
        let sources: Vec<String> = samples.iter().map(|s| s.source.clone()).collect();
        let classes: Vec<String> = samples.iter().map(|s| s.class.clone()).collect();
        let variants: Vec<i32> = samples.iter().map(|s| s.variant as i32).collect();
        write_strings(&file, SEGMENT_SOURCE_PATHS, &sources, path)?;
        write_strings(&file, SEGMENT_CLASS_NAMES, &classes, path)?;
        file.new_dataset_builder().with_data(&Array1::from(variants)).create(VARIANT).at(path)?;
        drop(dataset);
        file.flush().at(path)?;
        // Closing (not just dropping) reports a failed final write.
        file.close().at(path)
    }

    /// Merges the cache and all pending segments into a new cache file that atomically
    /// replaces the old one, then deletes the segments.
    pub fn finish(self) -> Result<MergeSummary> {
        if self.segments.is_empty() {
            let total = if self.path.exists() && !self.replace {
                Cache::open(&self.path)?.len()
            } else {
                0
            };
            return Ok(MergeSummary { total, added: 0 });
        }
        let old =
            if self.path.exists() && !self.replace { Some(Cache::open(&self.path)?) } else { None };
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
        let merge = Merge { old: old.as_ref(), rows: &rows, segments: &segment_files, shape };
        let total = merge.total();
        incept_core::write_atomically_with(&self.path, |temporary| {
            merge.write(temporary, &self.settings, &self.segments)
        })?;
        drop(old);
        drop(segment_files);
        // The cache now holds every segment's rows; a kill before this line only leaves
        // duplicates that the next merge skips.
        std::fs::remove_dir_all(&self.parts).map_err(io_error(&self.parts))?;
        Ok(MergeSummary { total, added: rows.len() })
    }
}

/// What one merge combines: the old cache (if kept) and the new rows from the segments.
struct Merge<'a> {
    old: Option<&'a Cache>,
    rows: &'a [SegmentRow],
    segments: &'a [(hdf5::File, hdf5::Dataset)],
    shape: MapShape,
}

impl Merge<'_> {
    fn total(&self) -> usize {
        self.old.map_or(0, Cache::len) + self.rows.len()
    }

    /// Writes the merged cache to `path` (a temporary file the caller renames into place).
    fn write(&self, path: &Path, settings: &Settings, segment_paths: &[PathBuf]) -> Result<()> {
        let (old, rows, shape) = (self.old, self.rows, self.shape);
        let old_len = old.map_or(0, Cache::len);
        let total = self.total();
        // Class and source tables: old entries keep their indices where possible.
        let mut class_set: BTreeSet<String> = rows.iter().map(|r| r.class.clone()).collect();
        let mut sources: Vec<String> = Vec::new();
        if let Some(cache) = old {
            class_set.extend(cache.classes.iter().cloned());
            sources.extend(cache.sources.iter().cloned());
        }
        let classes: Vec<String> = class_set.into_iter().collect();
        let class_index: HashMap<&str, i32> =
            classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as i32)).collect();
        let mut source_index: HashMap<String, i32> =
            sources.iter().enumerate().map(|(i, s)| (s.clone(), i as i32)).collect();
        for row in rows {
            if !source_index.contains_key(&row.source) {
                source_index.insert(row.source.clone(), sources.len() as i32);
                sources.push(row.source.clone());
            }
        }

        let file = hdf5::File::create_excl(path).at(path)?;
        let dtype = settings.dtype;
        let features = create_features(&file, dtype, total, shape, true, path)?;
        let mut labels = Vec::with_capacity(total);
        let mut source_column = Vec::with_capacity(total);
        let mut variants = Vec::with_capacity(total);
        if let Some(cache) = old {
            // Every old class is in `class_index`: the set was built from them.
            let remap: Vec<i32> = cache.classes.iter().map(|c| class_index[c.as_str()]).collect();
            let mut start = 0;
            while start < old_len {
                let count = MERGE_BLOCK.min(old_len - start);
                let block = cache.read_block(start, count)?;
                write_feature_block(&features, dtype, start, block.view(), path)?;
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
                let (_, dataset) = &self.segments[row.segment];
                let one =
                    read_feature_block(dataset, dtype, row.row, 1, &segment_paths[row.segment])?;
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
                path,
            )?;
        }
        for (name, values) in [(LABELS, labels), (SOURCE, source_column), (VARIANT, variants)] {
            file.new_dataset_builder().with_data(&Array1::from(values)).create(name).at(path)?;
        }
        write_strings(&file, CLASSES, &classes, path)?;
        write_strings(&file, SOURCES, &sources, path)?;
        settings.write_attributes(&file, path)?;
        let created = old.and_then(|c| c.created.clone()).unwrap_or_else(incept_core::now_rfc3339);
        write_string_attribute(&file, "created", &created, path)?;
        // Two contents written within one second (an --overwrite right after the first run)
        // still differ: the time to the nanosecond, the process and the path.
        let nanoseconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let content_id = incept_core::stable_hash(&[
            &nanoseconds.to_le_bytes(),
            &std::process::id().to_le_bytes(),
            path.as_os_str().as_encoded_bytes(),
        ]);
        write_string_attribute(&file, "content_id", &format!("{content_id:016x}"), path)?;
        write_string_attribute(&file, "compression", COMPRESSION, path)?;
        drop(features);
        file.flush().at(path)?;
        file.close().at(path)
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
