//! Cross-validation (`train-head --folds K [--refit]`): K runs in one run folder, each validating
//! on a different K-th of the photos ([`crate::data::split_by_fold`]), their out-of-fold
//! predictions pooled so that every photo is judged once, by the head that never trained on it;
//! with `--refit`, the recipe trained again on every photo for the folds' best epoch count.
//!
//! The run folder (docs/FORMATS.md, "Cross-validation"): `config.toml` (the recipe, `folds = K`)
//! and `run.json` (with a `cross_validation` record) written first, then `folds/fold-k/`, each an
//! ordinary run folder with every guarantee of one (a kill anywhere, `--resume`), then the pooled
//! `predictions.csv` and `metrics.json`, then `refit/`. `run.json` says what is finished; a
//! resumed cross-validation skips finished folds and resumes the one that was stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use incept_cache::Cache;
use incept_report::{Metrics, PhotoPrediction, read_predictions_csv};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::photos_per_class;
use crate::run_folder::{
    self, CALIBRATION_JSON, FittedOn, METRICS_JSON, PREDICTIONS_CSV, RunCalibration, RunState,
    committed_file, holds_a_run, load_state, read_metrics, save_state, write_file,
};
use crate::train::{TrainRequest, train};
use crate::{Error, Result};

/// The folder of the fold runs, inside the cross-validation's run folder.
pub const FOLDS_DIR: &str = "folds";
/// The refit's run folder, inside the cross-validation's.
pub const REFIT_DIR: &str = "refit";

/// What `run.json` of a cross-validation records beside an ordinary run's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    pub folds: usize,
    /// The finished folds, in order.
    pub fold_results: Vec<FoldResult>,
    /// Epochs of the refit (the median of the folds' best epochs, the lower of the two middle
    /// ones for an even K); 0 until every fold has finished.
    pub refit_epochs: usize,
    /// Whether `refit/` holds a finished refit: `predict` and `export` use it.
    pub refit: bool,
}

/// One finished fold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: usize,
    pub best_epoch: usize,
    /// Validation photos of the fold.
    pub photos: usize,
    /// Its validation accuracy at its best epoch (with TTA when the recipe says so).
    pub accuracy: f64,
    pub train_seconds: f64,
}

/// What [`cross_validate`] did.
#[derive(Clone, Debug)]
pub struct CrossValidationReport {
    /// Of the pooled out-of-fold predictions: every photo once.
    pub metrics: Option<Metrics>,
    pub folds: Vec<FoldResult>,
    /// Whether the cross-validation has a finished refit (a head for `predict` and `export`).
    pub refit: bool,
    pub refit_epochs: usize,
    pub interrupted: bool,
    pub seconds: f64,
}

/// The run folder of fold `fold` of the cross-validation in `run_dir`.
pub fn fold_dir(run_dir: &Path, fold: usize) -> PathBuf {
    run_dir.join(FOLDS_DIR).join(format!("fold-{fold}"))
}

