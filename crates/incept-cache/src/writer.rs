//! Adding samples to a cache: segments, the merge, the writer lock (see the crate docs).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array4};

use crate::chunks::copy_rows;
use crate::index::{Columns, PieceRef, Stamp, folder_of, write_index};
use crate::{
    Cache, Compression, Error, FEATURES, LEGACY_LINK_PREFIX, LEGACY_MERGING_SUFFIX,
    LEGACY_SEGMENT_TEMPORARY_SUFFIX, LOCK_SUFFIX, MapShape, PARTS_SUFFIX, Result,
    SEGMENT_CLASS_NAMES, SEGMENT_PREFIX, SEGMENT_SOURCE_PATHS, Settings, VARIANT, WithPath,
    create_features, io_error, map_shape_of, open_hdf5, read_i32, read_strings,
    write_feature_block, write_string_attribute, write_strings,
};
use crate::{canonical, with_suffix};

/// Segment attribute: the `content_id` of the index the segment was written on top of.
const BASE_ATTRIBUTE: &str = "base_content_id";

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

/// The rows of one pending segment that a finish adds.
struct Fresh {
    path: PathBuf,
    /// Row numbers in the segment.
    rows: Vec<usize>,
    /// Rows the segment holds.
    all: usize,
    /// (source, class, variant) of each of `rows`.
    samples: Vec<(String, String, u32)>,
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
    /// Segments written but not yet in the index (this run's and those of killed runs).
    segments: Vec<PathBuf>,
    /// Piece files the current index names (canonical paths): never touched.
    committed: HashSet<PathBuf>,
    /// `content_id` of the index this run adds to ("" for none): recorded in every segment, so
    /// a segment left by an earlier generation (a run killed while deleting what its new index
    /// no longer names) is recognised as stale, not taken for pending work.
    base: String,
    /// Whether the current index could be read (its piece list is known).
    index_readable: bool,
    compression: Compression,
    next_segment: u64,
    /// `--overwrite`: the old cache's samples are not kept; it is replaced at [`Self::finish`].
    replace: bool,
    /// The cache this run adds to (not with `--overwrite`), opened once: [`Self::finish`] takes
    /// its columns and pieces from it.
    existing: Option<Cache>,
    _lock: incept_core::lock::WriterLock,
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
        let folder = folder_of(path);
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
            committed: HashSet::new(),
            base: String::new(),
            index_readable: !path.exists(),
            compression: Compression::default(),
            next_segment: 0,
            replace: overwrite,
            existing: None,
            _lock: lock,
        };
        if path.exists() {
            match Cache::open(path) {
                Ok(cache) => {
                    writer.base = cache.content_id.clone().unwrap_or_default();
                    writer.index_readable = true;
                    for piece in cache.pieces().unwrap_or_default() {
                        writer.committed.insert(canonical(&piece.path)?);
                    }
                    if !overwrite {
                        writer.check_settings(&cache.settings, path)?;
                        writer.shape = Some(cache.shape);
                        writer.done = cache.keys();
                        writer.existing = Some(cache);
                    }
                }
                // An unreadable cache that is being replaced only needs no piece kept.
                Err(_) if overwrite => {}
                Err(error) => return Err(error),
            }
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
            } else if name.starts_with(LEGACY_LINK_PREFIX)
                && self.index_readable
                && !self.committed.contains(&canonical(&entry.path())?)
            {
                // A link made by a finish that was killed before its index was in place.
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
            if self.committed.contains(&canonical(&path)?) {
                continue;
            }
            let file = open_hdf5(&path)?;
            // Segments of incept 0.1.0 record no base: they are pending work.
            let base = crate::read_string_attribute(&file, BASE_ATTRIBUTE, &path).ok();
            if self.index_readable && base.is_some_and(|base| base != self.base) {
                // Written on top of an index that has since been replaced: its rows are in the
                // current index (packed) or were meant to go (replaced by --overwrite).
                drop(file);
                remove_if_exists(&path)?;
                continue;
            }
            let settings = Settings::read_attributes(&file, &path)?;
            if self.replace && !self.differences_from(&settings).is_empty() {
                // Pending work of the settings being replaced: deleted once the new index is
                // in place (see `finish`).
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

    /// The compression of the segments this writer writes from now on (pieces already written
    /// keep theirs; HDF5 records each piece's filters).
    pub fn set_compression(&mut self, compression: Compression) {
        self.compression = compression;
    }

    /// The sources of the samples in the cache and pending segments.
    pub fn done_sources(&self) -> impl Iterator<Item = &str> {
        self.done.iter().map(|(source, _)| source.as_str())
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
        write_string_attribute(&file, BASE_ATTRIBUTE, &self.base, path)?;
        // Compressed here, on the writer thread while inference goes on: the segment is a piece
        // of the finished cache as it is.
        let dataset = create_features(
            &file,
            self.settings.dtype,
            samples.len(),
            shape,
            self.compression,
            path,
        )?;
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

    /// Makes the pending segments part of the cache: writes a new index naming the old pieces
    /// and the new segments (no feature map is read or rewritten) that atomically replaces the
    /// old index, then deletes what no index names any more.
    pub fn finish(mut self) -> Result<MergeSummary> {
        if self.segments.is_empty() {
            let total = self.existing.as_ref().map_or(0, Cache::len);
            return Ok(MergeSummary { total, added: 0 });
        }
        let Some(shape) = self.shape else {
            return Err(Error::Corrupt {
                path: self.parts.clone(),
                reason: "segments without feature maps".into(),
            });
        };
        let old = self.existing.take();
        let mut columns = Columns::default();
        let mut pieces: Vec<PieceRef> = Vec::new();
        if let Some(cache) = &old {
            columns.extend_from(cache)?;
            match cache.pieces() {
                Some(old_pieces) => pieces.extend(old_pieces),
                // A self-contained cache (made by incept 0.1.0) becomes the first piece under a
                // second name: a hard link, so the old name stays whole until the index replaces it.
                None => pieces.push(PieceRef { path: self.link_legacy()?, rows: cache.len() }),
            }
        }
        let added_before = columns.len();
        // Each pending segment's rows that are new (a row can already be in the cache when
        // incept 0.1.0 was killed after its merge, before deleting its segments).
        let mut fresh: Vec<Fresh> = Vec::with_capacity(self.segments.len());
        for path in &self.segments {
            let file = open_hdf5(path)?;
            let sources = read_strings(&file, SEGMENT_SOURCE_PATHS, path)?;
            let classes = read_strings(&file, SEGMENT_CLASS_NAMES, path)?;
            let variants = read_i32(&file, VARIANT, path)?;
            let all = sources.len();
            let (rows_stored, _) = map_shape_of(&file.dataset(FEATURES).at(path)?, path)?;
            if classes.len() != all || variants.len() != all || rows_stored != all {
                return Err(Error::Corrupt {
                    path: path.clone(),
                    reason: format!(
                        "{rows_stored} maps for {all} sources, {} classes, {} variants; move the \
                         segment away and extract again",
                        classes.len(),
                        variants.len()
                    ),
                });
            }
            let rows: Vec<usize> = (0..all)
                .filter(|&row| columns.push(&classes[row], &sources[row], variants[row] as u32))
                .collect();
            let samples = rows
                .iter()
                .map(|&row| (sources[row].clone(), classes[row].clone(), variants[row] as u32))
                .collect();
            fresh.push(Fresh { path: path.clone(), rows, all, samples });
        }
        let added = columns.len() - added_before;
        let mut obsolete: Vec<PathBuf> = self.segments.clone();
        match fresh.as_slice() {
            _ if added == 0 => {}
            // One whole segment is a piece as it is.
            [only] if only.rows.len() == only.all => {
                pieces.push(PieceRef { path: only.path.clone(), rows: added });
                obsolete.clear();
            }
            // Several segments (or some rows to drop): packed into one piece, compressed chunks
            // copied as they are, so a cache holds one piece per run, not one per segment.
            _ => {
                let packed =
                    self.parts.join(format!("{SEGMENT_PREFIX}{:08}.h5", self.next_segment));
                incept_core::write_atomically_with(&packed, |temporary| {
                    self.write_packed(temporary, &fresh, added, shape)
                })?;
                pieces.push(PieceRef { path: packed, rows: added });
            }
        }
        let created = old.as_ref().and_then(|c| c.created.clone());
        let folder = folder_of(&self.path).to_path_buf();
        incept_core::write_atomically_with(&self.path, |temporary| {
            write_index(
                temporary,
                &folder,
                Stamp {
                    settings: &self.settings,
                    created: created.as_deref(),
                    compression: self.compression,
                },
                shape,
                &pieces,
                &columns,
            )
        })?;
        drop(old);
        // The index names every piece it needs; what it does not name can go. A kill before
        // this point leaves files that the next run deletes or picks up.
        let referenced: HashSet<PathBuf> =
            pieces.iter().map(|p| canonical(&p.path)).collect::<Result<_>>()?;
        for path in obsolete {
            remove_if_exists(&path)?;
        }
        if self.replace {
            self.remove_unreferenced(&referenced)?;
        }
        Ok(MergeSummary { total: columns.len(), added })
    }

    /// Writes one piece holding the fresh rows of every pending segment, in order.
    fn write_packed(
        &self,
        path: &Path,
        fresh: &[Fresh],
        total: usize,
        shape: MapShape,
    ) -> Result<()> {
        let file = hdf5::File::create_excl(path).at(path)?;
        self.settings.write_attributes(&file, path)?;
        write_string_attribute(&file, BASE_ATTRIBUTE, &self.base, path)?;
        let dtype = self.settings.dtype;
        let features = create_features(&file, dtype, total, shape, self.compression, path)?;
        let mut at = 0;
        for segment in fresh.iter().filter(|f| !f.rows.is_empty()) {
            let source_file = open_hdf5(&segment.path)?;
            let source = source_file.dataset(FEATURES).at(&segment.path)?;
            copy_rows(&source, &segment.path, &segment.rows, &features, path, at, dtype)?;
            at += segment.rows.len();
        }
        let samples: Vec<&(String, String, u32)> = fresh.iter().flat_map(|f| &f.samples).collect();
        let sources: Vec<String> = samples.iter().map(|s| s.0.clone()).collect();
        let classes: Vec<String> = samples.iter().map(|s| s.1.clone()).collect();
        let variants: Vec<i32> = samples.iter().map(|s| s.2 as i32).collect();
        write_strings(&file, SEGMENT_SOURCE_PATHS, &sources, path)?;
        write_strings(&file, SEGMENT_CLASS_NAMES, &classes, path)?;
        file.new_dataset_builder().with_data(&Array1::from(variants)).create(VARIANT).at(path)?;
        drop(features);
        file.flush().at(path)?;
        file.close().at(path)
    }

    /// Hard-links a self-contained cache into the pieces folder; see [`Self::finish`].
    fn link_legacy(&self) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.parts).map_err(io_error(&self.parts))?;
        let nanoseconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let link = self.parts.join(format!("{LEGACY_LINK_PREFIX}{nanoseconds}.h5"));
        std::fs::hard_link(&self.path, &link).map_err(io_error(&link))?;
        // The index about to name the link must not outlive it in a power cut.
        incept_core::atomic::sync_folder(&self.parts)?;
        Ok(link)
    }

    /// Deletes the piece files of this cache's folder that the new index does not name (those of
    /// the settings an `--overwrite` replaced).
    fn remove_unreferenced(&self, referenced: &HashSet<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(&self.parts).map_err(io_error(&self.parts))? {
            let entry = entry.map_err(io_error(&self.parts))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with(SEGMENT_PREFIX) || name.starts_with(LEGACY_LINK_PREFIX);
            if ours && name.ends_with(".h5") && !referenced.contains(&canonical(&entry.path())?) {
                remove_if_exists(&entry.path())?;
            }
        }
        Ok(())
    }
}

/// Rows in the segment files of the cache at `path`, finished into its index or not: the
/// progress of an unfinished cache (reads only each segment's `variant` column's length).
pub fn rows_on_disk(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(with_suffix(path, PARTS_SUFFIX)) else {
        return 0;
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(SEGMENT_PREFIX) && name.ends_with(".h5")
        })
        .filter_map(|entry| hdf5::File::open(entry.path()).ok())
        .filter_map(|file| file.dataset(VARIANT).ok().map(|d| d.size()))
        .sum()
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io { path: path.to_path_buf(), source: error })
        }
        _ => Ok(()),
    }
}
