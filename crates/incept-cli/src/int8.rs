//! `export --int8`: what the int8 backbone does to a run's answers, measured when it is exported.
//! The head was trained on the float backbone's features; the int8 one's differ a little, so the
//! run's validation photos are classified through both, side by side, and the page states the
//! accuracies.

use std::path::Path;

use anyhow::{Context, Result, bail};
use incept_export::web::Int8Check;
use incept_extract::{Augmentation, Backbone, ClassifyOptions, Device, Photo, Views};
use incept_head::TrainedHead;
use incept_head::run_folder::{self, PREDICTIONS_CSV};
use incept_report::calibration::apply_temperature;

/// Classifies the run's validation photos (found under `photos_dir` by the paths the cache
/// recorded) with the head on `float_model` and on `int8_model`.
pub fn check(
    head: &TrainedHead,
    validation_run: &Path,
    photos_dir: &Path,
    float_model: &Path,
    int8_model: &Path,
) -> Result<Int8Check> {
    let state = run_folder::load_state(validation_run)?;
    // A cross-validation's pooled predictions list every photo, all of which its refit trained on.
    let trained_on = state.cross_validation.is_some();
    let predictions_csv = run_folder::committed_file(validation_run, PREDICTIONS_CSV, &state);
    let validated = incept_report::read_predictions_csv(&predictions_csv, head.classes())?;
    let photos: Vec<Photo> = validated
        .iter()
        .map(|p| Photo { path: photos_dir.join(&p.source), key: p.source.clone() })
        .collect();
    if photos.is_empty() {
        bail!(
            "--int8 measures the int8 backbone on the run's validation photos, and {} has none \
             (a refit? export the cross-validation's folder instead)",
            validation_run.display()
        );
    }
    if let Some(missing) = photos.iter().find(|p| !p.path.is_file()) {
        bail!(
            "--int8 measures the int8 backbone on the run's validation photos, and {} is not \
             there; pass --photos the folder the cache was extracted from (the one holding its \
             class sub-folders)",
            missing.path.display()
        );
    }
    let temperature = head.temperature(false).unwrap_or(1.0);
    let answers = |model: &Path| -> Result<Vec<Option<usize>>> {
        let mut backbone = Backbone::load(model, Device::Cpu, 0)?;
        let options = ClassifyOptions {
            views: Views { variants: vec![0], augmentation: Augmentation::default(), seed: 0 },
            batch_size: 16,
            decode: incept_extract::DecodeOptions::default(),
        };
        let mut by_path = std::collections::HashMap::new();
        incept_extract::classify(
            &photos,
            &mut backbone,
            &options,
            |features, rows| Ok::<_, anyhow::Error>(head.probabilities(features, rows)?),
            |paths, probabilities| {
                for (path, row) in paths.iter().zip(probabilities) {
                    let row = apply_temperature(row, temperature);
                    let top = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b]));
                    by_path.insert(path.to_path_buf(), top);
                }
            },
        )
        .with_context(|| format!("classifying the validation photos with {}", model.display()))?;
        Ok(photos.iter().map(|p| by_path.get(&p.path).copied().flatten()).collect())
    };
    eprintln!("--int8: the run's {} validation photos through both backbones", photos.len());
    let float = answers(float_model)?;
    let int8 = answers(int8_model)?;
    let share = |count: usize| count as f64 / photos.len().max(1) as f64;
    let right = |answers: &[Option<usize>]| {
        share(answers.iter().zip(&validated).filter(|(a, p)| **a == Some(p.truth)).count())
    };
    Ok(Int8Check {
        photos: photos.len(),
        trained_on,
        float_accuracy: right(&float),
        int8_accuracy: right(&int8),
        agreement: share(float.iter().zip(&int8).filter(|(a, b)| a.is_some() && a == b).count()),
        // Known once the classifier is written: `with_float_size`.
        float_model_bytes: 0,
    })
}

/// `check` with the size the float classifier would have: the int8 one's `int8_classifier_bytes`
/// less its backbone plus the float backbone (the head's nodes are the same).
pub fn with_float_size(
    check: Int8Check,
    int8_classifier_bytes: u64,
    float_model: &Path,
    int8_model: &Path,
) -> Result<Int8Check> {
    let size = |path: &Path| -> Result<u64> {
        Ok(std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len())
    };
    let float_model_bytes =
        (int8_classifier_bytes + size(float_model)?).saturating_sub(size(int8_model)?);
    Ok(Int8Check { float_model_bytes, ..check })
}
