//! Validation: per photo, the head's class probabilities averaged over the photo's validated
//! samples, their loss, accuracy and metrics.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use incept_report::Metrics;

use super::setup::Run;
use crate::data::{argmax, mean_by_photo};
use crate::model::Head;
use crate::run_folder;
use crate::{Error, Result};

/// Validation predictions: per photo, the averaged class probabilities.
pub(super) struct Predictions {
    pub sources: Vec<String>,
    pub labels: Vec<usize>,
    pub probabilities: Vec<Vec<f64>>,
    /// Per photo, the probabilities of the photo alone (variant 0), when it was validated.
    pub single_view: Vec<Option<Vec<f64>>>,
    /// Mean cross-entropy of the averaged probabilities over the photos (weighted by class
    /// under rebalancing: `Run::validation_weights`).
    pub loss: f64,
}

impl Predictions {
    /// No photo: a refit's, which validates on nothing.
    pub fn none() -> Self {
        Predictions {
            sources: Vec::new(),
            labels: Vec::new(),
            probabilities: Vec::new(),
            single_view: Vec::new(),
            loss: 0.0,
        }
    }

    /// The photos as the report crate reads them back from `predictions.csv`.
    pub fn photos(&self) -> Vec<incept_report::PhotoPrediction> {
        self.sources
            .iter()
            .zip(&self.labels)
            .zip(&self.probabilities)
            .zip(&self.single_view)
            .map(|(((source, &truth), probabilities), single_view)| {
                incept_report::PhotoPrediction {
                    source: source.clone(),
                    truth,
                    predicted: argmax(probabilities),
                    probabilities: probabilities.clone(),
                    single_view_predicted: single_view.as_deref().map(argmax),
                    single_view_probabilities: single_view.clone(),
                }
            })
            .collect()
    }

    /// Share of the photos whose averaged probabilities pick their label.
    pub fn accuracy(&self) -> f64 {
        let correct = self
            .probabilities
            .iter()
            .zip(&self.labels)
            .filter(|(p, label)| argmax(p) == **label)
            .count();
        correct as f64 / self.labels.len().max(1) as f64
    }

    /// Their metrics; with test-time augmentation, also the single-view accuracy (each photo
    /// alone), when every photo's own view was validated.
    pub fn metrics(&self, classes: &[String], tta: bool) -> Result<Metrics> {
        photo_metrics(
            classes,
            &self.labels,
            self.probabilities.iter(),
            self.single_view.iter().map(Option::as_ref),
            tta,
        )
    }

    /// `predictions.csv` of them; with `tta`, each photo's single-view prediction too.
    pub fn to_csv(&self, classes: &[String], tta: bool) -> String {
        run_folder::predictions_csv(
            classes,
            &self.sources,
            &self.labels,
            &self.probabilities,
            tta.then_some(self.single_view.as_slice()),
            true,
        )
    }
}

/// The metrics of photos with their `labels` and (averaged) `probabilities`; with `tta`, also the
/// single-view accuracy from each photo's own view, when every photo's own view is there.
pub(crate) fn photo_metrics<'a>(
    classes: &[String],
    labels: &[usize],
    probabilities: impl Iterator<Item = &'a Vec<f64>>,
    single_view: impl Iterator<Item = Option<&'a Vec<f64>>>,
    tta: bool,
) -> Result<Metrics> {
    let predicted: Vec<usize> = probabilities.map(|p| argmax(p)).collect();
    let mut metrics = Metrics::from_labels(classes, labels, &predicted)?;
    if tta {
        metrics.set_single_view_accuracy(single_view_accuracy(single_view, labels));
    }
    Ok(metrics)
}

/// The accuracy of each photo's own view (`rows`, one per photo, with `labels`); `None` when a
/// photo's own view was not among the samples.
pub(crate) fn single_view_accuracy<'a>(
    rows: impl Iterator<Item = Option<&'a Vec<f64>>>,
    labels: &[usize],
) -> Option<f64> {
    let predicted: Vec<usize> = rows.map(|row| row.map(|r| argmax(r))).collect::<Option<_>>()?;
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    Some(correct as f64 / predicted.len().max(1) as f64)
}

/// Validates `model` (for inference, on `device`) on the run's validation samples: class
/// probabilities averaged per source photo.
///
/// # Shapes
/// Each batch: features [n, H, W, C] → probabilities [n, classes].
pub(super) fn predict_split(run: &Run, model: &Head, device: &Device) -> Result<Predictions> {
    let store = run.validation_store();
    let dims = store.sample_dims();
    let cache = store.cache();
    let classes = cache.classes.len();
    let pooling = run.config.head.pooling;
    let photos = mean_by_photo(
        store,
        &run.split.validation,
        run.config.batch_size.max(64),
        |l| l as usize,
        |values, n| {
            let x = Tensor::<4>::from_data(
                TensorData::new(values.to_vec(), [n, dims[0], dims[1], dims[2]]),
                device,
            );
            let log_probabilities = log_softmax(model.forward(x, pooling), 1).into_data();
            let rows =
                log_probabilities.try_to_vec::<f32>().map_err(|e| Error::Data(format!("{e:?}")))?;
            Ok(rows
                .chunks(classes)
                .map(|r| r.iter().map(|&lp| f64::from(lp).exp()).collect())
                .collect())
        },
    )?;
    let mut predictions = Predictions {
        sources: Vec::new(),
        labels: Vec::new(),
        probabilities: Vec::new(),
        single_view: Vec::new(),
        loss: 0.0,
    };
    // The mean cross-entropy, each photo weighed by its class as the run says.
    let mut weight_sum = 0.0;
    for photo in photos {
        let weight = run.validation_weights.as_ref().map_or(1.0, |weights| weights[photo.label]);
        predictions.loss -= weight * photo.probabilities[photo.label].max(1e-12).ln();
        weight_sum += weight;
        predictions.sources.push(cache.sources[photo.source as usize].clone());
        predictions.labels.push(photo.label);
        predictions.probabilities.push(photo.probabilities);
        predictions.single_view.push(photo.single_view);
    }
    predictions.loss /= if weight_sum > 0.0 { weight_sum } else { 1.0 };
    Ok(predictions)
}

/// The metrics of the run's best epoch: of `best` (its predictions, when this command trained
/// it), else as committed with it; recomputed from `best.bpk` (and written) only for a run of an
/// earlier version, whose checkpoints did not hold them.
pub(super) fn best_metrics(run: &Run, best: Option<Predictions>) -> Result<Metrics> {
    if let Some(predictions) = best {
        return predictions.metrics(&run.classes, run.config.tta);
    }
    if let Some(committed) = run_folder::read_metrics(&run.run_dir, &run.state)? {
        return Ok(committed);
    }
    if run.state.best_epoch == 0 {
        return Err(Error::NotARun {
            path: run.run_dir.clone(),
            reason: "no epoch finished".into(),
        });
    }
    let validation_device = run.validation_device();
    let loaded = run_folder::load_best_weights(
        Head::new(&run.config.head, run.shape, run.classes.len(), &validation_device),
        &run.run_dir,
        &run.state,
    )?;
    let metrics =
        predict_split(run, &loaded, &validation_device)?.metrics(&run.classes, run.config.tta)?;
    run_folder::write_metrics_json(&run.run_dir, &metrics)?;
    Ok(metrics)
}
