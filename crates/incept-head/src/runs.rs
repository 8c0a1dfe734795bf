//! Reading run folders back: a trained head for inference, and run listings.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::softmax;
use incept_cache::Cache;
use incept_report::Metrics;

use crate::backend::Backend;
use crate::bilinear::{Projection, pooled_len};
use crate::config::TrainConfig;
use crate::data::{Kept, Store, argmax, mean_by_photo, validation_samples};
use crate::model::{Head, InputShape};
use crate::run_folder::{CacheStamp, RunCalibration, RunState, load_config, load_state};
use crate::{Error, Result};

mod calibrated;
use calibrated::calibration_or_warn;

/// Samples per inference batch.
const INFERENCE_BATCH: usize = 64;

/// The best weights of a run, ready to classify feature maps.
#[derive(Debug)]
pub struct TrainedHead {
    pub run_dir: PathBuf,
    pub config: TrainConfig,
    pub state: RunState,
    pub(crate) model: Head,
    /// A bilinear head's projection: maps are pooled with it before the head sees them.
    projection: Option<Projection>,
    /// The temperatures fitted on the run's validation photos (a cross-validation's: on its
    /// out-of-fold predictions, applied to its refit); `None` before any was fitted.
    pub calibration: Option<RunCalibration>,
    device: Device,
}

impl TrainedHead {
    /// The head of the run in `run_dir`; of a cross-validation, its refit on every photo (the
    /// folds' heads each missed a K-th of the photos).
    pub fn load(run_dir: &Path, backend: Backend) -> Result<Self> {
        let state = load_state(run_dir)?;
        if let Some(cross_validation) = &state.cross_validation {
            if !cross_validation.refit {
                return Err(Error::NoRefit {
                    path: run_dir.to_path_buf(),
                    folds: cross_validation.folds,
                });
            }
            let mut refit = Self::load(&run_dir.join(crate::cross_validation::REFIT_DIR), backend)?;
            // The refit validated on nothing: the folds' out-of-fold predictions calibrate it.
            refit.calibration = calibration_or_warn(run_dir, &state, refit.config.tta);
            return Ok(refit);
        }
        let config = load_config(run_dir)?;
        let [height, width, channels] = state.input_shape;
        let device = backend.device()?;
        if state.best_epoch == 0 {
            return Err(Error::NotARun {
                path: run_dir.to_path_buf(),
                reason: "no epoch has finished yet: there are no weights".into(),
            });
        }
        // A reader right after a kill mid-checkpoint still finds the committed best weights.
        let model = crate::run_folder::load_best_weights(
            Head::new(
                &config.head,
                InputShape { height, width, channels },
                state.classes.len(),
                &device,
            ),
            run_dir,
            &state,
        )?;
        let projection = model.projection()?;
        let calibration = calibration_or_warn(run_dir, &state, config.tta);
        Ok(TrainedHead {
            run_dir: run_dir.to_path_buf(),
            config,
            state,
            model,
            projection,
            calibration,
            device,
        })
    }

    pub fn classes(&self) -> &[String] {
        &self.state.classes
    }

    /// Values per sample the head takes: H × W × C.
    pub fn input_len(&self) -> usize {
        self.state.input_shape.iter().product()
    }

    /// Class probabilities of `n` feature maps.
    ///
    /// # Shapes
    /// `features`: [n × (H·W·C)] channels-last → [n][classes].
    pub fn probabilities(&self, features: &[f32], n: usize) -> Result<Vec<Vec<f64>>> {
        let [height, width, channels] = self.state.input_shape;
        if features.len() != n * self.input_len() {
            return Err(Error::ShapeMismatch {
                path: self.run_dir.clone(),
                expected: format!("{n} × {height}×{width}×{channels}"),
                found: format!("{} values", features.len()),
            });
        }
        let x = match &self.projection {
            Some(projection) => {
                let mut pooled = Vec::with_capacity(n * pooled_len(projection.dimensions));
                for map in features.chunks_exact(self.input_len()) {
                    projection.pool(map, &mut pooled)?;
                }
                let width = pooled.len() / n.max(1);
                Tensor::<4>::from_data(TensorData::new(pooled, [n, 1, 1, width]), &self.device)
            }
            None => Tensor::<4>::from_data(
                TensorData::new(features.to_vec(), [n, height, width, channels]),
                &self.device,
            ),
        };
        let probabilities = softmax(self.model.forward(x, self.config.head.pooling), 1).into_data();
        let values =
            probabilities.try_to_vec::<f32>().map_err(|e| Error::Data(format!("{e:?}")))?;
        Ok(values
            .chunks(self.classes().len())
            .map(|row| row.iter().map(|&p| f64::from(p)).collect())
            .collect())
    }

