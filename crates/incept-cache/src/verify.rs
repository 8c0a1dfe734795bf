//! `incept verify`: every stored chunk of a cache checked against its checksum (without
//! decompressing it), every piece the index names opened and its columns compared with the
//! index's, and the pieces folder searched for files no index names. Nothing is written; see
//! [`crate::repair`] for what `--repair` does with the findings.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::checksum::checksum_filter_position;
use crate::chunks::{read_stored_chunk, stored_chunk_is_whole};
use crate::index::{self, PIECE_ROWS, PIECES, folder_of};
use crate::segment_columns::{COLUMNS_HASH_ATTRIBUTE, columns_hash};
use crate::writer::BASE_ATTRIBUTE;
use crate::{
    CLASSES, Dtype, Error, FEATURES, LABELS, LEGACY_LINK_PREFIX, MapShape, PARTS_SUFFIX, Result,
    SEGMENT_CLASS_NAMES, SEGMENT_PREFIX, SEGMENT_SOURCE_PATHS, SOURCE, SOURCES, Settings, VARIANT,
    WithPath, canonical, map_shape_of, open_hdf5, read_checked_block, read_i32,
    read_string_attribute, read_strings, with_suffix,
};

/// The problem of a self-contained file whose columns are damaged.
pub(crate) const SELF_CONTAINED_COLUMNS: &str = "its columns (each row's photo, class and variant) \
     are damaged, and a self-contained file holds no other record of them: make it again (`incept \
     merge --copy` from the shards, or `incept extract`)";

/// Rows read at a time from a piece without checksums (decompressed to find damage).
const DECODED_ROWS: usize = 64;

/// What a row of a cache is: (photo, class, variant).
pub type RowKey = (String, String, u32);

/// One piece as verified.
#[derive(Clone, Debug)]
pub struct PieceReport {
    pub path: PathBuf,
    /// Its first row in the cache.
    pub start: usize,
    pub rows: usize,
    /// Whether its chunks carry checksums (pieces of earlier versions do not: damage inside
    /// their compressed bytes is found only where it breaks decompression).
    pub checksummed: bool,
    /// Why none of its rows can be used (missing, unreadable, another shape), if so.
    pub problem: Option<String>,
    /// Rows of the cache whose maps fail their checksum or cannot be read.
    pub damaged: Vec<usize>,
    /// Rows of the cache whose photo, class or variant in the piece differ from the index's.
    pub disagreeing: Vec<usize>,
}

impl PieceReport {
    /// Every row of the cache this piece cannot give back as it was written.
    pub fn bad_rows(&self) -> Vec<usize> {
        if self.problem.is_some() {
            return (self.start..self.start + self.rows).collect();
        }
        let mut rows: Vec<usize> = self.damaged.iter().chain(&self.disagreeing).copied().collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    }
}

/// Everything `incept verify` found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub cache: PathBuf,
    pub settings: Settings,
    pub shape: MapShape,
    pub content_id: Option<String>,
    /// A self-contained file (format 1, `merge --copy`): the file is its only piece.
    pub self_contained: bool,
    /// The index's rows: (photo, class, variant) of each.
    pub keys: Vec<RowKey>,
    pub pieces: Vec<PieceReport>,
    /// Files of the pieces folder that no index names and no run will take up.
    pub stray: Vec<PathBuf>,
    /// Segments of a run that was stopped before it finished: the next `extract` takes them up.
    pub pending: Vec<PathBuf>,
    /// The recorded data folder (absolute), if any.
    pub data_folder: Option<PathBuf>,
    /// The index's columns did not match their hash; `keys` were rebuilt from the pieces' own
    /// records (each checked against its piece's hash), and a repair writes them into the index.
    pub columns_damaged: bool,
}

impl VerifyReport {
    /// Rows (of the cache) that cannot be given back as written, sorted.
    pub fn bad_rows(&self) -> Vec<usize> {
        self.pieces.iter().flat_map(PieceReport::bad_rows).collect()
    }

    /// Rows in pieces without checksums: verified only as far as they decompress.
    pub fn unchecked_rows(&self) -> usize {
        self.pieces.iter().filter(|p| !p.checksummed && p.problem.is_none()).map(|p| p.rows).sum()
    }

    /// No bad row, no damaged column and no stray file.
    pub fn is_clean(&self) -> bool {
        self.pieces.iter().all(|p| p.bad_rows().is_empty())
            && self.stray.is_empty()
            && !self.columns_damaged
    }
}

