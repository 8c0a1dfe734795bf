//! What a cache records about its content: the names of its datasets, the [`Settings`] and
//! other root attributes, and the types they are made of; reading and writing the attributes.

use std::path::Path;

use hdf5::types::VarLenUnicode;

use crate::{Error, Result, WithPath, missing};

pub const FEATURES: &str = "features";
pub const LABELS: &str = "labels";
pub const SOURCE: &str = "source";
pub const VARIANT: &str = "variant";
pub const CLASSES: &str = "classes";
pub const SOURCES: &str = "sources";
/// Per-sample string columns of a segment (merged into `classes`/`sources` indices).
pub(crate) const SEGMENT_SOURCE_PATHS: &str = "source_paths";
pub(crate) const SEGMENT_CLASS_NAMES: &str = "class_names";

/// The lossless compression of the feature maps, one chunk a sample; every choice is a filter
/// h5py reads without plugins. Measured on amid5: see docs/BENCHMARKS.md, "Compression".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Compression {
    /// LZF: about twice deflate's speed for 15 % more bytes; extraction, which compresses while
    /// inference runs on the same cores, is faster with it.
    #[default]
    Lzf,
    /// Deflate at [`DEFLATE_LEVEL`]: the smaller cache.
    Deflate,
    /// Byte shuffle, then LZF: what incept wrote before the shuffle was dropped (the maps'
    /// zeros, most of a ReLU map, compress better unshuffled). Read, grown and copied; never
    /// chosen for new maps (only `merge --copy`, whose output takes its first input's filters,
    /// writes it again).
    #[cfg_attr(feature = "clap", value(skip))]
    ShuffleLzf,
    /// Byte shuffle, then deflate: as [`Compression::ShuffleLzf`], and incept 0.1.0's only choice.
    #[cfg_attr(feature = "clap", value(skip))]
    ShuffleDeflate,
}

/// Deflate's level: level 4 stored 3 % fewer bytes at three times the CPU time.
pub(crate) const DEFLATE_LEVEL: u8 = 1;

impl Compression {
    const ALL: [Compression; 4] = [
        Compression::Lzf,
        Compression::Deflate,
        Compression::ShuffleLzf,
        Compression::ShuffleDeflate,
    ];

    /// The `compression` attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Lzf => "lzf",
            Compression::Deflate => "deflate",
            Compression::ShuffleLzf => "shuffle+lzf",
            Compression::ShuffleDeflate => "shuffle+deflate",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Whether the byte-shuffle filter runs before the compressor.
    pub(crate) fn shuffled(self) -> bool {
        matches!(self, Compression::ShuffleLzf | Compression::ShuffleDeflate)
    }
}

/// Element type of the stored feature maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Dtype {
    #[default]
    F32,
    F16,
}

impl Dtype {
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
        }
    }

    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "float32" | "f32" => Some(Dtype::F32),
            "float16" | "f16" => Some(Dtype::F16),
            _ => None,
        }
    }
}

/// Shape of one sample's feature map, channels last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl MapShape {
    /// Values per sample: H × W × C.
    pub fn len(self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for MapShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}×{}", self.height, self.width, self.channels)
    }
}

/// Everything that determines the cached values; two runs may share a cache only if equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub model_sha256: String,
    /// Side of the square network input, pixels.
    pub input_size: u32,
    /// Human-readable description of resize and scaling.
    pub preprocessing: String,
    /// JSON with every augmentation parameter and its unit.
    pub augmentation: String,
    pub seed: u64,
    /// Augmented copies per image (variants 1..=copies); 0 means originals only.
    pub copies: u32,
    pub dtype: Dtype,
    /// Version of the augmentation draw (random number generator and how parameters are drawn
    /// from it): caches whose draws differ must not be mixed. Caches made before it was recorded
    /// read as version 1, the algorithm they were made with.
    pub augmentation_version: u32,
    /// The backbone layer whose output the maps are (`mixed_10`: Keras' `include_top=False`
    /// output; `mixed_9`, `mixed_8`, `mixed_7`: one, two, three blocks earlier). Caches made before it was recorded read as
    /// `mixed_10`, the only layer incept extracted then.
    pub layer: String,
}

/// The augmentation version of caches that do not record one.
const UNRECORDED_AUGMENTATION_VERSION: u32 = 1;
/// The layer of caches that do not record one.
const UNRECORDED_LAYER: &str = "mixed_10";

