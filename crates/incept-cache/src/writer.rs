//! Adding samples to a cache: segments, the merge, the writer lock (see the crate docs).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::index::folder_of;
use crate::{
    Cache, Compression, Error, LEGACY_MERGING_SUFFIX, LOCK_SUFFIX, MapShape, PARTS_SUFFIX, Result,
    Settings, io_error,
};
use crate::{canonical, with_suffix};

mod finish;
mod open_segment;
mod segments;

pub use segments::rows_on_disk;

/// Samples per segment unless [`CacheWriter::set_segment_samples`] says otherwise.
pub const DEFAULT_SEGMENT_SAMPLES: usize = 256;

/// Segment attribute: the `content_id` of the index the segment was written on top of.
pub(crate) const BASE_ATTRIBUTE: &str = "base_content_id";

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
    /// Where the photos are (absolute), recorded in the index for `incept verify --repair`.
    data_folder: Option<PathBuf>,
    next_segment: u64,
    /// The segment [`Self::append`] is filling, if any.
    open: Option<open_segment::OpenSegment>,
    /// Samples per segment filled by [`Self::append`].
    segment_samples: usize,
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
            data_folder: None,
            next_segment: 0,
            open: None,
            segment_samples: DEFAULT_SEGMENT_SAMPLES,
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
    /// Records the data folder the samples' photos are in (paths are relative to it).
    pub fn set_data_folder(&mut self, folder: &Path) -> Result<()> {
        self.data_folder = Some(std::path::absolute(folder).map_err(io_error(folder))?);
        Ok(())
    }

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
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io { path: path.to_path_buf(), source: error })
        }
        _ => Ok(()),
    }
}
