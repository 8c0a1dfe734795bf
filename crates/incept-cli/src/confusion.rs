//! `incept confusion`: a run's confusion matrix and figures, from its validation predictions or
//! with its head evaluated on another cache, with its calibration.

use anyhow::{Context, Result, bail};
use incept_head::{Backend, TrainedHead};

use crate::{ConfusionArgs, FormatArg};

pub fn confusion(args: ConfusionArgs) -> Result<()> {
    // The metrics and the calibration line: on another cache, the run's temperature measured on
    // photos it was not fitted on; else as fitted on the run's own validation photos.
    let (metrics, calibration_json, calibration_line) = match &args.cache {
        Some(cache) => {
            let head = TrainedHead::load(&args.run_dir, Backend::default())?;
            let photos = head.predict_cache(cache, args.tta)?;
            let figures = crate::calibration::held_out(&head, &photos, args.tta);
            let json = figures.as_ref().map(|(temperature, figures)| {
                serde_json::json!({"temperature": temperature, "held_out": figures})
            });
            let line = crate::calibration::held_out_line(figures.as_ref(), args.tta);
            (head.metrics_of(&photos, args.tta)?, json, line)
        }
        None => {
            if args.tta {
                bail!(
                    "--tta needs --cache (train with --tta to average the run's own validation predictions)"
                );
            }
            let state = incept_head::run_folder::load_state(&args.run_dir)?;
            let metrics = incept_head::run_folder::read_metrics(&args.run_dir, &state)?
                .with_context(|| {
                    format!("{}: no epoch has finished yet: no metrics", args.run_dir.display())
                })?;
            let tta = incept_head::run_folder::load_config(&args.run_dir)?.tta;
            let calibration =
                incept_head::run_folder::read_calibration(&args.run_dir, &state, tta)?;
            let line = calibration.as_ref().map(crate::calibration::fitted_line);
            let json = calibration.map(serde_json::to_value).transpose()?;
            (metrics, json, line.unwrap_or_default())
        }
    };
    match args.format {
        FormatArg::Table => {
            print!("{}", metrics.to_table());
            if !calibration_line.is_empty() {
                println!("{calibration_line}");
            }
        }
        FormatArg::Csv => print!("{}", metrics.to_csv()),
        FormatArg::Json => {
            let mut value: serde_json::Value = serde_json::from_str(&metrics.to_json())?;
            if let (Some(object), Some(calibration)) = (value.as_object_mut(), calibration_json) {
                object.insert("calibration".to_owned(), calibration);
            }
            println!("{value}");
        }
    }
    if let Some(plot) = &args.plot {
        let name =
            args.run_dir.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        incept_report::heatmap(&metrics, &format!("incept head {name}"), plot)?;
        eprintln!("heatmap written to {}", plot.display());
    }
    Ok(())
}
