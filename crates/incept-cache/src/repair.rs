//! `incept verify --repair`: what [`crate::verify`] found bad, replaced by maps made again from
//! the photos. Each piece with a bad row is written again as a new segment (its good chunks
//! copied as stored, the bad rows from the new maps), then a new index naming the new segments
//! replaces the old one; only then are the replaced pieces of the cache's own folder deleted. Every
//! file goes through [`incept_core::write_atomically_with`], so a kill at any moment leaves the old
//! cache or the repaired one, whole. A self-contained cache is written again as one file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use ndarray::ArrayView4;

use crate::chunks::copy_rows;
use crate::index::{Columns, PieceRef, Stamp, folder_of, write_common_attributes, write_index};
use crate::verify::{PieceReport, VerifyReport};
use crate::writer::BASE_ATTRIBUTE;
use crate::{
    Compression, Error, FEATURES, LOCK_SUFFIX, PARTS_SUFFIX, Result, SEGMENT_PREFIX, WithPath,
    canonical, create_features, io_error, open_hdf5, read_string_attribute, with_suffix,
    write_feature_block, write_string_attribute,
};

/// What a repair did.
#[derive(Clone, Debug, Default)]
pub struct RepairSummary {
    /// Rows whose maps were replaced by new ones.
    pub repaired: usize,
    /// Rows dropped (their photos are gone; `--drop-missing`).
    pub dropped: usize,
    /// New piece files (or the rewritten self-contained file).
    pub written: Vec<PathBuf>,
    /// Replaced pieces and stray files deleted.
    pub removed: Vec<PathBuf>,
}

/// Repairs the cache `report` describes: each bad row gets its map from `maps` ([H × W × C],
/// channels last, keyed by row of the cache) or is dropped if it is in `dropped`.
pub fn repair(
    report: &VerifyReport,
    maps: &HashMap<usize, Vec<f32>>,
    dropped: &HashSet<usize>,
) -> Result<RepairSummary> {
    let path = &report.cache;
    let _lock = incept_core::lock::WriterLock::acquire(&with_suffix(path, LOCK_SUFFIX), path)?;
    let file = open_hdf5(path)?;
    let content_id = read_string_attribute(&file, "content_id", path).ok();
    if content_id != report.content_id {
        return Err(Error::Corrupt {
            path: path.clone(),
            reason: "it changed while it was verified (another incept wrote it); verify again"
                .into(),
        });
    }
    if report.self_contained && report.columns_damaged {
        return Err(Error::Corrupt {
            path: path.clone(),
            reason: crate::verify::SELF_CONTAINED_COLUMNS.into(),
        });
    }
    let created = read_string_attribute(&file, "created", path).ok();
    let compression = read_string_attribute(&file, "compression", path)
        .ok()
        .and_then(|c| Compression::parse(&c))
        .unwrap_or_default();
    drop(file);
    if let Some(row) =
        report.bad_rows().into_iter().find(|r| !maps.contains_key(r) && !dropped.contains(r))
    {
        return Err(Error::Corrupt {
            path: path.clone(),
            reason: format!("row {row} is bad and has no new map to repair it with"),
        });
    }
    let repair = Repair { report, maps, dropped, compression };
    let mut columns = Columns::default();
    for (row, (photo, class, variant)) in report.keys.iter().enumerate() {
        if !dropped.contains(&row) {
            columns.push(class, photo, *variant);
        }
    }
    let stamp = Stamp {
        settings: &report.settings,
        created: created.as_deref(),
        compression,
        data_folder: report.data_folder.as_deref(),
        // The same maps bit for bit: runs trained on this content may go on with it.
        content_id: if dropped.is_empty() { report.content_id.as_deref() } else { None },
    };
    let mut summary =
        RepairSummary { repaired: maps.len(), dropped: dropped.len(), ..RepairSummary::default() };
    if report.self_contained {
        incept_core::write_atomically_with(path, |temporary| {
            let file = hdf5::File::create_excl(temporary).at(temporary)?;
            repair.fill(&file, temporary, &report.pieces)?;
            columns.write(&file, temporary)?;
            write_common_attributes(&file, stamp, temporary)?;
            file.flush().at(temporary)?;
            file.close().at(temporary)
        })?;
        summary.written.push(path.clone());
        return Ok(summary);
    }
    let parts = with_suffix(path, PARTS_SUFFIX);
    std::fs::create_dir_all(&parts).map_err(io_error(&parts))?;
    let mut next = next_segment_number(&parts)?;
    let mut pieces: Vec<PieceRef> = Vec::with_capacity(report.pieces.len());
    let mut replaced: Vec<PathBuf> = Vec::new();
    for piece in &report.pieces {
        if piece.bad_rows().is_empty() {
            pieces.push(PieceRef { path: piece.path.clone(), rows: piece.rows });
            continue;
        }
        replaced.push(piece.path.clone());
        let kept = (piece.start..piece.start + piece.rows).filter(|r| !dropped.contains(r)).count();
        if kept == 0 {
            continue;
        }
        let segment = parts.join(format!("{SEGMENT_PREFIX}{next:08}.h5"));
        next += 1;
        incept_core::write_atomically_with(&segment, |temporary| {
            repair.write_segment(temporary, piece, content_id.as_deref().unwrap_or_default())
        })?;
        pieces.push(PieceRef { path: segment.clone(), rows: kept });
        summary.written.push(segment);
    }
    let folder = folder_of(path).to_path_buf();
    incept_core::write_atomically_with(path, |temporary| {
        write_index(temporary, &folder, stamp, report.shape, &pieces, &columns)
    })?;
    // The new index is in place: what it no longer names can go, if it is this cache's own
    // (a merged index's damaged piece belongs to its shard, whose own index still names it).
    let own = canonical(&parts)?;
    let named: HashSet<PathBuf> = pieces.iter().filter_map(|p| canonical(&p.path).ok()).collect();
    for old in replaced.iter().chain(&report.stray) {
        let Ok(real) = canonical(old) else { continue };
        if real.parent() == Some(own.as_path()) && !named.contains(&real) {
            std::fs::remove_file(&real).map_err(io_error(&real))?;
            summary.removed.push(old.clone());
        }
    }
    incept_core::atomic::sync_folder(&parts)?;
    Ok(summary)
}

