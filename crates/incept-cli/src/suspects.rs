//! `incept suspects RUN_DIR`: the photos whose given label the heads find least likely
//! (confident learning on the run's predictions; see `incept_report::suspects`).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use incept_head::run_folder::{self, PREDICTIONS_CSV};
use incept_report::csv_field;
use incept_report::suspects::{Suspect, find_suspects};
use serde::Serialize;

use crate::cli::FormatArg;

#[derive(Debug, Args)]
pub(crate) struct SuspectsArgs {
    /// The run folder made by `incept train-head`: a cross-validation (`--folds K`) judges every
    /// photo, a run of one split its validation photos only.
    pub(crate) run_dir: PathBuf,
    /// List at most this many (0: all).
    #[arg(long, default_value_t = 0)]
    pub(crate) limit: usize,
    /// table, csv (source,given,suggested,given_probability,suggested_probability) or json.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: FormatArg,
}

/// `incept suspects --format json`.
#[derive(Serialize)]
struct Listing<'a> {
    /// Photos judged.
    photos: usize,
    /// `cross-validation` (every photo) or `validation` (a run's validation photos).
    judged_on: &'static str,
    /// Suspects found, all of them (the list may be cut by `--limit`).
    found: usize,
    suspects: Vec<Named<'a>>,
}

#[derive(Serialize)]
struct Named<'a> {
    source: &'a str,
    given: &'a str,
    suggested: &'a str,
    given_probability: f64,
    suggested_probability: f64,
}

pub(crate) fn suspects(args: &SuspectsArgs) -> Result<()> {
    let state = run_folder::load_state(&args.run_dir)?;
    if state.best_epoch == 0 {
        anyhow::bail!(
            "{}: no epoch has finished yet (or the cross-validation's folds have not): no predictions to judge",
            args.run_dir.display()
        );
    }
    let path = run_folder::committed_file(&args.run_dir, PREDICTIONS_CSV, &state);
    let photos = incept_report::read_predictions_csv(&path, &state.classes)?;
    let found = find_suspects(state.classes.len(), &photos);
    let cross_validated = state.cross_validation.is_some();
    if !cross_validated {
        eprintln!(
            "note: {} is a run of one split: only its {} validation photos are judged; a cross-validation (train-head --folds 5) judges every photo",
            args.run_dir.display(),
            photos.len()
        );
    }
    let shown: &[Suspect] =
        if args.limit == 0 { &found } else { &found[..found.len().min(args.limit)] };
    let class = |index: usize| state.classes.get(index).map_or("?", String::as_str);
    let named: Vec<Named> = shown
        .iter()
        .map(|s| Named {
            source: &s.source,
            given: class(s.given),
            suggested: class(s.suggested),
            given_probability: s.given_probability,
            suggested_probability: s.suggested_probability,
        })
        .collect();
    match args.format {
        FormatArg::Json => {
            let listing = Listing {
                photos: photos.len(),
                judged_on: if cross_validated { "cross-validation" } else { "validation" },
                found: found.len(),
                suspects: named,
            };
            // Strings and numbers: serialising cannot fail.
            println!(
                "{}",
                serde_json::to_string_pretty(&listing)
                    .expect("invariant: a listing always serialises to JSON")
            );
        }
        FormatArg::Csv => {
            let mut out =
                String::from("source,given,suggested,given_probability,suggested_probability\n");
            for s in &named {
                let _ = writeln!(
                    out,
                    "{},{},{},{:.6},{:.6}",
                    csv_field(s.source),
                    csv_field(s.given),
                    csv_field(s.suggested),
                    s.given_probability,
                    s.suggested_probability
                );
            }
            print!("{out}");
        }
        FormatArg::Table => {
            eprintln!(
                "{} of {} photos probably mislabelled (confident learning), the least likely label first",
                found.len(),
                photos.len()
            );
            let width = |f: &dyn Fn(&Named) -> usize, header: &str| {
                named.iter().map(f).chain([header.len()]).max().unwrap_or(0)
            };
            let photo_width = width(&|s| s.source.chars().count(), "photo");
            let given_width = width(&|s| s.given.chars().count(), "given");
            let suggested_width = width(&|s| s.suggested.chars().count(), "suggested");
            println!(
                "{:photo_width$}  {:given_width$}  {:suggested_width$}  {:>8}  {:>12}",
                "photo", "given", "suggested", "p(given)", "p(suggested)"
            );
            for s in &named {
                println!(
                    "{:photo_width$}  {:given_width$}  {:suggested_width$}  {:>8.3}  {:>12.3}",
                    s.source, s.given, s.suggested, s.given_probability, s.suggested_probability
                );
            }
        }
    }
    Ok(())
}
