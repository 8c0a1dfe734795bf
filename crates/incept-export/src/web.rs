//! `incept export --web DIR`: a static folder a phone's browser opens, that classifies photos
//! offline with the exported classifier through onnxruntime-web.
//!
//! # The folder
//! - `index.html`, `app.js`, `classifier.js`, `photo.js`, `messages.js`, `resize.js`, `sw.js`,
//!   `style.css`: the page (embedded in incept from `crates/incept-export/web/`); `resize.js` is
//!   incept's PIL-exact bilinear resize.
//! - `classifier.onnx`: the exported classifier (uint8 input, calibrated probabilities).
//! - `classifier.json`: what the page shows and checks ([`PageInfo`] and the files it lists).
//! - `ort/`: onnxruntime-web's WebAssembly build (`ort.wasm.min.js`,
//!   `ort-wasm-simd-threaded.{mjs,wasm}`), copied from the npm package `just setup` installs.
//!
//! Every file is written whole through `incept_core::write_atomically`; the classifier first and
//! `classifier.json` last, so a page whose writing was cut short lists a model that is whole.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Error, Result};

/// The page's own files: (name, content).
const PAGE_FILES: [(&str, &str); 8] = [
    ("index.html", include_str!("../web/index.html")),
    ("app.js", include_str!("../web/app.js")),
    ("classifier.js", include_str!("../web/classifier.js")),
    ("photo.js", include_str!("../web/photo.js")),
    ("messages.js", include_str!("../web/messages.js")),
    ("resize.js", include_str!("../web/resize.js")),
    ("sw.js", include_str!("../web/sw.js")),
    ("style.css", include_str!("../web/style.css")),
];
/// onnxruntime-web's files the page loads, from the package's `dist/` folder.
pub const ORT_FILES: [&str; 3] =
    ["ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs"];
/// The folder under the page holding [`ORT_FILES`].
pub const ORT_DIR: &str = "ort";
/// The classifier's name in the page's folder.
pub const MODEL_FILE: &str = "classifier.onnx";
/// The page's description of itself.
pub const INFO_FILE: &str = "classifier.json";
/// `classifier.json`'s format version.
pub const INFO_FORMAT: u32 = 1;

/// What the page shows about its classifier.
#[derive(Clone, Debug, Serialize)]
pub struct PageInfo {
    /// The run's name (its folder's name, never a path).
    pub run: String,
    pub classes: Vec<String>,
    /// The temperature inside the classifier (1: uncalibrated).
    pub temperature: f64,
    /// Below this calibrated top probability the page says "not sure".
    pub min_confidence: Option<f64>,
    pub input_size: u32,
    /// Photos wider or taller than this are refused, as incept refuses them.
    pub max_dimension: u32,
    pub validation_accuracy: Option<f64>,
    /// Whether the backbone is the int8 one.
    pub int8: bool,
    /// With the int8 backbone: how it changed the run's answers.
    pub int8_check: Option<Int8Check>,
    pub incept_version: String,
}

/// The int8 backbone against the float one on a run's validation photos (one view each, the
/// run's temperature applied), measured by `export --int8`.
#[derive(Clone, Debug, Serialize)]
pub struct Int8Check {
    pub photos: usize,
    /// Whether the head trained on these photos (a cross-validation's refit trained on every
    /// photo): the accuracies are then training figures and only `agreement` says much.
    pub trained_on: bool,
    pub float_accuracy: f64,
    pub int8_accuracy: f64,
    /// Share of the photos given the same class by both.
    pub agreement: f64,
    /// The float classifier's size, bytes, for the page's "instead of".
    pub float_model_bytes: u64,
}

impl Int8Check {
    /// "the run's 400 validation photos", or the refit's training photos.
    pub fn photos_described(&self) -> String {
        if self.trained_on {
            format!("the {} photos the refit trained on (training figures)", self.photos)
        } else {
            format!("the run's {} validation photos", self.photos)
        }
    }
}

/// `classifier.json`: [`PageInfo`] and what the folder holds.
#[derive(Serialize)]
struct InfoFile<'a> {
    format: u32,
    #[serde(flatten)]
    info: &'a PageInfo,
    model: &'static str,
    model_bytes: u64,
    model_sha256: String,
    /// Every file of the page, relative to it: what the service worker stores for offline use.
    files: Vec<String>,
}

/// What [`write_page`] wrote.
#[derive(Debug)]
pub struct PageSummary {
    pub files: usize,
    pub bytes: u64,
}

/// Where `just setup` installs onnxruntime-web's files (`npm ci` in web/), relative to the
/// working folder or to incept's own.
pub const DEFAULT_RUNTIME: &str = "web/node_modules/onnxruntime-web/dist";

/// onnxruntime-web's `dist/` folder: `chosen`, else [`DEFAULT_RUNTIME`] in the working folder or
/// in incept's; every one of [`ORT_FILES`] must be there.
pub fn find_runtime(chosen: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match chosen {
        Some(path) => vec![path.to_path_buf()],
        None => {
            vec![PathBuf::from(DEFAULT_RUNTIME), incept_core::project_root().join(DEFAULT_RUNTIME)]
        }
    };
    for candidate in &candidates {
        if ORT_FILES.iter().all(|name| candidate.join(name).is_file()) {
            return Ok(candidate.clone());
        }
    }
    // The first missing file of the first place looked in.
    let first = &candidates[0];
    let missing = ORT_FILES.iter().map(|name| first.join(name)).find(|p| !p.is_file());
    Err(Error::WebRuntimeMissing {
        path: missing.unwrap_or_else(|| first.clone()),
        looked: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// Where the classifier goes in page folder `dir`.
pub fn model_path(dir: &Path) -> PathBuf {
    dir.join(MODEL_FILE)
}

/// Writes the page into `dir` around the classifier already exported to [`model_path`]`(dir)`,
/// with onnxruntime-web's files from `ort_dist` (the npm package's `dist/` folder).
pub fn write_page(dir: &Path, ort_dist: &Path, info: &PageInfo) -> Result<PageSummary> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut ort = Vec::new();
    for name in ORT_FILES {
        let path = ort_dist.join(name);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        ort.push((format!("{ORT_DIR}/{name}"), bytes));
    }
    let model = model_path(dir);
    let model_bytes = std::fs::read(&model).map_err(io(&model))?;
    std::fs::create_dir_all(dir.join(ORT_DIR)).map_err(io(&dir.join(ORT_DIR)))?;
    let mut files: Vec<String> = Vec::new();
    let mut bytes = model_bytes.len() as u64;
    for (name, content) in PAGE_FILES {
        incept_core::write_atomically(&dir.join(name), content.as_bytes())?;
        files.push(name.to_owned());
        bytes += content.len() as u64;
    }
    for (name, content) in &ort {
        incept_core::write_atomically(&dir.join(name), content)?;
        files.push(name.clone());
        bytes += content.len() as u64;
    }
    files.push(MODEL_FILE.to_owned());
    files.push(INFO_FILE.to_owned());
    let info_file = InfoFile {
        format: INFO_FORMAT,
        info,
        model: MODEL_FILE,
        model_bytes: model_bytes.len() as u64,
        model_sha256: incept_core::sha256_hex(&model_bytes),
        files,
    };
    let json = serde_json::to_string_pretty(&info_file)
        .map_err(|e| Error::Malformed(format!("classifier.json: {e}")))?;
    incept_core::write_atomically(&dir.join(INFO_FILE), json.as_bytes())?;
    bytes += json.len() as u64;
    Ok(PageSummary { files: info_file.files.len(), bytes })
}
