//! `incept report`: one self-contained HTML page about a trained head, for people who open it
//! in a browser: figures, confusion matrix, training curves and the photos behind the mistakes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use incept_head::run_folder::{self, PREDICTIONS_CSV};
use incept_head::{Backend, TrainConfig, TrainedHead};
use incept_report::{EpochCurve, Layout, PhotoPrediction, ReportData};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run folder made by `incept train-head`.
    pub run_dir: PathBuf,
    /// The HTML file to write (replaced whole).
    #[arg(short, long)]
    pub output: PathBuf,
    /// The folder the cache was extracted from (the one holding its class sub-folders): photos
    /// are found there by the path the cache recorded for them.
    #[arg(long, value_name = "DATA_DIR")]
    pub photos: PathBuf,
    /// Evaluate the head on this cache instead of showing the run's validation predictions.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// With --cache: average each photo's probabilities over its variants in the cache.
    #[arg(long, requires = "cache")]
    pub tta: bool,
    /// Most confused (true, predicted) pairs shown with their photos.
    #[arg(long, default_value_t = 4)]
    pub confused_pairs: usize,
    /// Photos shown per confused pair, the most confident mistakes first.
    #[arg(long, default_value_t = 12)]
    pub photos_per_pair: usize,
    /// Photos shown in the top-losses section (lowest probability of their true class).
    #[arg(long, default_value_t = 24)]
    pub top_losses: usize,
    /// Photos shown in the probably-mislabelled section (as `incept suspects` lists them).
    #[arg(long, default_value_t = 24)]
    pub suspects: usize,
}

pub fn report(args: &ReportArgs) -> Result<()> {
    let run_dir = &args.run_dir;
    let state = run_folder::load_state(run_dir)?;
    let config = run_folder::load_config(run_dir)?;
    if state.best_epoch == 0 {
        bail!("{}: no epoch has finished yet: nothing to report", run_dir.display());
    }
    let classes = state.classes.clone();
    let (predictions, metrics, predictions_from, tta) = match &args.cache {
        Some(cache) => {
            let head = TrainedHead::load(run_dir, Backend::default())?;
            eprintln!("report: evaluating the head on {}", cache.display());
            let photos = head.predict_cache(cache, args.tta)?;
            let metrics = head.metrics_of(&photos, args.tta)?;
            let predictions: Vec<PhotoPrediction> = photos
                .into_iter()
                .map(|photo| PhotoPrediction {
                    predicted: photo.predicted(),
                    single_view_predicted: photo.single_view_predicted().filter(|_| args.tta),
                    single_view_probabilities: photo.single_view.clone().filter(|_| args.tta),
                    source: photo.source,
                    truth: photo.label,
                    probabilities: photo.probabilities,
                })
                .collect();
            let from = format!(
                "The head evaluated on every photo of {}{}.",
                cache.display(),
                if args.tta {
                    ", each photo's probabilities averaged over its variants in the cache (TTA)"
                } else {
                    ", each photo alone (variant 0)"
                }
            );
            (predictions, metrics, from, args.tta)
        }
        None => {
            let path = run_folder::committed_file(run_dir, PREDICTIONS_CSV, &state);
            let predictions = incept_report::read_predictions_csv(&path, &classes)?;
            let mut metrics = incept_report::metrics_of(&classes, &predictions)?;
            // metrics.json holds what predictions.csv cannot: each photo's single-view result.
            if let Some(recorded) = run_folder::read_metrics(run_dir, &state)? {
                if recorded.matrix == metrics.matrix {
                    metrics.set_single_view_accuracy(recorded.single_view_accuracy);
                } else {
                    // Two evaluations: show one, whole, and no figure of the other.
                    eprintln!(
                        "warning: {}: its confusion matrix differs from {}'s; the page shows the \
                         predictions' figures only (no single-view accuracy)",
                        run_dir.join(run_folder::METRICS_JSON).display(),
                        path.display()
                    );
                }
            }
            (predictions, metrics, own_validation(&config, &state.cache), config.tta)
        }
    };
    let epochs: Vec<EpochCurve> = epochs(run_dir, &state)
        .iter()
        .map(|e| EpochCurve {
            epoch: e.epoch,
            train_loss: e.train_loss,
            train_accuracy: e.train_accuracy,
            validation_loss: e.validation_loss,
            validation_accuracy: e.validation_accuracy,
        })
        .collect();
    let data = ReportData {
        run_name: run_dir.file_name().map_or_else(
            || run_dir.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        ),
        run_dir: run_dir.clone(),
        recipe: recipe(&config, &state.cache),
        recipe_text: std::fs::read_to_string(run_dir.join(run_folder::CONFIG_FILE)).ok(),
        metrics,
        predictions,
        predictions_from,
        tta,
        epochs,
        // A cross-validation's folds each have their own best epoch.
        best_epoch: (args.cache.is_none() && state.cross_validation.is_none())
            .then_some(state.best_epoch),
        photos_dir: args.photos.clone(),
        calibration: None,
    };
    let data = ReportData {
        calibration: report_calibration(
            &args.run_dir,
            &state,
            &config,
            &data,
            args.cache.is_none(),
        )?,
        ..data
    };
    let layout = Layout {
        confused_pairs: args.confused_pairs,
        photos_per_pair: args.photos_per_pair,
        top_losses: args.top_losses,
        suspects: args.suspects,
        ..Layout::default()
    };
    let page = incept_report::build_html(&data, &layout)?;
    for warning in &page.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
    }
    incept_report::write_html(&args.output, &page)?;
    eprintln!(
        "report of {} photos ({} thumbnails, {} placeholders, {} bytes) written to {}",
        data.predictions.len(),
        page.thumbnails,
        page.placeholders,
        page.html.len(),
        args.output.display()
    );
    Ok(())
}