/// Verifies the cache at `path`; `progress` is told of each row checked. An error only when the
/// index itself cannot be read (then nothing about its pieces can be said).
pub fn verify(path: &Path, progress: &dyn Fn(u64)) -> Result<VerifyReport> {
    let file = open_hdf5(path)?;
    let settings = Settings::read_attributes(&file, path)?;
    let features = file.dataset(FEATURES).map_err(|_| crate::missing(path, FEATURES))?;
    let (total, shape) = map_shape_of(&features, path)?;
    // The index's own columns, if they are whole (they match the hash written with them).
    let whole_keys = index_keys(&file, path, total)
        .ok()
        .filter(|keys| crate::segment_columns::matches_recorded(&file, key_refs(keys)));
    let content_id = read_string_attribute(&file, "content_id", path).ok();
    let data_folder = read_string_attribute(&file, index::DATA_FOLDER_ATTRIBUTE, path)
        .ok()
        .map(|relative| std::path::absolute(folder_of(path).join(relative)))
        .transpose()
        .map_err(crate::io_error(path))?;
    let self_contained = !file.link_exists(PIECES);
    let listed: Vec<(PathBuf, usize)> = if self_contained {
        vec![(path.to_path_buf(), total)]
    } else {
        let names = read_strings(&file, PIECES, path)?;
        let rows: Vec<u64> = file
            .dataset(PIECE_ROWS)
            .map_err(|_| crate::missing(path, PIECE_ROWS))?
            .read_raw()
            .at(path)?;
        if names.len() != rows.len() || rows.iter().sum::<u64>() != total as u64 {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!(
                    "its piece list ({} names, {} row counts summing to {}) does not match its \
                     {total} rows; make the cache again",
                    names.len(),
                    rows.len(),
                    rows.iter().sum::<u64>()
                ),
            });
        }
        let folder = folder_of(path);
        names.iter().zip(rows).map(|(name, rows)| (folder.join(name), rows as usize)).collect()
    };
    drop(features);
    drop(file);
    let columns_damaged = whole_keys.is_none();
    let (keys, pieces) = match whole_keys {
        // No other record: every row is reported, as far as the columns still read.
        None if self_contained => {
            progress(total as u64);
            let whole_file = PieceReport {
                path: path.to_path_buf(),
                start: 0,
                rows: total,
                checksummed: false,
                problem: Some(SELF_CONTAINED_COLUMNS.into()),
                damaged: Vec::new(),
                disagreeing: Vec::new(),
            };
            (index_keys_unchecked(path, total), vec![whole_file])
        }
        whole_keys => {
            let keys = match whole_keys {
                Some(keys) => keys,
                None => keys_from_pieces(path, &listed)?,
            };
            let mut pieces = Vec::with_capacity(listed.len());
            let mut start = 0;
            for (piece, rows) in listed {
                let rows_keys = &keys[start..start + rows];
                let expected = Expected { shape, dtype: settings.dtype, keys: rows_keys };
                pieces.push(check_piece(&piece, start, rows, &expected, progress));
                start += rows;
            }
            (keys, pieces)
        }
    };
    let (stray, pending) = if self_contained {
        (Vec::new(), Vec::new())
    } else {
        unnamed_files(path, &pieces, content_id.as_deref())?
    };
    Ok(VerifyReport {
        columns_damaged,
        cache: path.to_path_buf(),
        settings,
        shape,
        content_id,
        self_contained,
        keys,
        pieces,
        stray,
        pending,
        data_folder,
    })
}

/// The rows as the damaged columns still say (for the table of a file that must be made again),
/// `?` where they say nothing.
fn index_keys_unchecked(path: &Path, total: usize) -> Vec<RowKey> {
    let unknown = || (String::from("?"), String::from("?"), 0);
    let Ok(file) = open_hdf5(path) else { return vec![unknown(); total] };
    let read = || -> Result<Vec<RowKey>> {
        let classes = read_strings(&file, CLASSES, path)?;
        let sources = read_strings(&file, SOURCES, path)?;
        let (labels, source, variant) = (
            read_i32(&file, LABELS, path)?,
            read_i32(&file, SOURCE, path)?,
            read_i32(&file, VARIANT, path)?,
        );
        Ok((0..total)
            .map(|row| {
                let photo = source.get(row).and_then(|&s| sources.get(usize::try_from(s).ok()?));
                let class = labels.get(row).and_then(|&c| classes.get(usize::try_from(c).ok()?));
                let variant = variant.get(row).and_then(|&v| u32::try_from(v).ok()).unwrap_or(0);
                (
                    photo.cloned().unwrap_or_else(|| "?".into()),
                    class.cloned().unwrap_or_else(|| "?".into()),
                    variant,
                )
            })
            .collect())
    };
    read().unwrap_or_else(|_| vec![unknown(); total])
}

/// Rows as the `(photo, class, variant)` references [`crate::segment_columns`] hashes.
fn key_refs(keys: &[RowKey]) -> impl Iterator<Item = (&str, &str, u32)> {
    keys.iter().map(|(photo, class, variant)| (photo.as_str(), class.as_str(), *variant))
}