    /// Evaluates the head on another cache (e.g. a test folder extracted with `--no-augment`),
    /// matching classes by name; with `tta`, probabilities are averaged over each photo's
    /// variants.
    pub fn evaluate(&self, cache_path: &Path, tta: bool) -> Result<Metrics> {
        self.metrics_of(&self.predict_cache(cache_path, tta)?, tta)
    }

    /// Per photo of the cache `cache_path`, the head's class probabilities (in the order of
    /// [`Self::classes`]), classes matched by name; with `tta`, averaged over each photo's
    /// variants, else of the photo itself (variant 0). Photos in the cache's order of sources.
    pub fn predict_cache(&self, cache_path: &Path, tta: bool) -> Result<Vec<CachePhoto>> {
        let cache = Cache::open(cache_path)?;
        let expected = self.state.input_shape;
        let found = [cache.shape.height, cache.shape.width, cache.shape.channels];
        if found != expected {
            return Err(Error::ShapeMismatch {
                path: cache.path.clone(),
                expected: format!("{expected:?}"),
                found: format!("{found:?}"),
            });
        }
        let mut to_head = Vec::new();
        for class in &cache.classes {
            match self.classes().iter().position(|c| c == class) {
                Some(index) => to_head.push(index),
                None => {
                    return Err(Error::UnknownClass {
                        path: cache.path.clone(),
                        class: class.clone(),
                        known: self.classes().join(", "),
                    });
                }
            }
        }
        let indices = validation_samples(&cache, tta);
        let sources = cache.sources.clone();
        // Full maps: `probabilities` takes what `predict` hands it.
        let store = Store::open(
            cache,
            self.config.memory_budget_mib.saturating_mul(1 << 20),
            Kept::Maps,
            None,
        )?;
        let photos = mean_by_photo(
            &store,
            &indices,
            INFERENCE_BATCH,
            |label| to_head[label as usize],
            |values, n| self.probabilities(values, n),
        )?;
        photos
            .into_iter()
            .map(|photo| {
                // Cache::open checked every index; one outside now is a broken invariant.
                let source = sources.get(photo.source as usize).cloned().ok_or_else(|| {
                    Error::Data(format!(
                        "{}: source index {} outside its {} sources",
                        cache_path.display(),
                        photo.source,
                        sources.len()
                    ))
                })?;
                Ok(CachePhoto {
                    source,
                    label: photo.label,
                    probabilities: photo.probabilities,
                    single_view: photo.single_view,
                })
            })
            .collect()
    }

    /// The metrics of predictions made by [`Self::predict_cache`]; with `tta`, also the
    /// accuracy of each photo alone.
    pub fn metrics_of(&self, photos: &[CachePhoto], tta: bool) -> Result<Metrics> {
        let labels: Vec<usize> = photos.iter().map(|photo| photo.label).collect();
        crate::train::photo_metrics(
            self.classes(),
            &labels,
            photos.iter().map(|photo| &photo.probabilities),
            photos.iter().map(|photo| photo.single_view.as_ref()),
            tta,
        )
    }
}

/// One photo of a cache as a trained head classifies it ([`TrainedHead::predict_cache`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CachePhoto {
    /// The photo's path relative to the folder the cache was extracted from.
    pub source: String,
    /// Its true class, an index into the head's classes.
    pub label: usize,
    /// Class probabilities, [classes], summing to 1: the mean over the photo's variants with
    /// test-time augmentation, else those of the photo itself.
    pub probabilities: Vec<f64>,
    /// The probabilities of the photo itself (variant 0), when it was among the samples.
    pub single_view: Option<Vec<f64>>,
}

impl CachePhoto {
    /// The predicted class: the most probable (the first of equals).
    pub fn predicted(&self) -> usize {
        argmax(&self.probabilities)
    }

    /// The class of the photo's own view alone, when it was among the samples.
    pub fn single_view_predicted(&self) -> Option<usize> {
        self.single_view.as_deref().map(argmax)
    }
}

/// One line of `incept runs`.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub name: String,
    pub path: PathBuf,
    pub head: String,
    pub epochs: usize,
    pub planned_epochs: usize,
    pub best_epoch: usize,
    /// The best epoch's validation figures with their intervals (`None` before an epoch has
    /// finished): accuracy (with test-time augmentation, the mean over each photo's views),
    /// single view, balanced accuracy, the worst class, macro-F1.
    pub metrics: Option<Metrics>,
    pub seconds: f64,
    pub cache: PathBuf,
    pub cache_stamp: Option<CacheStamp>,
    /// Listed for a cache whose content is no longer the one this run trained on (re-extracted,
    /// or grown with more copies): its figures are not comparable with the others'.
    pub cache_changed: bool,
    /// Why the run folder could not be read whole (a damaged `config.toml`, say): the run is
    /// listed anyway, with what could be read.
    pub problem: Option<String>,
}