/// The temperature the report judges: the single view's where the predictions hold each
/// photo's own view, else the TTA means'; `None` when the run has no fitting one.
fn report_calibration(
    run_dir: &Path,
    state: &run_folder::RunState,
    config: &TrainConfig,
    data: &ReportData,
    own_validation: bool,
) -> Result<Option<incept_report::ReportCalibration>> {
    let Some(calibration) = run_folder::read_calibration(run_dir, state, config.tta)? else {
        return Ok(None);
    };
    let single_views = data.predictions.iter().all(|p| p.single_view(data.tta).is_some());
    let (temperature, tta) = match (single_views, calibration.temperature(false)) {
        (true, Some(temperature)) => (temperature, false),
        _ if data.tta => match calibration.temperature(true) {
            Some(temperature) => (temperature, true),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let fitted = if tta { calibration.tta.as_ref() } else { calibration.single_view.as_ref() };
    let photos = fitted.map_or(0, |c| c.figures.photos);
    let fitted_on = match calibration.fitted_on {
        run_folder::FittedOn::Validation => format!("the run's {photos} validation photos"),
        run_folder::FittedOn::OutOfFold => {
            format!("the out-of-fold predictions of all {photos} photos of the cross-validation")
        }
    };
    Ok(Some(incept_report::ReportCalibration {
        temperature,
        tta,
        fitted_on,
        fitted_here: own_validation,
    }))
}

/// Where a run's own validation predictions come from, one sentence.
fn own_validation(config: &TrainConfig, cache: &Path) -> String {
    let photos = match &config.validation_cache {
        None if config.folds > 0 => format!(
            "every photo of {}, by the head of the one of {} folds that held it out from training \
             (a cross-validation split by photo, stratified by class; each fold's best epoch)",
            cache.display(),
            config.folds
        ),
        Some(validation) => format!("the photos of the validation cache {}", validation.display()),
        None => format!(
            "the {:.0}% of the photos of {} held out from training (split by photo)",
            100.0 * config.validation_split,
            cache.display()
        ),
    };
    let views = if config.tta {
        "each photo's probabilities are the mean over the photo and its augmented copies in the \
         cache (test-time augmentation, TTA)"
    } else {
        "each photo alone (variant 0, no test-time augmentation)"
    };
    format!("The run's validation predictions (predictions.csv, best epoch): {photos}; {views}.")
}

/// The recipe's main fields, as the page lists them.
fn recipe(config: &TrainConfig, cache: &Path) -> Vec<(String, String)> {
    let head = &config.head;
    let list = |values: Vec<String>| format!("[{}]", values.join(", "));
    let mut fields = vec![
        ("cache".to_owned(), cache.display().to_string()),
        ("head".to_owned(), config.head_summary()),
        ("preset".to_owned(), config.preset.clone()),
        (
            "epochs".to_owned(),
            match config.patience {
                0 => config.epochs.to_string(),
                patience => format!(
                    "{} (stopping early after {patience} without a better one)",
                    config.epochs
                ),
            },
        ),
        ("batch size".to_owned(), config.batch_size.to_string()),
        ("optimizer".to_owned(), format!("{:?}", config.optimizer).to_lowercase()),
        (
            "learning rate".to_owned(),
            format!(
                "{} (cosine schedule down to {} of it)",
                config.learning_rate, config.final_learning_rate_fraction
            ),
        ),
        ("weight decay".to_owned(), config.weight_decay.to_string()),
        ("label smoothing".to_owned(), config.label_smoothing.to_string()),
        (
            "mixup".to_owned(),
            if config.mixup_alpha > 0.0 {
                format!("alpha {}", config.mixup_alpha)
            } else {
                "no".into()
            },
        ),
        ("pooling".to_owned(), format!("{:?}", head.pooling).to_lowercase()),
        (
            "squeeze-and-excitation".to_owned(),
            if head.se { format!("yes, reduction {}", head.se_reduction) } else { "no".into() },
        ),
        ("dense layers".to_owned(), list(head.dense.iter().map(usize::to_string).collect())),
        ("dropout".to_owned(), list(head.dropout.iter().map(f64::to_string).collect())),
        ("ensemble".to_owned(), head.ensemble.to_string()),
        ("test-time augmentation".to_owned(), if config.tta { "yes" } else { "no" }.to_owned()),
        ("seed".to_owned(), config.seed.to_string()),
    ];
    if config.optimizer == incept_head::OptimizerKind::Sgd {
        fields.push(("momentum".to_owned(), config.momentum.to_string()));
    }
    fields.push(match &config.validation_cache {
        Some(validation) => ("validation".to_owned(), validation.display().to_string()),
        None if config.folds > 0 => {
            ("cross-validation".to_owned(), format!("{} folds", config.folds))
        }
        None => ("validation split".to_owned(), config.validation_split.to_string()),
    });
    fields
}

/// Every finished epoch: from `run.json`, or for runs from before it recorded them, from
/// `metrics.csv` (a run without either is reported without curves, with a warning).
fn epochs(run_dir: &Path, state: &run_folder::RunState) -> Vec<run_folder::EpochRecord> {
    if !state.epochs.is_empty() {
        return state.epochs.clone();
    }
    run_folder::records_from_metrics_csv(run_dir, state.completed_epochs).unwrap_or_else(|error| {
        eprintln!("warning: {error}; the report has no training curves");
        Vec::new()
    })
}