/// The next free segment number of a pieces folder.
fn next_segment_number(parts: &Path) -> Result<u64> {
    let mut next = 0;
    for entry in std::fs::read_dir(parts).map_err(io_error(parts))? {
        let name = entry.map_err(io_error(parts))?.file_name().to_string_lossy().into_owned();
        let number = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(".h5"))
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(number) = number {
            next = next.max(number + 1);
        }
    }
    Ok(next)
}

struct Repair<'a> {
    report: &'a VerifyReport,
    maps: &'a HashMap<usize, Vec<f32>>,
    dropped: &'a HashSet<usize>,
    compression: Compression,
}

impl Repair<'_> {
    /// Writes a segment holding `piece`'s kept rows, good ones copied, bad ones new.
    fn write_segment(&self, path: &Path, piece: &PieceReport, base: &str) -> Result<()> {
        let file = hdf5::File::create_excl(path).at(path)?;
        self.report.settings.write_attributes(&file, path)?;
        write_string_attribute(&file, BASE_ATTRIBUTE, base, path)?;
        self.fill(&file, path, std::slice::from_ref(piece))?;
        let rows = (piece.start..piece.start + piece.rows).filter(|r| !self.dropped.contains(r));
        let keys: Vec<&(String, String, u32)> = rows.map(|r| &self.report.keys[r]).collect();
        let sources: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let classes: Vec<String> = keys.iter().map(|k| k.1.clone()).collect();
        let variants: Vec<i32> = keys.iter().map(|k| k.2 as i32).collect();
        crate::segment_columns::write_segment_columns(&file, &sources, &classes, &variants, path)?;
        file.flush().at(path)?;
        file.close().at(path)
    }

    /// Creates `features` in `file` with the kept rows of `pieces`, in order: runs of good rows
    /// copied chunk by chunk as stored, bad rows written from their new maps.
    fn fill(&self, file: &hdf5::File, path: &Path, pieces: &[PieceReport]) -> Result<()> {
        let (dtype, shape) = (self.report.settings.dtype, self.report.shape);
        let total = pieces
            .iter()
            .flat_map(|p| p.start..p.start + p.rows)
            .filter(|r| !self.dropped.contains(r))
            .count();
        let target = create_features(file, dtype, total, shape, self.compression, path)?;
        let mut at = 0;
        for piece in pieces {
            let bad: HashSet<usize> = piece.bad_rows().into_iter().collect();
            let source = match piece.problem {
                Some(_) => None,
                None => {
                    let file = open_hdf5(&piece.path)?;
                    let dataset = file.dataset(FEATURES).at(&piece.path)?;
                    Some((file, dataset))
                }
            };
            // Good rows (local to the piece) waiting to be copied in one run.
            let mut run: Vec<usize> = Vec::new();
            let flush = |run: &mut Vec<usize>, at: &mut usize| -> Result<()> {
                if let (Some((_, dataset)), false) = (&source, run.is_empty()) {
                    copy_rows(dataset, &piece.path, run, &target, path, *at, dtype)?;
                    *at += run.len();
                    run.clear();
                }
                Ok(())
            };
            for row in piece.start..piece.start + piece.rows {
                if self.dropped.contains(&row) {
                    continue;
                }
                if !bad.contains(&row) {
                    run.push(row - piece.start);
                    continue;
                }
                flush(&mut run, &mut at)?;
                let map = self.maps.get(&row).ok_or_else(|| Error::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("row {row} is bad and has no new map to repair it with"),
                })?;
                let view =
                    ArrayView4::from_shape((1, shape.height, shape.width, shape.channels), map)
                        .map_err(|_| Error::Corrupt {
                            path: path.to_path_buf(),
                            reason: format!("the new map of row {row} is not {shape}"),
                        })?;
                write_feature_block(&target, dtype, at, view, path)?;
                at += 1;
            }
            flush(&mut run, &mut at)?;
        }
        Ok(())
    }
}
