//! One function per subcommand: converts clap arguments into the libraries' config structs.

use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, bail};
use incept_extract::{Augmentation, Device, ExtractConfig};

use crate::{ConfusionArgs, DtypeArg, ExtractArgs, PredictArgs, RunsArgs, TrainArgs};

fn parse_device(text: &str) -> Result<Device> {
    Device::parse(text).with_context(|| format!("unknown device {text:?}; use cpu, cuda, cuda:N or auto"))
}

pub fn extract(args: ExtractArgs, interrupted: &AtomicBool) -> Result<()> {
    if !(0.0..1.0).contains(&args.zoom_range) {
        bail!("--zoom-range {} must be in [0, 1)", args.zoom_range);
    }
    let config = ExtractConfig {
        device: parse_device(&args.device)?,
        copies: if args.no_augment { 0 } else { args.copies },
        augmentation: Augmentation {
            rotation_range_degrees: args.rotation_range,
            width_shift_fraction: args.width_shift_range,
            height_shift_fraction: args.height_shift_range,
            shear_range_degrees: args.shear_range,
            zoom_min: 1.0 - args.zoom_range,
            zoom_max: 1.0 + args.zoom_range,
            horizontal_flip: !args.no_horizontal_flip,
        },
        data_dir: args.data_dir,
        output: args.output,
        model: args.model,
        seed: args.seed,
        batch_size: args.batch_size,
        dtype: match args.dtype {
            DtypeArg::F32 => incept_cache::Dtype::F32,
            DtypeArg::F16 => incept_cache::Dtype::F16,
        },
        overwrite: args.overwrite,
        threads: args.threads,
        segment_samples: args.segment_samples,
    };
    let report = incept_extract::extract(&config, interrupted)?;
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
    println!("{}", config.output.display());
    Ok(())
}

pub fn train_head(_args: TrainArgs, _interrupted: &AtomicBool) -> Result<()> {
    bail!("train-head: WIP")
}

pub fn runs(_args: &RunsArgs) -> Result<()> {
    bail!("runs: WIP")
}

pub fn confusion(_args: ConfusionArgs) -> Result<()> {
    bail!("confusion: WIP")
}

pub fn predict(_args: PredictArgs) -> Result<()> {
    bail!("predict: WIP")
}