impl Settings {
    /// Names (and values) of the fields in which `self` (the existing cache) and `wanted` differ.
    pub fn differences(&self, wanted: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |name: &str, have: String, want: String| {
            if have != want {
                out.push(format!("{name}: cache has {have}, this run wants {want}"));
            }
        };
        check("model_sha256", self.model_sha256.clone(), wanted.model_sha256.clone());
        check("layer", self.layer.clone(), wanted.layer.clone());
        check("input_size", self.input_size.to_string(), wanted.input_size.to_string());
        check("preprocessing", self.preprocessing.clone(), wanted.preprocessing.clone());
        check("augmentation", self.augmentation.clone(), wanted.augmentation.clone());
        check("seed", self.seed.to_string(), wanted.seed.to_string());
        check("copies", self.copies.to_string(), wanted.copies.to_string());
        check("dtype", self.dtype.as_str().to_owned(), wanted.dtype.as_str().to_owned());
        check(
            "augmentation_version",
            self.augmentation_version.to_string(),
            wanted.augmentation_version.to_string(),
        );
        out
    }

    pub(crate) fn write_attributes(&self, file: &hdf5::File, path: &Path) -> Result<()> {
        write_string_attribute(file, "model_sha256", &self.model_sha256, path)?;
        write_scalar_attribute(file, "input_size", &self.input_size, path)?;
        write_string_attribute(file, "preprocessing", &self.preprocessing, path)?;
        write_string_attribute(file, "augmentation", &self.augmentation, path)?;
        write_scalar_attribute(file, "seed", &self.seed, path)?;
        write_scalar_attribute(file, "copies", &self.copies, path)?;
        write_string_attribute(file, "dtype", self.dtype.as_str(), path)?;
        write_scalar_attribute(file, "augmentation_version", &self.augmentation_version, path)?;
        write_string_attribute(file, "layer", &self.layer, path)?;
        write_string_attribute(file, "incept_version", env!("CARGO_PKG_VERSION"), path)
    }

    pub(crate) fn read_attributes(file: &hdf5::File, path: &Path) -> Result<Self> {
        let dtype_name = read_string_attribute(file, "dtype", path)?;
        let dtype = Dtype::parse(&dtype_name).ok_or_else(|| Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("unknown dtype attribute {dtype_name:?}"),
        })?;
        Ok(Settings {
            model_sha256: read_string_attribute(file, "model_sha256", path)?,
            input_size: read_scalar_attribute(file, "input_size", path)?,
            preprocessing: read_string_attribute(file, "preprocessing", path)?,
            augmentation: read_string_attribute(file, "augmentation", path)?,
            seed: read_scalar_attribute(file, "seed", path)?,
            copies: read_scalar_attribute(file, "copies", path)?,
            dtype,
            augmentation_version: if file.attr("augmentation_version").is_ok() {
                read_scalar_attribute(file, "augmentation_version", path)?
            } else {
                UNRECORDED_AUGMENTATION_VERSION
            },
            layer: if file.attr("layer").is_ok() {
                read_string_attribute(file, "layer", path)?
            } else {
                UNRECORDED_LAYER.to_owned()
            },
        })
    }
}

pub(crate) fn write_string_attribute(
    file: &hdf5::File,
    name: &str,
    value: &str,
    path: &Path,
) -> Result<()> {
    let value: VarLenUnicode = value.parse().map_err(|_| Error::Corrupt {
        path: path.to_path_buf(),
        reason: format!("attribute {name} holds a NUL byte"),
    })?;
    file.new_attr::<VarLenUnicode>().create(name).at(path)?.write_scalar(&value).at(path)
}

fn write_scalar_attribute<T: hdf5::H5Type>(
    file: &hdf5::File,
    name: &str,
    value: &T,
    path: &Path,
) -> Result<()> {
    file.new_attr::<T>().create(name).at(path)?.write_scalar(value).at(path)
}

pub(crate) fn read_string_attribute(file: &hdf5::File, name: &str, path: &Path) -> Result<String> {
    let attribute = file.attr(name).map_err(|_| missing(path, &format!("attribute {name}")))?;
    let value: VarLenUnicode = attribute.read_scalar().at(path)?;
    Ok(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn read_scalar_attribute<T: hdf5::H5Type>(file: &hdf5::File, name: &str, path: &Path) -> Result<T> {
    let attribute = file.attr(name).map_err(|_| missing(path, &format!("attribute {name}")))?;
    attribute.read_scalar().at(path)
}
