//! `incept plan`, `incept extract --plan`, `incept status`, `incept merge`: sharded extraction on
//! the batch engine the user already has.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use incept_extract::{
    Plan, PlanOutcome, ShardIndex, ShardOutcome, ShardState, merge_shards, shard_status,
};

use crate::commands::{extract_config, print_extract_report};
use crate::{ExtractArgs, MergeArgs, PlanArgs, PredictFormatArg, ShardArg, StatusArgs};

pub fn plan(args: &PlanArgs) -> Result<()> {
    let config = extract_config(
        &args.settings,
        &crate::MachineArgs::default_for_plan(),
        args.data_dir.clone(),
        PathBuf::new(),
        false,
    )?;
    let plan = Plan::make(&config, args.shards)?;
    let outcome = plan.save(&args.output)?;
    let verb = match outcome {
        PlanOutcome::Created => "planned",
        PlanOutcome::Unchanged => "already planned (nothing changed)",
    };
    let per_shard = plan.photos.len().div_ceil(plan.shards);
    eprintln!(
        "{verb}: {} photos in {} classes, {} shards of up to {per_shard} photos, {} samples; plan {}",
        plan.photos.len(),
        plan.classes.len(),
        plan.shards,
        plan.photos.len() * (plan.copies as usize + 1),
        plan.plan_id
    );
    eprintln!(
        "next: run `incept extract --plan {dir} --shard I` for I in 0..{last} (e.g. \
         examples/slurm/submit.sh {dir}), then `incept merge {dir} -o CACHE.h5`",
        dir = args.output.display(),
        last = plan.shards - 1
    );
    println!("{}", args.output.join(incept_extract::PLAN_FILE).display());
    Ok(())
}

/// `incept extract --plan PLAN_DIR --shard I|auto`.
pub fn run_shard(args: &ExtractArgs, interrupted: &AtomicBool) -> Result<()> {
    let (Some(plan_dir), Some(shard)) = (&args.plan, args.shard) else {
        anyhow::bail!("pass DATA_DIR and -o CACHE.h5, or --plan PLAN_DIR --shard I|auto");
    };
    let index = match shard {
        ShardArg::Index(index) => ShardIndex::Given(index),
        ShardArg::Auto => ShardIndex::Auto { offset: args.shard_offset },
    };
    // The plan supplies data, model and settings; these flags only say how this machine runs.
    let worker =
        extract_config(&args.settings, &args.machine, PathBuf::new(), PathBuf::new(), false)?;
    match incept_extract::run_shard(plan_dir, index, &worker, interrupted)? {
        ShardOutcome::AlreadyDone(marker) => eprintln!(
            "shard {} of {}: already done ({} rows, finished {} on {}); nothing to do",
            marker.shard, marker.shards, marker.rows, marker.finished, marker.host
        ),
        ShardOutcome::Done { marker, report } => {
            print_extract_report(&report);
            eprintln!("shard {} of {}: done, {} rows", marker.shard, marker.shards, marker.rows);
        }
        ShardOutcome::Interrupted(report) => print_extract_report(&report),
    }
    Ok(())
}

pub fn status(args: &StatusArgs) -> Result<()> {
    let status = shard_status(&args.plan_dir)?;
    match args.format {
        PredictFormatArg::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        PredictFormatArg::Table => {
            println!(
                "plan {}: {} shards, {} done, {} partial, {} missing; {} rows so far",
                status.plan_id,
                status.shards,
                status.done,
                status.partial,
                status.missing,
                status.rows
            );
            let partial: Vec<usize> = status
                .states
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == ShardState::Partial)
                .map(|(i, _)| i)
                .collect();
            if !partial.is_empty() {
                println!("partial: {}", incept_extract::array_syntax(&partial));
            }
            if status.missing_array.is_empty() {
                println!(
                    "complete: merge with `incept merge {} -o CACHE.h5`",
                    args.plan_dir.display()
                );
            } else {
                println!("missing: {}", status.missing_array);
            }
            for problem in &status.problems {
                println!("problem: {problem}");
            }
        }
    }
    Ok(())
}

pub fn merge(args: &MergeArgs) -> Result<()> {
    let summary = merge_shards(&args.plan_dir, &args.output, args.copy)?;
    eprintln!(
        "merged {} rows into {} ({})",
        summary.total,
        args.output.display(),
        if args.copy { "one self-contained file" } else { "an index over the shards' files" }
    );
    println!("{}", args.output.display());
    Ok(())
}
