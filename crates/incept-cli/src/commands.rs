//! One function per subcommand: converts clap arguments into the libraries' config structs.

use std::sync::atomic::AtomicBool;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use incept_extract::{Augmentation, ExtractConfig};
use incept_head::{TrainConfig, TrainRequest, TrainedHead};

use crate::{ExtractArgs, MachineArgs, PresetArg, SettingsArgs, TrainArgs};

/// The extraction config of these flags; `data_dir` and `output` are the caller's.
pub fn extract_config(
    settings: &SettingsArgs,
    machine: &MachineArgs,
    data_dir: PathBuf,
    output: PathBuf,
    overwrite: bool,
) -> Result<ExtractConfig> {
    if !(0.0..1.0).contains(&settings.zoom_range) {
        bail!("--zoom-range {} must be in [0, 1)", settings.zoom_range);
    }
    if !(settings.channel_shift_range >= 0.0 && settings.channel_shift_range <= 255.0) {
        bail!("--channel-shift-range {} must be in [0, 255]", settings.channel_shift_range);
    }
    let brightness_range = match settings.brightness_range.as_deref() {
        None => None,
        Some(&[low, high]) => Some([low, high]),
        Some(other) => {
            bail!("--brightness-range {other:?} must be two numbers LOW,HIGH (e.g. 0.8,1.2)")
        }
    };
    let layer = settings.layer;
    let config = ExtractConfig {
        device: machine.device,
        model: match &settings.model {
            Some(model) => model.clone(),
            None => layer.find_model()?,
        },
        layer,
        copies: if settings.no_augment { 0 } else { settings.copies },
        augmentation: Augmentation {
            rotation_range_degrees: settings.rotation_range,
            width_shift_fraction: settings.width_shift_range,
            height_shift_fraction: settings.height_shift_range,
            shear_range_degrees: settings.shear_range,
            zoom_min: 1.0 - settings.zoom_range,
            zoom_max: 1.0 + settings.zoom_range,
            horizontal_flip: !settings.no_horizontal_flip,
            vertical_flip: settings.vertical_flip,
            channel_shift_range: settings.channel_shift_range,
            brightness_range,
        },
        data_dir,
        output,
        seed: settings.seed,
        batch_size: machine.batch_size,
        dtype: settings.dtype,
        overwrite,
        decode: incept_extract::DecodeOptions { allow_truncated: machine.allow_truncated },
        threads: machine.threads,
        segment_samples: machine.segment_samples,
        compression: machine.compression,
    };
    // The library's rule for every range (finite, not negative, LOW <= HIGH), said in flags.
    if let Err(reason) = config.augmentation.check() {
        bail!("--{}; pass ranges of at least 0, LOW <= HIGH", reason.replace('_', "-"));
    }
    Ok(config)
}

pub fn extract(args: ExtractArgs, interrupted: &AtomicBool) -> Result<()> {
    let (Some(data_dir), Some(output)) = (args.data_dir.clone(), args.output.clone()) else {
        return crate::sharding::run_shard(&args, interrupted);
    };
    let config = extract_config(&args.settings, &args.machine, data_dir, output, args.overwrite)?;
    let report = incept_extract::extract(&config, interrupted)?;
    print_extract_report(&report);
    println!("{}", config.output.display());
    Ok(())
}

/// The closing lines of an extraction, on stderr.
pub fn print_extract_report(report: &incept_extract::ExtractReport) {
    if !report.skipped.is_empty() {
        eprintln!("skipped {} unreadable files (named above)", report.skipped.len());
    }
    let busy = |d: std::time::Duration| d.as_secs_f64();
    eprintln!(
        "{} {} samples ({} in cache) from {} images in {:.1} s: {:.1} samples/s on {}; \
         decode+augment {:.1} s (worker time), inference {:.1} s, writing {:.1} s; {:.0} bytes/sample",
        if report.interrupted { "interrupted after" } else { "extracted" },
        report.samples_added,
        report.samples_total,
        report.images,
        report.wall.as_secs_f64(),
        report.samples_per_second(),
        if report.provider.is_empty() { "-" } else { &report.provider },
        busy(report.decode),
        busy(report.inference),
        busy(report.write),
        report.bytes_per_sample,
    );
}

