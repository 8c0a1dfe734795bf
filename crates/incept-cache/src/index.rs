//! The index layout of a cache (format 2): a small HDF5 file whose `features` is a virtual
//! dataset over immutable *piece* files (see the crate docs). This module writes indexes and opens
//! their pieces; [`crate::Cache`] reads both layouts.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use ndarray::{Array1, Array4, s};

use crate::segment_columns::columns_hash;

use crate::{
    CLASSES, Compression, Dtype, Error, FEATURES, LABELS, MapShape, Result, SOURCE, SOURCES,
    Settings, VARIANT, WithPath, io_error, map_shape_of, open_hdf5, read_checked_block,
    write_string_attribute, write_strings,
};

/// Piece files of an index, relative to the index's folder (`/`-separated).
pub const PIECES: &str = "pieces";
/// Rows of each piece, in index order.
pub const PIECE_ROWS: &str = "piece_rows";
/// Root attribute: 2 for an index over pieces; absent (format 1) for a self-contained file.
pub const FORMAT_VERSION_ATTRIBUTE: &str = "format_version";
pub const INDEX_FORMAT_VERSION: u32 = 2;
/// Root attribute: the data folder the photos were read from, relative to the cache's folder
/// (`/`-separated); what `incept verify --repair` re-extracts damaged rows from.
pub(crate) const DATA_FOLDER_ATTRIBUTE: &str = "data_folder";

/// One piece of an index: a file whose `features` dataset holds `rows` consecutive samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceRef {
    /// Absolute (or caller-relative) path of the piece file.
    pub path: PathBuf,
    pub rows: usize,
}

/// An open piece: its rows start at `start` in the cache.
#[derive(Debug)]
pub(crate) struct OpenPiece {
    pub(crate) path: PathBuf,
    pub(crate) start: usize,
    pub(crate) rows: usize,
    pub(crate) dataset: hdf5::Dataset,
    _file: hdf5::File,
}

/// Opens every piece an index names, checking each against the index: a piece that is missing,
/// unreadable or of another shape is an error here, never zeros later (a virtual dataset would
/// silently read a missing source as its fill value).
pub(crate) fn open_pieces(
    index: &hdf5::File,
    index_path: &Path,
    shape: MapShape,
    dtype: Dtype,
) -> Result<Vec<OpenPiece>> {
    let names = crate::read_strings(index, PIECES, index_path)?;
    let rows: Vec<u64> = index
        .dataset(PIECE_ROWS)
        .map_err(|_| crate::missing(index_path, PIECE_ROWS))?
        .read_raw()
        .at(index_path)?;
    let corrupt = |reason: String| Error::Corrupt { path: index_path.to_path_buf(), reason };
    if names.len() != rows.len() {
        return Err(corrupt(format!("{} pieces but {} row counts", names.len(), rows.len())));
    }
    let total: u64 = rows.iter().sum();
    let expected = index.dataset(FEATURES).map(|d| d.shape().first().copied().unwrap_or(0));
    if expected.as_ref().ok() != Some(&(total as usize)) {
        return Err(corrupt(format!("its pieces hold {total} rows, `features` {expected:?}")));
    }
    let folder = folder_of(index_path);
    let mut pieces = Vec::with_capacity(names.len());
    let mut start = 0;
    for (name, rows) in names.iter().zip(rows) {
        let path = folder.join(name);
        if !path.exists() {
            return Err(Error::PieceMissing { index: index_path.to_path_buf(), piece: path });
        }
        let file = open_hdf5(&path)?;
        let dataset = file.dataset(FEATURES).map_err(|_| crate::missing(&path, FEATURES))?;
        let (found_rows, found_shape) = map_shape_of(&dataset, &path)?;
        if found_shape != shape || found_rows != rows as usize {
            return Err(corrupt(format!(
                "piece {} holds {found_rows} maps of {found_shape}, the index expects {rows} of \
                 {shape}",
                path.display()
            )));
        }
        if dataset.dtype().at(&path)?.size() != dtype.size() {
            return Err(corrupt(format!("piece {} is not {}", path.display(), dtype.as_str())));
        }
        pieces.push(OpenPiece { path, start, rows: rows as usize, dataset, _file: file });
        start += rows as usize;
    }
    Ok(pieces)
}

/// Reads rows `start..start + count` across pieces.
///
/// # Shapes
/// Returns [count, H, W, C].
pub(crate) fn read_across(
    pieces: &[OpenPiece],
    dtype: Dtype,
    shape: MapShape,
    start: usize,
    count: usize,
) -> Result<Array4<f32>> {
    // The piece holding `start` (pieces are sorted by start).
    let first = pieces.partition_point(|p| p.start + p.rows <= start);
    // Rows of a piece named in an error are made rows of the cache.
    let in_cache = |piece: &OpenPiece| {
        let offset = piece.start;
        move |error: Error| match error {
            Error::Damaged { piece, rows, cache, photos } => Error::Damaged {
                piece,
                rows: rows.into_iter().map(|row| row + offset).collect(),
                cache,
                photos,
            },
            other => other,
        }
    };
    if let Some(piece) = pieces.get(first).filter(|p| start + count <= p.start + p.rows) {
        return read_checked_block(&piece.dataset, dtype, start - piece.start, count, &piece.path)
            .map_err(in_cache(piece));
    }
    let mut out = Array4::<f32>::zeros((count, shape.height, shape.width, shape.channels));
    let mut done = 0;
    for piece in &pieces[first..] {
        if done == count {
            break;
        }
        let from = start + done - piece.start;
        let take = (piece.rows - from).min(count - done);
        let block = read_checked_block(&piece.dataset, dtype, from, take, &piece.path)
            .map_err(in_cache(piece))?;
        out.slice_mut(s![done..done + take, .., .., ..]).assign(&block);
        done += take;
    }
    Ok(out)
}