/// The rows of an index whose own columns are damaged, from its pieces' records: each piece must
/// have a `columns_hash` its record matches, or nothing can be trusted.
fn keys_from_pieces(path: &Path, listed: &[(PathBuf, usize)]) -> Result<Vec<RowKey>> {
    let cannot = |piece: &Path, why: &str| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!(
            "its columns (each row's photo, class and variant) are damaged, and piece {} {why}, \
             so they cannot be rebuilt; make the cache again",
            piece.display()
        ),
    };
    let mut keys = Vec::new();
    for (piece, rows) in listed {
        let file = open_hdf5(piece).map_err(|_| cannot(piece, "cannot be read"))?;
        let found = piece_keys(&file, piece, *rows)
            .map_err(|_| cannot(piece, "has no whole record of its rows"))?;
        let hashed = crate::segment_columns::recorded_columns_hash(&file).is_some();
        if !hashed || !crate::segment_columns::matches_recorded(&file, key_refs(&found)) {
            return Err(cannot(piece, "has no record of its rows that its hash confirms"));
        }
        keys.extend(found);
    }
    Ok(keys)
}

/// The index's rows as (photo, class, variant), its columns checked against each other.
fn index_keys(file: &hdf5::File, path: &Path, total: usize) -> Result<Vec<RowKey>> {
    let classes = read_strings(file, CLASSES, path)?;
    let sources = read_strings(file, SOURCES, path)?;
    let labels = read_i32(file, LABELS, path)?;
    let source = read_i32(file, SOURCE, path)?;
    let variant = read_i32(file, VARIANT, path)?;
    keys_of(&classes, &sources, &labels, &source, &variant, total).map_err(|reason| {
        Error::Corrupt { path: path.to_path_buf(), reason: format!("{reason}; make it again") }
    })
}

fn keys_of(
    classes: &[String],
    sources: &[String],
    labels: &[i32],
    source: &[i32],
    variant: &[i32],
    total: usize,
) -> std::result::Result<Vec<RowKey>, String> {
    if labels.len() != total || source.len() != total || variant.len() != total {
        return Err(format!(
            "its columns hold {}, {} and {} rows, `features` {total}",
            labels.len(),
            source.len(),
            variant.len()
        ));
    }
    (0..total)
        .map(|row| {
            let class = usize::try_from(labels[row]).ok().and_then(|c| classes.get(c));
            let photo = usize::try_from(source[row]).ok().and_then(|s| sources.get(s));
            match (photo, class, u32::try_from(variant[row])) {
                (Some(photo), Some(class), Ok(variant)) => {
                    Ok((photo.clone(), class.clone(), variant))
                }
                _ => Err(format!("row {row} names a class, photo or variant that does not exist")),
            }
        })
        .collect()
}

/// What a piece must hold.
struct Expected<'a> {
    shape: MapShape,
    dtype: Dtype,
    /// The index's rows this piece holds.
    keys: &'a [RowKey],
}

fn check_piece(
    path: &Path,
    start: usize,
    rows: usize,
    expected: &Expected<'_>,
    progress: &dyn Fn(u64),
) -> PieceReport {
    let mut report = PieceReport {
        path: path.to_path_buf(),
        start,
        rows,
        checksummed: false,
        problem: None,
        damaged: Vec::new(),
        disagreeing: Vec::new(),
    };
    if let Err(problem) = check_piece_inner(&mut report, expected, progress) {
        report.problem = Some(problem);
    }
    report
}