/// Preset (or TOML file), then flags on top. When resuming without `--config` or `--preset`,
/// the run's saved configuration is the base: flags that are not repeated keep its values.
fn resolve_train_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut config = match (&args.config, &args.preset) {
        (Some(path), preset) => {
            TrainConfig::from_toml_file_with_preset(path, preset.map(PresetArg::name))?
        }
        (None, Some(preset)) => match preset {
            PresetArg::Default => TrainConfig::default_preset(),
            PresetArg::Blog => TrainConfig::blog_preset(),
            PresetArg::Bilinear => TrainConfig::bilinear_preset(),
        },
        (None, None) if args.resume => incept_head::run_folder::load_config(&args.run_dir)?,
        (None, None) => TrainConfig::default_preset(),
    };
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.batch_size {
        config.batch_size = v;
    }
    if let Some(v) = args.optimizer {
        config.optimizer = v;
    }
    if let Some(v) = args.learning_rate {
        config.learning_rate = v;
    }
    if let Some(v) = args.momentum {
        config.momentum = v;
    }
    if let Some(v) = args.weight_decay {
        config.weight_decay = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.validation_split {
        config.validation_split = v;
    }
    if let Some(v) = args.folds {
        if args.validation_split.is_some() {
            bail!(
                "--validation-split with --folds: a cross-validation validates each fold on a K-th of the photos; drop --validation-split"
            );
        }
        config.folds = v;
    }
    if let Some(v) = args.rebalance {
        config.rebalance = v;
    }
    if let Some(v) = args.select {
        config.select = v;
    }
    match args.patience {
        Some(v) => config.patience = v,
        // A resume keeps the run's patience unless --patience says otherwise, even when
        // --config (which may not name one) is repeated. An unreadable run is refused later.
        None if args.resume => {
            if let Ok(saved) = incept_head::run_folder::load_config(&args.run_dir) {
                config.patience = saved.patience;
            }
        }
        None => {}
    }
    if let Some(v) = &args.validation_cache {
        config.validation_cache = Some(v.clone());
    }
    if args.no_se {
        config.head.se = false;
    }
    if let Some(v) = args.pooling {
        config.head.pooling = v;
    }
    if let Some(v) = args.ensemble {
        config.head.ensemble = v;
    }
    if args.tta {
        config.tta = true;
    }
    if args.no_tta {
        config.tta = false;
    }
    if let Some(v) = args.memory_budget_mib {
        config.memory_budget_mib = v;
    }
    config.validate().with_context(|| match &args.config {
        Some(path) => format!("{} with the flags given", path.display()),
        None => "the flags given".to_owned(),
    })?;
    Ok(config)
}

pub fn train_head(args: TrainArgs, interrupted: &AtomicBool) -> Result<()> {
    let config = resolve_train_config(&args)?;
    let request = TrainRequest {
        cache: args.cache.clone(),
        run_dir: args.run_dir.clone(),
        config,
        resume: args.resume,
        backend: args.backend,
        verbose: true,
    };
    if request.config.folds > 0 {
        return cross_validate(&request, args.refit, interrupted);
    }
    if args.refit {
        bail!("--refit follows a cross-validation: pass --folds K too");
    }
    let report = incept_head::train(&request, interrupted)?;
    if report.interrupted {
        eprintln!("interrupted: the last finished epoch is saved; continue with --resume");
    }
    let metrics = &report.metrics;
    eprintln!(
        "trained on {} samples, validated on {} photos{}: best epoch {} (validation accuracy {:.3} \
         {}{}, balanced accuracy {:.3} {}, {}, macro-F1 {:.3} {}; 95 % intervals); {:.0} training \
         samples/s on {}; {:.1} s",
        report.train_samples,
        metrics.total(),
        if report.streaming { " (streamed from disk)" } else { "" },
        report.best_epoch,
        metrics.accuracy,
        metrics.accuracy_interval.ratio(),
        metrics.single_view_accuracy.zip(metrics.single_view_accuracy_interval).map_or_else(
            String::new,
            |(single, interval)| format!(" with TTA, {single:.3} {} single view", interval.ratio())
        ),
        metrics.balanced_accuracy,
        metrics.balanced_accuracy_interval.ratio(),
        metrics.worst_class.as_ref().map_or_else(
            || "no class with validation photos".to_owned(),
            |worst| format!(
                "worst class {} recall {:.3} {}",
                worst.class,
                worst.recall,
                worst.recall_interval.ratio()
            )
        ),
        metrics.macro_f1,
        metrics.macro_f1_interval.ratio(),
        report.samples_per_second,
        report.backend.name(),
        report.seconds,
    );
    print_calibration(&args.run_dir)?;
    println!("{}", args.run_dir.display());
    Ok(())
}

/// The calibration line of a trained run, on stderr.
fn print_calibration(run_dir: &Path) -> Result<()> {
    let state = incept_head::run_folder::load_state(run_dir)?;
    let tta = incept_head::run_folder::load_config(run_dir)?.tta;
    if let Some(calibration) = incept_head::run_folder::read_calibration(run_dir, &state, tta)? {
        eprintln!("{}", crate::calibration::fitted_line(&calibration));
    }
    Ok(())
}