fn looks_like_a_run(dir: &Path) -> bool {
    dir.join(crate::run_folder::STATE_FILE).exists()
        || dir.join(crate::run_folder::CONFIG_FILE).exists()
}

/// A run folder's line; `None` for a folder that holds no run at all.
fn summarize(dir: &Path) -> Option<RunSummary> {
    if !looks_like_a_run(dir) {
        return None;
    }
    let name = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut summary = RunSummary {
        name,
        path: dir.to_path_buf(),
        head: "?".into(),
        epochs: 0,
        planned_epochs: 0,
        best_epoch: 0,
        metrics: None,
        seconds: 0.0,
        cache: PathBuf::new(),
        cache_stamp: None,
        cache_changed: false,
        problem: None,
    };
    let mut problems = Vec::new();
    let state = match load_state(dir) {
        Ok(state) => {
            summary.epochs = state.completed_epochs;
            summary.best_epoch = state.best_epoch;
            summary.seconds = state.train_seconds;
            summary.cache = state.cache.clone();
            summary.cache_stamp = state.cache_stamp.clone();
            Some(state)
        }
        Err(error) => {
            problems.push(error.to_string());
            None
        }
    };
    match load_config(dir) {
        Ok(config) => {
            summary.head = format!("{} [{}]", config.head_summary(), config.preset);
            if let Some(cross_validation) = state.as_ref().and_then(|s| s.cross_validation.as_ref())
            {
                summary.head.push_str(&folds_note(cross_validation));
            }
            if config.patience > 0 {
                summary.head.push_str(&format!(" patience {}", config.patience));
            }
            summary.planned_epochs = config.epochs;
        }
        Err(error) => problems.push(error.to_string()),
    }
    // No metrics yet: a run in progress, listed without figures.
    if let Some(state) = &state {
        match crate::run_folder::read_metrics(dir, state) {
            Ok(Some(metrics)) => summary.metrics = Some(metrics),
            Ok(None) => {}
            Err(error) => problems.push(error.to_string()),
        }
    }
    summary.problem = (!problems.is_empty()).then(|| problems.join("; "));
    Some(summary)
}

/// ` 5-fold 84.1–88.0%`: a cross-validation's folds and the spread of their accuracies (its
/// figures are the pooled ones), `+refit` when it has a head for every photo.
fn folds_note(cross_validation: &crate::cross_validation::CrossValidation) -> String {
    let accuracies = cross_validation.fold_results.iter().map(|f| f.accuracy);
    let low = accuracies.clone().fold(f64::INFINITY, f64::min);
    let high = accuracies.fold(f64::NEG_INFINITY, f64::max);
    let spread = if cross_validation.fold_results.is_empty() {
        String::new()
    } else {
        format!(" folds {:.1}–{:.1}%", 100.0 * low, 100.0 * high)
    };
    format!(
        " {}-fold{spread}{}",
        cross_validation.folds,
        if cross_validation.refit { " +refit" } else { "" }
    )
}

/// Runs made from the cache `target` (looked for under `runs_dir`), or every run in the folder
/// `target`; sorted by validation accuracy, best first.
pub fn list_runs(target: &Path, runs_dir: &Path) -> Result<Vec<RunSummary>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let (folder, cache) = if target.is_file() {
        (runs_dir.to_path_buf(), Some(std::fs::canonicalize(target).map_err(io(target))?))
    } else if target.is_dir() {
        (target.to_path_buf(), None)
    } else {
        return Err(Error::Io {
            path: target.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such cache or folder"),
        });
    };
    let mut runs = Vec::new();
    if let Some(run) = summarize(&folder) {
        runs.push(run);
    } else if folder.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&folder)
            .map_err(io(&folder))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        entries.sort();
        runs.extend(entries.iter().filter_map(|dir| summarize(dir)));
    }
    if let Some(cache) = cache {
        // A run whose run.json cannot be read might be of this cache: listed, with its problem.
        runs.retain(|run| run.cache == cache || run.cache.as_os_str().is_empty());
        if !runs.is_empty() {
            let now = CacheStamp::of(&Cache::open(&cache)?);
            for run in &mut runs {
                run.cache_changed = run.cache_stamp.as_ref().is_some_and(|then| *then != now);
            }
        }
    }
    let accuracy = |run: &RunSummary| run.metrics.as_ref().map_or(-1.0, |m| m.accuracy);
    runs.sort_by(|a, b| accuracy(b).total_cmp(&accuracy(a)).then(a.name.cmp(&b.name)));
    Ok(runs)
}
