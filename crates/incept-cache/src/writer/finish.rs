//! Finishing a cache: a new index over the old pieces and pending segments, then clean-up.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{BASE_ATTRIBUTE, CacheWriter, MergeSummary, remove_if_exists};
use crate::canonical;
use crate::chunks::copy_rows;
use crate::index::{Columns, PieceRef, Stamp, folder_of, write_index};
use crate::{
    Cache, Error, FEATURES, LEGACY_LINK_PREFIX, MapShape, Result, SEGMENT_CLASS_NAMES,
    SEGMENT_PREFIX, SEGMENT_SOURCE_PATHS, VARIANT, WithPath, create_features, io_error,
    map_shape_of, open_hdf5, read_i32, read_strings, write_string_attribute,
};

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

impl CacheWriter {
    /// Makes the pending segments part of the cache: writes a new index naming the old pieces
    /// and the new segments (no feature map is read or rewritten) that atomically replaces the
    /// old index, then deletes what no index names any more.
    pub fn finish(mut self) -> Result<MergeSummary> {
        self.commit_segment()?;
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
                    data_folder: self
                        .data_folder
                        .as_deref()
                        .or(old.as_ref().and_then(|c| c.data_folder.as_deref())),
                    content_id: None,
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
        crate::segment_columns::write_segment_columns(&file, &sources, &classes, &variants, path)?;
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