/// `train-head --folds K`: the folds, their pooled figures, the refit.
fn cross_validate(request: &TrainRequest, refit: bool, interrupted: &AtomicBool) -> Result<()> {
    let report = incept_head::cross_validation::cross_validate(request, refit, interrupted)?;
    if report.interrupted {
        eprintln!(
            "interrupted: finished folds and the last finished epoch are saved; continue with --resume"
        );
        return Ok(());
    }
    let accuracies: Vec<String> =
        report.folds.iter().map(|f| format!("{:.1}", 100.0 * f.accuracy)).collect();
    if let Some(metrics) = &report.metrics {
        eprintln!(
            "{}-fold cross-validation, every photo validated once ({} photos): accuracy {:.3} {}{}, \
             balanced accuracy {:.3} {}, macro-F1 {:.3} {} (95 % intervals); folds: {} %; best \
             epochs {}; {:.1} s",
            report.folds.len(),
            metrics.total(),
            metrics.accuracy,
            metrics.accuracy_interval.ratio(),
            metrics.single_view_accuracy.zip(metrics.single_view_accuracy_interval).map_or_else(
                String::new,
                |(single, interval)| format!(
                    " with TTA, {single:.3} {} single view",
                    interval.ratio()
                )
            ),
            metrics.balanced_accuracy,
            metrics.balanced_accuracy_interval.ratio(),
            metrics.macro_f1,
            metrics.macro_f1_interval.ratio(),
            accuracies.join(", "),
            report.folds.iter().map(|f| f.best_epoch.to_string()).collect::<Vec<_>>().join(", "),
            report.seconds,
        );
    }
    if report.metrics.is_some() {
        print_calibration(&request.run_dir)?;
    }
    if report.refit {
        eprintln!(
            "refit on every photo for {} epochs: `incept predict` and `export` use it",
            report.refit_epochs
        );
    } else if !refit {
        eprintln!(
            "no head trained on every photo: add --refit --resume to train one for predict and export"
        );
    }
    println!("{}", request.run_dir.display());
    Ok(())
}

/// Whether the `.sha256` file beside `model` records `sha256` (a hint; the model is hashed anyway).
fn records_sha256(model: &Path, sha256: &str) -> bool {
    let recorded = model.with_extension("onnx.sha256");
    std::fs::read_to_string(recorded)
        .is_ok_and(|text| text.split_whitespace().next() == Some(sha256))
}

/// The backbone the head's cache was made with: `chosen` if it is that one, else the converted
/// model under `models/` whose sha256 the run recorded.
pub(crate) fn backbone_of(head: &TrainedHead, chosen: Option<&Path>) -> Result<PathBuf> {
    backbone_with_sha256(&head.state.cache_model_sha256, chosen, "this head was trained with")
}

/// The backbone whose sha256 is `wanted`: `chosen` if given (checked), else the first converted
/// model that is it. `whose` ends "not the backbone …" in messages.
pub(crate) fn backbone_with_sha256(
    wanted: &str,
    chosen: Option<&Path>,
    whose: &str,
) -> Result<PathBuf> {
    if let Some(path) = chosen {
        if !path.is_file() {
            return Err(incept_extract::Error::ModelMissing { path: path.to_path_buf() }.into());
        }
        if incept_core::sha256_file(path)? != wanted {
            bail!(
                "{}: not the backbone {whose} (model sha256 {wanted}); pass that model with \
                 --model",
                path.display()
            );
        }
        return Ok(path.to_path_buf());
    }
    // Candidates: the file INCEPT_MODEL names, each layer's converted model, then the int8 models
    // that `just model-int8` writes beside them, if any.
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    let mut converted: Vec<PathBuf> =
        incept_extract::model_from_environment(incept_extract::Layer::default())?
            .into_iter()
            .collect();
    for layer in incept_extract::Layer::ALL {
        match layer.find_converted() {
            Ok(model) => converted.push(model),
            Err(incept_extract::Error::ModelNotFound { layer, looked, convert }) => {
                missing.push(format!("{layer} (looked for {looked}; `{convert}` makes it)"));
            }
            Err(other) => return Err(other.into()),
        }
    }
    converted.dedup();
    let quantized =
        converted.iter().map(|model| model.with_extension("int8.onnx")).filter(|m| m.is_file());
    let mut candidates: Vec<PathBuf> = converted.iter().cloned().chain(quantized).collect();
    // Hashing a model reads all of it: the one whose recorded sha256 (the `.sha256` file the
    // converter writes beside it) is the wanted one goes first, so usually only it is read.
    candidates.sort_by_key(|candidate| !records_sha256(candidate, wanted));
    for candidate in candidates {
        if !candidate.is_file() {
            missing.push(candidate.display().to_string());
        } else if incept_core::sha256_file(&candidate)? == wanted {
            return Ok(candidate);
        } else {
            present.push(candidate.display().to_string());
        }
    }
    let mut found = Vec::new();
    if !present.is_empty() {
        found.push(format!("{} differ", present.join(", ")));
    }
    if !missing.is_empty() {
        found.push(format!("not found: {}", missing.join("; ")));
    }
    bail!(
        "no converted model is the backbone {whose} (model sha256 {wanted}): {}; pass that model \
         with --model, or make the missing ones in incept's folder",
        found.join("; ")
    )
}
