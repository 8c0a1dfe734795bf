//! The writer's segments: taking in those of earlier runs, counting rows (new ones are
//! written by `open_segment`).

use std::path::Path;

use super::{BASE_ATTRIBUTE, CacheWriter, remove_if_exists};
use crate::{
    Error, FEATURES, LEGACY_LINK_PREFIX, LEGACY_SEGMENT_TEMPORARY_SUFFIX, PARTS_SUFFIX, Result,
    SEGMENT_PREFIX, SEGMENT_SOURCE_PATHS, Settings, VARIANT, WithPath, io_error, map_shape_of,
    open_hdf5, read_i32, read_strings,
};
use crate::{canonical, with_suffix};

impl CacheWriter {
    /// Finds the segments left by earlier runs: deletes stale ones and takes in the pending ones
    /// of these settings (checked, their samples counted as done).
    pub(super) fn scan_segments(&mut self) -> Result<()> {
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