/// The folder a path lives in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `target` relative to the folder `from`, both made absolute first; `/`-separated so an index
/// moves with its pieces and reads the same on every system h5py runs on.
pub fn relative_path(target: &Path, from: &Path) -> Result<String> {
    let absolute = |path: &Path| -> Result<PathBuf> {
        let path = std::path::absolute(path).map_err(io_error(path))?;
        // Lexical clean-up of `.` and `..` (no symlinks resolved: the user's layout is kept).
        let mut clean = PathBuf::new();
        for component in path.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    clean.pop();
                }
                other => clean.push(other),
            }
        }
        Ok(clean)
    };
    let target = absolute(target)?;
    let from = absolute(from)?;
    let target_parts: Vec<_> = target.components().collect();
    let from_parts: Vec<_> = from.components().collect();
    let common = target_parts.iter().zip(&from_parts).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from_parts.len() - common];
    for component in &target_parts[common..] {
        parts.push(component.as_os_str().to_string_lossy().into_owned());
    }
    Ok(parts.join("/"))
}

/// The per-sample columns of a cache under construction: every row's class, source and variant,
/// with each (source, variant) once.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    class_names: Vec<String>,
    class_of: HashMap<String, usize>,
    sources: Vec<String>,
    source_of: HashMap<String, i32>,
    /// [N] index into `class_names` (not yet sorted).
    row_class: Vec<usize>,
    /// [N] index into `sources`.
    row_source: Vec<i32>,
    /// [N]
    row_variant: Vec<i32>,
    keys: HashSet<(i32, i32)>,
}

impl Columns {
    pub(crate) fn len(&self) -> usize {
        self.row_variant.len()
    }

    /// Whether (source, variant) is already a row.
    pub(crate) fn contains(&self, source: &str, variant: u32) -> bool {
        self.source_of.get(source).is_some_and(|&s| self.keys.contains(&(s, variant as i32)))
    }

    /// Adds a row; false (and nothing added) if (source, variant) is already one.
    pub(crate) fn push(&mut self, class: &str, source: &str, variant: u32) -> bool {
        if self.contains(source, variant) {
            return false;
        }
        let class_index = match self.class_of.get(class) {
            Some(&index) => index,
            None => {
                self.class_names.push(class.to_owned());
                self.class_of.insert(class.to_owned(), self.class_names.len() - 1);
                self.class_names.len() - 1
            }
        };
        let source_index = match self.source_of.get(source) {
            Some(&index) => index,
            None => {
                self.sources.push(source.to_owned());
                let index = (self.sources.len() - 1) as i32;
                self.source_of.insert(source.to_owned(), index);
                index
            }
        };
        self.keys.insert((source_index, variant as i32));
        self.row_class.push(class_index);
        self.row_source.push(source_index);
        self.row_variant.push(variant as i32);
        true
    }

    /// Adds every row of an open cache, in its order.
    pub(crate) fn extend_from(&mut self, cache: &crate::Cache) -> Result<()> {
        for index in 0..cache.len() {
            let class = &cache.classes[cache.labels[index] as usize];
            if !self.push(class, cache.source_path(index), cache.variant[index] as u32) {
                return Err(Error::Duplicate {
                    path: cache.path.clone(),
                    source_path: cache.source_path(index).to_owned(),
                    variant: cache.variant[index] as u32,
                });
            }
        }
        Ok(())
    }

    /// Writes `labels`, `source`, `variant`, `classes` (sorted) and `sources`.
    pub(crate) fn write(&self, file: &hdf5::File, path: &Path) -> Result<()> {
        let sorted: BTreeSet<&str> = self.class_names.iter().map(String::as_str).collect();
        let classes: Vec<String> = sorted.iter().map(|c| (*c).to_owned()).collect();
        let position: HashMap<&str, i32> =
            sorted.iter().enumerate().map(|(i, c)| (*c, i as i32)).collect();
        let remap: Vec<i32> = self.class_names.iter().map(|c| position[c.as_str()]).collect();
        let labels: Vec<i32> = self.row_class.iter().map(|&c| remap[c]).collect();
        for (name, values) in [
            (LABELS, labels),
            (SOURCE, self.row_source.clone()),
            (VARIANT, self.row_variant.clone()),
        ] {
            file.new_dataset_builder().with_data(&Array1::from(values)).create(name).at(path)?;
        }
        write_strings(file, CLASSES, &classes, path)?;
        write_strings(file, SOURCES, &self.sources, path)?;
        // What every reader checks the columns against (a flipped label would train silently).
        let rows = self.row_source.iter().zip(&self.row_class).zip(&self.row_variant).map(
            |((&source, &class), &variant)| {
                (
                    self.sources[source as usize].as_str(),
                    self.class_names[class].as_str(),
                    variant as u32,
                )
            },
        );
        crate::segment_columns::write_columns_hash(file, columns_hash(rows), path)
    }
}

