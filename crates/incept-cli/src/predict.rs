//! `incept predict`: classify photos with a run's head on the backbone its cache was made with.

use std::path::Path;

use anyhow::{Context, Result, bail};
use incept_extract::{Augmentation, Backbone, ClassifyOptions, Views};
use incept_head::{Backend, TrainedHead};
use incept_report::calibration::apply_temperature;

use crate::commands::backbone_of;
use crate::{PredictArgs, PredictFormatArg};

pub fn predict(args: PredictArgs) -> Result<()> {
    let head = TrainedHead::load(&args.run_dir, Backend::default())?;
    let model = backbone_of(&head, args.model.as_deref())?;
    let mut backbone = Backbone::load(&model, args.device, 0)?;
    let (augmentation, seed) = tta_views(&head, args.tta)?;
    let temperature = head.temperature(args.tta > 0);
    if temperature.is_none() && args.min_confidence.is_some() {
        eprintln!(
            "warning: --min-confidence applies to the head's own probabilities here; a \
             threshold read off the report is one for calibrated ones"
        );
    }
    if temperature.is_none() {
        eprintln!(
            "note: {} has no temperature (no validation photo, a TTA run of an earlier \
             incept, or every validation photo right: a degenerate fit): probabilities are the head's own",
            args.run_dir.display()
        );
    }
    let (photos, warnings) = incept_extract::photos_in(&args.inputs);
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let options = ClassifyOptions {
        views: Views { variants: (0..=args.tta).collect(), augmentation, seed },
        batch_size: args.batch_size,
        decode: incept_extract::DecodeOptions { allow_truncated: args.allow_truncated },
    };
    let report = incept_extract::classify(
        &photos,
        &mut backbone,
        &options,
        |features, rows| Ok::<_, anyhow::Error>(head.probabilities(features, rows)?),
        |paths, probabilities| {
            let calibrated: Vec<Vec<f64>> = match temperature {
                Some(t) => probabilities.iter().map(|row| apply_temperature(row, t)).collect(),
                None => probabilities.to_vec(),
            };
            print_predictions(paths, &calibrated, head.classes(), &args)
        },
    )?;
    eprintln!(
        "classified {} images{}; {} unreadable",
        report.classified,
        if args.tta > 0 {
            format!(" (each averaged over itself and {} augmented views)", args.tta)
        } else {
            String::new()
        },
        report.unreadable.len()
    );
    if report.classified == 0 {
        bail!("no image could be classified");
    }
    Ok(())
}

/// The augmentation and seed `--tta` draws views with: those of the head's cache.
fn tta_views(head: &TrainedHead, tta: u32) -> Result<(Augmentation, u64)> {
    if tta == 0 {
        return Ok((Augmentation::default(), 0));
    }
    let cache_path = &head.state.cache;
    let cache = incept_cache::Cache::open(cache_path).context(
        "--tta draws views as the head's cache drew its variants, so it needs that cache",
    )?;
    let augmentation =
        Augmentation::from_json(&cache.settings.augmentation).with_context(|| {
            format!(
                "{}: holds no augmented copies (extracted with --copies 0), so there is no \
             augmentation to draw views with; predict without --tta",
                cache_path.display()
            )
        })?;
    if cache.settings.augmentation_version != incept_extract::ALGORITHM_VERSION {
        bail!(
            "{}: its variants were drawn by augmentation version {}, this incept draws version {}; \
             --tta would average other views than the head was validated with",
            cache_path.display(),
            cache.settings.augmentation_version,
            incept_extract::ALGORITHM_VERSION
        );
    }
    if tta > cache.settings.copies {
        eprintln!(
            "note: --tta {tta} draws more views than the {} copies the head was validated with",
            cache.settings.copies
        );
    }
    Ok((augmentation, cache.settings.seed))
}

fn print_predictions(
    names: &[&Path],
    probabilities: &[Vec<f64>],
    classes: &[String],
    args: &PredictArgs,
) {
    for (path, row) in names.iter().zip(probabilities) {
        let mut ranked: Vec<(usize, f64)> = row.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(args.top_k.max(1));
        let uncertain =
            args.min_confidence.is_some_and(|p| ranked.first().is_none_or(|top| top.1 < p));
        match args.format {
            PredictFormatArg::Json => {
                let top: Vec<serde_json::Value> = ranked
                    .iter()
                    .map(|(c, p)| serde_json::json!({"class": classes[*c], "probability": p}))
                    .collect();
                let mut line = serde_json::json!({"path": path.display().to_string(), "top": top});
                if args.min_confidence.is_some() {
                    line["uncertain"] = serde_json::Value::Bool(uncertain);
                }
                println!("{line}");
            }
            PredictFormatArg::Table => {
                let mut cells: Vec<String> = ranked
                    .iter()
                    .map(|(c, p)| format!("{} {:.1}%", classes[*c], 100.0 * p))
                    .collect();
                if uncertain {
                    cells.insert(0, "uncertain".to_owned());
                }
                println!("{}\t{}", path.display(), cells.join("\t"));
            }
        }
    }
}
