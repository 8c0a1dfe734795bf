//! The `incept` command: parses arguments, calls the stage libraries, maps errors to exit codes.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

mod calibration;
mod cli;
mod commands;
mod compare;
mod confusion;
mod export;
mod int8;
mod pipes;
mod predict;
mod report;
mod runs;
mod sharding;
mod suspects;
mod verify;

use cli::{
    Cli, Command, ConfusionArgs, ExtractArgs, FormatArg, MachineArgs, MergeArgs, PlanArgs,
    PredictArgs, PredictFormatArg, PresetArg, SettingsArgs, ShardArg, StatusArgs, TrainArgs,
};

/// Exit status for an interrupted run (as shells report SIGINT).
const EXIT_INTERRUPTED: u8 = 130;
/// Exit status for errors a retry cannot fix (a bad plan, a shard index out of range): batch
/// engines are told not to retry it (see examples/).
const EXIT_PERMANENT: u8 = 2;

fn main() -> ExitCode {
    pipes::end_quietly_on_broken_pipe();
    let cli = Cli::parse();
    incept_core::limits::raise_open_file_limit();
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // First Ctrl-C: finish cleanly; second: leave at once (the caches stay consistent anyway).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        eprintln!("\ninterrupted: finishing the current step (Ctrl-C again to quit now)");
    });
    let result = match cli.command {
        Command::Extract(args) => commands::extract(args, &interrupted),
        Command::TrainHead(args) => {
            // Steps free and reallocate the same large buffers: keep them instead of unmapping.
            incept_core::allocator::keep_freed_memory();
            commands::train_head(args, &interrupted)
        }
        Command::Runs(args) => runs::runs(&args),
        Command::Confusion(args) => confusion::confusion(args),
        Command::Compare(args) => compare::compare(&args),
        Command::Suspects(args) => suspects::suspects(&args),
        Command::Predict(args) => predict::predict(args),
        Command::Report(args) => report::report(&args),
        Command::Plan(args) => sharding::plan(&args),
        Command::Status(args) => sharding::status(&args),
        Command::Merge(args) => sharding::merge(&args),
        Command::Export(args) => export::export(&args),
        Command::Verify(args) => verify::verify(&args),
    };
    match result {
        Ok(()) if interrupted.load(Ordering::SeqCst) => ExitCode::from(EXIT_INTERRUPTED),
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let permanent = error
                .downcast_ref::<incept_extract::Error>()
                .is_some_and(incept_extract::Error::is_permanent);
            if permanent { ExitCode::from(EXIT_PERMANENT) } else { ExitCode::FAILURE }
        }
    }
}