/// Runs (or resumes) the K-fold cross-validation `request.config.folds` asks for, in
/// `request.run_dir`; with `refit`, then trains the recipe on every photo in `refit/`.
pub fn cross_validate(
    request: &TrainRequest,
    refit: bool,
    interrupted: &AtomicBool,
) -> Result<CrossValidationReport> {
    let started = Instant::now();
    let run_dir = &request.run_dir;
    let _lock = run_folder::lock(run_dir)?;
    let (config, mut state) = open(request)?;
    let folds = config.folds;
    let mut report = CrossValidationReport {
        metrics: None,
        folds: Vec::new(),
        refit: false,
        refit_epochs: 0,
        interrupted: false,
        seconds: 0.0,
    };
    for fold in 1..=folds {
        if let Some(done) = cross_validation(&state)?.fold_results.iter().find(|r| r.fold == fold) {
            report.folds.push(done.clone());
            continue;
        }
        let dir = fold_dir(run_dir, fold);
        eprintln!("fold {fold}/{folds}: {}", dir.display());
        let fold_config = TrainConfig { fold, ..config.clone() };
        let Some(part) = train_part(request, &state, &dir, fold_config, interrupted)? else {
            report.interrupted = true;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        };
        let result = FoldResult {
            fold,
            best_epoch: part.state.best_epoch,
            photos: part.metrics.total(),
            accuracy: part.metrics.accuracy,
            train_seconds: part.state.train_seconds,
        };
        eprintln!(
            "fold {fold}/{folds}: best epoch {}, validation accuracy {:.3} on {} photos",
            result.best_epoch, result.accuracy, result.photos
        );
        let record = cross_validation_mut(&mut state)?;
        record.fold_results.push(result.clone());
        state.train_seconds += result.train_seconds;
        save_state(run_dir, &state)?;
        report.folds.push(result);
    }
    // Every fold finished: the pooled predictions, then the refit.
    let metrics = pool(run_dir, &state, config.tta)?;
    let refit_epochs = median_best_epoch(&report.folds);
    report.refit_epochs = refit_epochs;
    state.best_validation_accuracy = metrics.accuracy;
    report.metrics = Some(metrics);
    state.best_epoch = refit_epochs;
    state.completed_epochs = config.epochs;
    cross_validation_mut(&mut state)?.refit_epochs = refit_epochs;
    state.finished = !refit || cross_validation(&state)?.refit;
    save_state(run_dir, &state)?;
    if refit && !cross_validation(&state)?.refit {
        let dir = run_dir.join(REFIT_DIR);
        eprintln!("refit on every photo for {refit_epochs} epochs: {}", dir.display());
        let refit_config = TrainConfig { folds: 0, fold: 0, refit_epochs, ..config.clone() };
        let Some(part) = train_part(request, &state, &dir, refit_config, interrupted)? else {
            report.interrupted = true;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        };
        cross_validation_mut(&mut state)?.refit = true;
        state.train_seconds += part.state.train_seconds;
        state.finished = true;
        save_state(run_dir, &state)?;
    }
    report.refit = cross_validation(&state)?.refit;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A finished fold or refit: its `run.json` and best epoch's metrics.
struct Part {
    state: RunState,
    metrics: Metrics,
}

/// Trains (or resumes) one part of the cross-validation, a fold or the refit, in `dir` with
/// `config`, on the cross-validation's cache and backend; `None` when it was interrupted.
fn train_part(
    request: &TrainRequest,
    state: &RunState,
    dir: &Path,
    config: TrainConfig,
    interrupted: &AtomicBool,
) -> Result<Option<Part>> {
    // A part that finished before a kill kept run.json from recording it is read back, not
    // opened again (opening a bilinear run pools the whole cache, for no epoch).
    if holds_a_run(dir) {
        let finished = load_state(dir)?;
        if finished.finished {
            let metrics = read_metrics(dir, &finished)?.ok_or_else(|| Error::NotARun {
                path: dir.to_path_buf(),
                reason: "finished, but its metrics.json is missing".into(),
            })?;
            return Ok(Some(Part { state: finished, metrics }));
        }
    }
    let part = TrainRequest {
        cache: request.cache.clone(),
        run_dir: dir.to_path_buf(),
        config,
        resume: holds_a_run(dir),
        backend: Some(state.backend),
        verbose: request.verbose,
    };
    let trained = train(&part, interrupted)?;
    if trained.interrupted {
        return Ok(None);
    }
    Ok(Some(Part { state: load_state(dir)?, metrics: trained.metrics }))
}

/// Starts the cross-validation's run folder, or reads it back when resuming; checks the recipe
/// and that every class has a photo for every fold, before anything is written.
fn open(request: &TrainRequest) -> Result<(TrainConfig, RunState)> {
    let run_dir = &request.run_dir;
    let mut config = request.config.clone();
    config.validate()?;
    let cache = Cache::open(&request.cache)?;
    let previous = if request.resume { Some(load_state(run_dir)?) } else { None };
    if let Some(state) = &previous {
        if state.cross_validation.is_none() {
            return Err(Error::NotARun {
                path: run_dir.clone(),
                reason:
                    "it holds a run of one split, not a cross-validation; resume it without --folds"
                        .into(),
            });
        }
        let (saved, extension) = crate::resume::resume_config(run_dir, state, &config)?;
        if extension.is_some() {
            return Err(Error::ResumeChanges {
                path: run_dir.clone(),
                changes: "--epochs or --patience (a cross-validation is resumed as it began, so that its folds follow one rule; change them by starting a new one)".into(),
            });
        }
        crate::resume::check_same_cache(state, &cache)?;
        config = saved;
    } else if holds_a_run(run_dir) {
        return Err(Error::RunExists { path: run_dir.clone() });
    }
    let folds = config.folds;
    if let Some((class, photos)) = cache
        .classes
        .iter()
        .zip(photos_per_class(&cache))
        .filter(|(_, photos)| *photos < folds)
        .min_by_key(|(_, photos)| *photos)
    {
        return Err(Error::Config(format!(
            "{}: class {class:?} has {photos} photos, fewer than --folds {folds}: every fold validates on at least one photo of each class; use --folds {} or fewer, or add photos",
            cache.path.display(),
            photos.max(2)
        )));
    }
    if let Some(state) = previous {
        return Ok((config, state));
    }
    let canonical = std::fs::canonicalize(&cache.path)
        .map_err(|source| Error::Io { path: cache.path.clone(), source })?;
    let mut state = RunState::new(&cache, canonical, request.backend.unwrap_or_default());
    state.cross_validation =
        Some(CrossValidation { folds, fold_results: Vec::new(), refit_epochs: 0, refit: false });
    run_folder::start(run_dir, &config, &state)?;
    Ok((config, state))
}

fn cross_validation(state: &RunState) -> Result<&CrossValidation> {
    state.cross_validation.as_ref().ok_or_else(|| Error::Data("not a cross-validation".into()))
}

fn cross_validation_mut(state: &mut RunState) -> Result<&mut CrossValidation> {
    state.cross_validation.as_mut().ok_or_else(|| Error::Data("not a cross-validation".into()))
}

/// The median of the folds' best epochs (the lower middle one for an even count), at least 1.
fn median_best_epoch(folds: &[FoldResult]) -> usize {
    let mut epochs: Vec<usize> = folds.iter().map(|f| f.best_epoch).collect();
    epochs.sort_unstable();
    epochs.get(epochs.len().saturating_sub(1) / 2).copied().unwrap_or(1).max(1)
}

/// Pools the folds' validation predictions (every photo once) into the cross-validation's
/// `predictions.csv` and `metrics.json`; returns their metrics.
fn pool(run_dir: &Path, state: &RunState, tta: bool) -> Result<Metrics> {
    let classes = &state.classes;
    let mut pooled: Vec<PhotoPrediction> = Vec::new();
    for result in &cross_validation(state)?.fold_results {
        let dir = fold_dir(run_dir, result.fold);
        let fold_state = load_state(&dir)?;
        let path = committed_file(&dir, PREDICTIONS_CSV, &fold_state);
        pooled.extend(read_predictions_csv(&path, classes)?);
    }
    pooled.sort_by(|a, b| a.source.cmp(&b.source));
    // The class the written (rounded) probabilities pick, so that the file and its metrics
    // agree even where rounding made two classes equal.
    for photo in &mut pooled {
        photo.predicted = crate::data::argmax(&photo.probabilities);
    }
    if let Some(twice) = pooled.windows(2).find(|pair| pair[0].source == pair[1].source) {
        return Err(Error::Data(format!(
            "{}: photo {} is in two folds' validation; the folds do not partition the photos",
            run_dir.display(),
            twice[0].source
        )));
    }
    let mut metrics = incept_report::metrics_of(classes, &pooled)?;
    if tta {
        let single: Option<Vec<bool>> =
            pooled.iter().map(|p| p.single_view_predicted.map(|s| s == p.truth)).collect();
        metrics.set_single_view_accuracy(
            single.map(|s| s.iter().filter(|x| **x).count() as f64 / s.len().max(1) as f64),
        );
    }
    write_file(&run_dir.join(PREDICTIONS_CSV), predictions_csv(classes, &pooled, tta).as_bytes())?;
    write_file(&run_dir.join(METRICS_JSON), metrics.to_json().as_bytes())?;
    let calibration = RunCalibration::fit(&pooled, tta, FittedOn::OutOfFold);
    write_file(&run_dir.join(CALIBRATION_JSON), calibration.to_json().as_bytes())?;
    Ok(metrics)
}

/// `predictions.csv` of photos read back from the folds' (probabilities as they were written);
/// single-view probabilities when every photo's fold recorded them.
fn predictions_csv(classes: &[String], photos: &[PhotoPrediction], tta: bool) -> String {
    let with_probabilities = photos.iter().all(|p| p.single_view_probabilities.is_some());
    let single_view: Vec<Option<Vec<f64>>> = photos
        .iter()
        .map(|p| match (&p.single_view_probabilities, p.single_view_predicted) {
            (Some(row), _) if with_probabilities => Some(row.clone()),
            // Folds of an earlier incept: the single-view class as a one-hot row (the writer
            // records only its argmax then).
            (_, Some(class)) => {
                let mut row = vec![0.0; classes.len()];
                row[class] = 1.0;
                Some(row)
            }
            (_, None) => None,
        })
        .collect();
    let sources: Vec<String> = photos.iter().map(|p| p.source.clone()).collect();
    let labels: Vec<usize> = photos.iter().map(|p| p.truth).collect();
    let probabilities: Vec<Vec<f64>> = photos.iter().map(|p| p.probabilities.clone()).collect();
    run_folder::predictions_csv(
        classes,
        &sources,
        &labels,
        &probabilities,
        tta.then_some(single_view.as_slice()),
        with_probabilities,
    )
}
