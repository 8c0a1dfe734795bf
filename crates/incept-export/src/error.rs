//! Errors of the export stage; each names its file and, where one exists, the fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Core(#[from] incept_core::Error),
    #[error(
        "{path}: not a model export can extend ({reason}); pass the converted model the run's cache was made with (--model), or run `just setup` to convert it again"
    )]
    Model { path: PathBuf, reason: String },
    #[error(
        "{path}: the backbone gives maps of {found}, the head was trained on {expected}; pass the model the run's cache was made with (--model)"
    )]
    ShapeMismatch { path: PathBuf, expected: String, found: String },
    #[error(
        "the head's weights do not fit together: {0}; the run folder is damaged, train it again"
    )]
    Head(String),
    #[error(
        "{path}: the classifier would be {bytes} bytes, over the 2 GiB a protobuf file can hold; export a head with fewer --ensemble members or global average pooling"
    )]
    TooLarge { path: PathBuf, bytes: usize },
    #[error("{0}: the same metadata key twice")]
    DuplicateMetadata(String),
    #[error(
        "{path} is missing (looked in {looked}): the page needs onnxruntime-web's files; run `just setup` (it installs the npm package under web/), or pass its dist/ folder with --onnxruntime-web"
    )]
    WebRuntimeMissing { path: PathBuf, looked: String },
    /// A wire-format fault, before the file it came from is known.
    #[error("{0}")]
    Malformed(String),
}
