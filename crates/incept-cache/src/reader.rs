//! Reading a finished cache.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ndarray::Array4;

use crate::{
    CLASSES, Dtype, Error, FEATURES, LABELS, MapShape, Result, SOURCE, SOURCES, Settings, VARIANT,
    WithPath, map_shape_of, open_hdf5, read_feature_block, read_i32, read_string_attribute,
    read_strings,
};

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
    features: hdf5::Dataset,
    _file: hdf5::File,
}

impl Cache {
    /// Opens and validates a cache; every inconsistency is an error naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = open_hdf5(path)?;
        let features = file
            .dataset(FEATURES)
            .map_err(|_| Error::NotACache { path: path.to_path_buf(), missing: FEATURES.into() })?;
        let (n, shape) = map_shape_of(&features, path)?;
        let settings = Settings::read_attributes(&file, path)?;
        let stored = features.dtype().at(path)?.size();
        let expected = match settings.dtype {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        };
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
        let created = read_string_attribute(&file, "created", path).ok();
        let content_id = read_string_attribute(&file, "content_id", path).ok();
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
            features,
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
        read_feature_block(&self.features, self.settings.dtype, start, count, &self.path)
    }

    /// Compressed bytes of `features` on disk.
    pub fn stored_feature_bytes(&self) -> u64 {
        self.features.storage_size()
    }
}