/// The root attributes of a finished cache: its settings, when it was first made (`None`: now),
/// the compression of its newest maps, where its photos are and which content it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) created: Option<&'a str>,
    pub(crate) compression: Compression,
    /// The data folder, absolute (stored relative to the cache's folder); `None`: not known.
    pub(crate) data_folder: Option<&'a Path>,
    /// `Some` keeps a content id: a repair that restored the same maps bit for bit. `None`: new.
    pub(crate) content_id: Option<&'a str>,
}

/// Root attributes every finished cache carries; see [`Stamp`].
pub(crate) fn write_common_attributes(
    file: &hdf5::File,
    stamp: Stamp<'_>,
    path: &Path,
) -> Result<()> {
    let (settings, compression) = (stamp.settings, stamp.compression);
    settings.write_attributes(file, path)?;
    let created = stamp.created.map_or_else(incept_core::now_rfc3339, str::to_owned);
    write_string_attribute(file, "created", &created, path)?;
    // Two contents written within one second (an --overwrite right after the first run) still
    // differ: the time to the nanosecond, the process and the path.
    let nanoseconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let content_id = match stamp.content_id {
        Some(kept) => kept.to_owned(),
        None => format!(
            "{:016x}",
            incept_core::stable_hash(&[
                &nanoseconds.to_le_bytes(),
                &std::process::id().to_le_bytes(),
                path.as_os_str().as_encoded_bytes(),
            ])
        ),
    };
    write_string_attribute(file, "content_id", &content_id, path)?;
    if let Some(data_folder) = stamp.data_folder {
        // Relative to where the cache will be (`path` is its temporary, in the same folder).
        let relative = relative_path(data_folder, folder_of(path))?;
        write_string_attribute(file, DATA_FOLDER_ATTRIBUTE, &relative, path)?;
    }
    write_string_attribute(file, "compression", compression.as_str(), path)
}

/// Writes an index (format 2) at `path` (a temporary file the caller renames into place, beside
/// the final one): `features` is a virtual dataset over `pieces` in order, stored with paths
/// relative to `final_folder`.
pub(crate) fn write_index(
    path: &Path,
    final_folder: &Path,
    stamp: Stamp<'_>,
    shape: MapShape,
    pieces: &[PieceRef],
    columns: &Columns,
) -> Result<()> {
    let settings = stamp.settings;
    let total: usize = pieces.iter().map(|p| p.rows).sum();
    if total != columns.len() {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{} rows of columns for {total} rows of pieces", columns.len()),
        });
    }
    let file = hdf5::File::create_excl(path).at(path)?;
    let extent = (total, shape.height, shape.width, shape.channels);
    // NaN where no piece answers (a piece deleted by hand): h5py shows it, instead of zeros.
    let mut builder = match settings.dtype {
        Dtype::F32 => file.new_dataset_builder().empty::<f32>().shape(extent).fill_value(f32::NAN),
        Dtype::F16 => {
            file.new_dataset_builder().empty::<half::f16>().shape(extent).fill_value(half::f16::NAN)
        }
    };
    // Relative between the real locations: a `..` out of a symlinked folder resolves as the
    // kernel resolves it.
    let real_folder = crate::canonical(final_folder)?;
    let mut names = Vec::with_capacity(pieces.len());
    let mut start = 0;
    for piece in pieces {
        let real = crate::canonical(&piece.path)?;
        let name = relative_path(&real, &real_folder)?;
        let source_extent = (piece.rows, shape.height, shape.width, shape.channels);
        builder = builder.virtual_map(
            &name,
            FEATURES,
            source_extent,
            (0..piece.rows, .., .., ..),
            extent,
            (start..start + piece.rows, .., .., ..),
        );
        names.push(name);
        start += piece.rows;
    }
    builder.create(FEATURES).at(path)?;
    columns.write(&file, path)?;
    write_strings(&file, PIECES, &names, path)?;
    let rows: Vec<u64> = pieces.iter().map(|p| p.rows as u64).collect();
    file.new_dataset_builder().with_data(&Array1::from(rows)).create(PIECE_ROWS).at(path)?;
    file.new_attr::<u32>()
        .create(FORMAT_VERSION_ATTRIBUTE)
        .at(path)?
        .write_scalar(&INDEX_FORMAT_VERSION)
        .at(path)?;
    write_common_attributes(&file, stamp, path)?;
    file.flush().at(path)?;
    file.close().at(path)?;
    // Checked before it replaces anything: every piece opens through it, from where it will be.
    crate::Cache::open(path).map(drop)
}