/// Fills `report`; an `Err` says why the whole piece is unusable.
fn check_piece_inner(
    report: &mut PieceReport,
    expected: &Expected<'_>,
    progress: &dyn Fn(u64),
) -> std::result::Result<(), String> {
    let path = report.path.clone();
    if !path.exists() {
        progress(report.rows as u64);
        return Err("missing".into());
    }
    let file = open_hdf5(&path).map_err(|e| format!("unreadable ({e})"))?;
    let dataset = file.dataset(FEATURES).map_err(|_| "has no `features`".to_owned())?;
    let (rows, shape) = map_shape_of(&dataset, &path).map_err(|e| e.to_string())?;
    let element = dataset.dtype().map(|t| t.size()).unwrap_or(0);
    if rows != report.rows || shape != expected.shape || element != expected.dtype.size() {
        return Err(format!(
            "holds {rows} maps of {shape} ({element}-byte values), the index expects {} of {} ({})",
            report.rows,
            expected.shape,
            expected.dtype.as_str()
        ));
    }
    let checksum_bit = checksum_filter_position(&dataset);
    report.checksummed = checksum_bit.is_some();
    let start = report.start;
    if report.checksummed {
        hdf5::sync::sync(|| {
            let mut buffer = Vec::new();
            for row in 0..rows {
                let whole = read_stored_chunk(&dataset, &path, row, &mut buffer)
                    .is_ok_and(|filters| stored_chunk_is_whole(&buffer, filters, checksum_bit));
                if !whole {
                    report.damaged.push(start + row);
                }
                progress(1);
            }
        });
    } else {
        for from in (0..rows).step_by(DECODED_ROWS) {
            let count = DECODED_ROWS.min(rows - from);
            match read_checked_block(&dataset, expected.dtype, from, count, &path) {
                Ok(_) => {}
                Err(Error::Damaged { rows, .. }) => {
                    report.damaged.extend(rows.into_iter().map(|row| start + row));
                }
                Err(_) => report.damaged.extend(start + from..start + from + count),
            }
            progress(count as u64);
        }
    }
    // The hash first: it needs no variable-length string of the piece (see segment_columns).
    let recorded =
        file.attr(COLUMNS_HASH_ATTRIBUTE).and_then(|attribute| attribute.read_scalar::<u64>()).ok();
    let expected_hash = columns_hash(key_refs(expected.keys));
    match recorded {
        Some(hash) if hash == expected_hash => return Ok(()),
        Some(_) => {
            report.disagreeing.extend(start..start + rows);
            return Ok(());
        }
        None => {}
    }
    let keys = piece_keys(&file, &path, rows).map_err(|e| format!("its columns: {e}"))?;
    report.disagreeing = keys
        .iter()
        .zip(expected.keys)
        .enumerate()
        .filter(|(_, (found, wanted))| found != wanted)
        .map(|(row, _)| start + row)
        .collect();
    Ok(())
}

/// A piece's own record of its rows: a segment's per-row columns, or a self-contained cache's.
fn piece_keys(file: &hdf5::File, path: &Path, rows: usize) -> Result<Vec<RowKey>> {
    if file.link_exists(SEGMENT_SOURCE_PATHS) {
        let sources = read_strings(file, SEGMENT_SOURCE_PATHS, path)?;
        let classes = read_strings(file, SEGMENT_CLASS_NAMES, path)?;
        let variants = read_i32(file, VARIANT, path)?;
        if sources.len() != rows || classes.len() != rows || variants.len() != rows {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("columns of {} rows for {rows} maps", sources.len()),
            });
        }
        return Ok(sources
            .into_iter()
            .zip(classes)
            .zip(variants)
            .map(|((source, class), variant)| (source, class, variant as u32))
            .collect());
    }
    index_keys(file, path, rows)
}

/// Files of the pieces folder that the index does not name: pending segments (written on top of
/// this very index by a run that was stopped) and stray ones (everything else).
fn unnamed_files(
    path: &Path,
    pieces: &[PieceReport],
    content_id: Option<&str>,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let parts = with_suffix(path, PARTS_SUFFIX);
    let (mut stray, mut pending) = (Vec::new(), Vec::new());
    if !parts.is_dir() {
        return Ok((stray, pending));
    }
    let named: HashSet<PathBuf> =
        pieces.iter().filter_map(|p| std::fs::canonicalize(&p.path).ok()).collect();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&parts)
        .map_err(crate::io_error(&parts))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ours = name.starts_with(SEGMENT_PREFIX) || name.starts_with(LEGACY_LINK_PREFIX);
        if !ours || !name.ends_with(".h5") || named.contains(&canonical(&entry)?) {
            continue;
        }
        let base = hdf5::File::open(&entry)
            .ok()
            .and_then(|file| read_string_attribute(&file, BASE_ATTRIBUTE, &entry).ok());
        // Segments of incept 0.1.0 record no base: the writer takes them up as pending work.
        // A damaged one is stray: its samples are extracted again, not taken up.
        if name.starts_with(SEGMENT_PREFIX)
            && (base.is_none() || base.as_deref() == content_id)
            && chunks_whole(&entry)
        {
            pending.push(entry);
        } else {
            stray.push(entry);
        }
    }
    Ok((stray, pending))
}

/// Whether every stored chunk of the `features` of the file at `path` opens and passes its
/// checksum (a file without checksums passes if it opens).
fn chunks_whole(path: &Path) -> bool {
    let Ok(file) = hdf5::File::open(path) else { return false };
    let Ok(dataset) = file.dataset(FEATURES) else { return false };
    let Ok((rows, _)) = map_shape_of(&dataset, path) else { return false };
    let checksum_bit = checksum_filter_position(&dataset);
    hdf5::sync::sync(|| {
        let mut buffer = Vec::new();
        (0..rows).all(|row| {
            read_stored_chunk(&dataset, path, row, &mut buffer)
                .is_ok_and(|filters| stored_chunk_is_whole(&buffer, filters, checksum_bit))
        })
    })
}
