//! Reading a finished cache.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ndarray::Array4;

use crate::index::{self, OpenPiece, PIECES, PieceRef};
use crate::{
    CLASSES, Compression, Error, FEATURES, LABELS, MapShape, Result, SOURCE, SOURCES, Settings,
    VARIANT, WithPath, map_shape_of, open_hdf5, read_checked_block, read_i32,
    read_string_attribute, read_strings,
};

/// Where the feature maps live.
#[derive(Debug)]
enum Storage {
    /// Format 1 (and `incept merge --copy`): a real `features` dataset in the file itself.
    Single(hdf5::Dataset),
    /// Format 2: pieces behind the index's virtual dataset, opened by incept directly.
    Pieces(Vec<OpenPiece>),
}

/// Times [`Cache::open`] retries when a piece vanished while it opened the index: a writer
/// replacing the cache (`--overwrite`) deletes the old pieces right after its new index is in
/// place, so a second look finds the new index.
const OPEN_ATTEMPTS: usize = 3;

/// An open feature cache: the small columns in memory, feature maps read on demand.
#[derive(Debug)]
pub struct Cache {
    pub path: PathBuf,
    pub settings: Settings,
    pub shape: MapShape,
    pub classes: Vec<String>,
    pub sources: Vec<String>,
    /// [N] index into `classes`.
    pub labels: Vec<i32>,
    /// [N] index into `sources`.
    pub source: Vec<i32>,
    /// [N] 0 = original, 1..=copies augmented.
    pub variant: Vec<i32>,
    pub created: Option<String>,
    /// Names this content of the file: a new one at every merge (caches of earlier versions
    /// have none).
    pub content_id: Option<String>,
    /// The `compression` attribute: that of the newest pieces (each piece records its own
    /// filters); caches without a known one read as shuffle+deflate, what incept 0.1.0 wrote.
    pub compression: Compression,
    /// The data folder its photos were read from, as recorded (made absolute against the
    /// cache's folder); `None` for caches made before incept recorded it.
    pub data_folder: Option<PathBuf>,
    storage: Storage,
    _file: hdf5::File,
}

impl Cache {
    /// Opens and validates a cache; every inconsistency is an error naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::open_once(path) {
                Err(Error::PieceMissing { .. }) if attempt < OPEN_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    fn open_once(path: &Path) -> Result<Self> {
        let file = open_hdf5(path)?;
        // Format 1 has no version attribute; a later format may not be read as this one.
        if let Ok(attribute) = file.attr(index::FORMAT_VERSION_ATTRIBUTE) {
            let found = attribute.read_scalar::<u32>().at(path)?;
            if found > index::INDEX_FORMAT_VERSION {
                return Err(Error::NewerFormat {
                    path: path.to_path_buf(),
                    found,
                    supported: index::INDEX_FORMAT_VERSION,
                });
            }
        }
        let features = file
            .dataset(FEATURES)
            .map_err(|_| Error::NotACache { path: path.to_path_buf(), missing: FEATURES.into() })?;
        let (n, shape) = map_shape_of(&features, path)?;
        let settings = Settings::read_attributes(&file, path)?;
        let stored = features.dtype().at(path)?.size();
        let expected = settings.dtype.size();
        let corrupt = |reason: String| Error::Corrupt { path: path.to_path_buf(), reason };
        if stored != expected {
            return Err(corrupt(format!(
                "`features` has {stored}-byte elements but the dtype attribute says {}",
                settings.dtype.as_str()
            )));
        }
        let classes = read_strings(&file, CLASSES, path)?;
        let sources = read_strings(&file, SOURCES, path)?;
        let labels = read_i32(&file, LABELS, path)?;
        let source = read_i32(&file, SOURCE, path)?;
        let variant = read_i32(&file, VARIANT, path)?;
        for (name, column) in [(LABELS, &labels), (SOURCE, &source), (VARIANT, &variant)] {
            if column.len() != n {
                return Err(corrupt(format!(
                    "`{name}` has {} entries, `features` {n}",
                    column.len()
                )));
            }
        }
        if let Some(bad) = labels.iter().find(|&&l| l < 0 || l as usize >= classes.len()) {
            return Err(corrupt(format!("label {bad} outside the {} classes", classes.len())));
        }
        if let Some(bad) = source.iter().find(|&&s| s < 0 || s as usize >= sources.len()) {
            return Err(corrupt(format!(
                "source index {bad} outside the {} sources",
                sources.len()
            )));
        }
        let rows = labels.iter().zip(&source).zip(&variant).map(|((&label, &photo), &variant)| {
            (sources[photo as usize].as_str(), classes[label as usize].as_str(), variant as u32)
        });
        if !crate::segment_columns::matches_recorded(&file, rows) {
            return Err(Error::ColumnsDamaged { path: path.to_path_buf() });
        }
        let created = read_string_attribute(&file, "created", path).ok();
        let content_id = read_string_attribute(&file, "content_id", path).ok();
        let compression = read_string_attribute(&file, "compression", path)
            .ok()
            .and_then(|c| Compression::parse(&c))
            .unwrap_or(Compression::ShuffleDeflate);
        let data_folder = read_string_attribute(&file, index::DATA_FOLDER_ATTRIBUTE, path)
            .ok()
            .map(|relative| index::folder_of(path).join(relative));
        let storage = if file.link_exists(PIECES) {
            Storage::Pieces(index::open_pieces(&file, path, shape, settings.dtype)?)
        } else {
            Storage::Single(features)
        };
        Ok(Cache {
            path: path.to_path_buf(),
            settings,
            shape,
            classes,
            sources,
            labels,
            source,
            variant,
            created,
            content_id,
            compression,
            data_folder,
            storage,
            _file: file,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Relative source path of sample `index`.
    pub fn source_path(&self, index: usize) -> &str {
        &self.sources[self.source[index] as usize]
    }

    /// The (source path, variant) of every sample.
    pub fn keys(&self) -> HashSet<(String, u32)> {
        (0..self.len()).map(|i| (self.source_path(i).to_owned(), self.variant[i] as u32)).collect()
    }

    /// Feature maps of samples `start..start + count`, as float32.
    ///
    /// # Shapes
    /// Returns [count, H, W, C].
    pub fn read_block(&self, start: usize, count: usize) -> Result<Array4<f32>> {
        if start + count > self.len() {
            return Err(Error::Corrupt {
                path: self.path.clone(),
                reason: format!("rows {start}..{} asked of {}", start + count, self.len()),
            });
        }
        match &self.storage {
            Storage::Single(features) => {
                read_checked_block(features, self.settings.dtype, start, count, &self.path)
            }
            Storage::Pieces(pieces) => {
                index::read_across(pieces, self.settings.dtype, self.shape, start, count)
            }
        }
        .map_err(|error| self.name_damage(error))
    }

    /// A damage error completed with this cache's path and the photo of each row.
    pub(crate) fn name_damage(&self, error: Error) -> Error {
        match error {
            Error::Damaged { piece, rows, cache: None, .. } => {
                let photos = rows
                    .iter()
                    .map(|&row| match self.source.get(row) {
                        Some(_) => {
                            format!("{} (variant {})", self.source_path(row), self.variant[row])
                        }
                        None => String::from("?"),
                    })
                    .collect();
                Error::Damaged { piece, rows, cache: Some(self.path.clone()), photos }
            }
            other => other,
        }
    }

    /// Compressed bytes of the feature maps on disk (of every piece, for an index).
    pub fn stored_feature_bytes(&self) -> u64 {
        match &self.storage {
            Storage::Single(features) => features.storage_size(),
            Storage::Pieces(pieces) => pieces.iter().map(|p| p.dataset.storage_size()).sum(),
        }
    }

    /// The piece files behind an index (format 2), in row order; `None` for a self-contained
    /// file (format 1 or `merge --copy`), whose maps are in the file itself.
    pub fn pieces(&self) -> Option<Vec<PieceRef>> {
        match &self.storage {
            Storage::Single(..) => None,
            Storage::Pieces(pieces) => Some(
                pieces.iter().map(|p| PieceRef { path: p.path.clone(), rows: p.rows }).collect(),
            ),
        }
    }

    /// The pieces a new index over this cache's rows would name: its own pieces, or the file
    /// itself for a self-contained cache (its `features` dataset is a piece like any other).
    pub fn as_pieces(&self) -> Vec<PieceRef> {
        self.pieces()
            .unwrap_or_else(|| vec![PieceRef { path: self.path.clone(), rows: self.len() }])
    }
}
