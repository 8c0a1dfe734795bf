//! `incept compare RUN_A RUN_B [RUN_C …]`: runs validated on the same photos, compared photo by
//! photo (paired bootstrap interval of the difference, exact McNemar test), with a verdict.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use incept_head::{Accuracy, ComparedPair, Comparison, View};
use incept_report::csv_field;
use incept_report::paired::Verdict;

use crate::cli::FormatArg;

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// Two or more run folders made by `incept train-head`, validated on the same photos.
    #[arg(required = true, num_args = 2..)]
    pub(crate) run_dirs: Vec<PathBuf>,
    /// table: the runs, every pair and a verdict per pair; csv: one row per pair and view;
    /// json: the whole comparison (documented in docs/FORMATS.md).
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: FormatArg,
}

pub(crate) fn compare(args: &CompareArgs) -> Result<()> {
    if args.run_dirs.len() < 2 {
        bail!("compare needs two run folders or more");
    }
    let comparison = incept_head::compare_runs(&args.run_dirs)?;
    for note in &comparison.notes {
        eprintln!("note: {note}");
    }
    match args.format {
        FormatArg::Table => print!("{}", table(&comparison)),
        FormatArg::Csv => print!("{}", csv(&comparison)),
        FormatArg::Json => println!(
            "{}",
            // Strings, numbers and vectors of them: serialising cannot fail.
            serde_json::to_string_pretty(&comparison)
                .expect("invariant: a comparison always serialises to JSON")
        ),
    }
    Ok(())
}

/// `+2.4`: a difference in points, signed.
fn points(fraction: f64) -> String {
    format!("{:+.1}", 100.0 * fraction)
}

/// `86.7 % [83.0, 89.8]`.
fn accuracy(result: Option<&Accuracy>) -> String {
    result.map_or_else(
        || "-".to_owned(),
        |a| {
            format!(
                "{:.1} % [{:.1}, {:.1}]",
                100.0 * a.accuracy,
                100.0 * a.interval.low,
                100.0 * a.interval.high
            )
        },
    )
}

/// The verdict of one pair in words: "B is better: +2.4 points, 95 % interval +0.7..+4.1,
/// p = 0.006".
fn verdict(comparison: &Comparison, pair: &ComparedPair) -> String {
    let (a, b) = (&comparison.runs[pair.a].name, &comparison.runs[pair.b].name);
    let paired = &pair.paired;
    let adjusted = comparison.pairs.iter().filter(|p| p.view == pair.view).count() > 1;
    let p = if adjusted {
        format!("p = {} (Holm-adjusted for this view's pairs)", p_value(pair.p_value_adjusted))
    } else {
        format!("p = {}", p_value(paired.p_value))
    };
    let figures = format!(
        "{} points, 95 % interval {}..{}, {p}",
        points(paired.difference),
        points(paired.interval.low),
        points(paired.interval.high)
    );
    match pair.verdict {
        Verdict::BBetter => format!("{b} is better than {a}: {figures}"),
        Verdict::ABetter => format!(
            "{a} is better than {b}: {} points, 95 % interval {}..{}, {p}",
            points(-paired.difference),
            points(-paired.interval.high),
            points(-paired.interval.low)
        ),
        Verdict::NoDetectableDifference => {
            format!("no detectable difference between {a} and {b} ({b} − {a}: {figures})")
        }
    }
}

fn p_value(p: f64) -> String {
    if p < 0.001 { format!("{p:.1e}") } else { format!("{p:.3}") }
}

fn table(comparison: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} validation photos, the same in every run; accuracy with its 95 % interval (Wilson)",
        comparison.photos
    );
    let name_width =
        comparison.runs.iter().map(|r| r.name.chars().count()).max().unwrap_or(3).max(3);
    let _ = writeln!(out, "{:name_width$}  {:>22}  {:>22}", "run", "TTA", "single view");
    for run in &comparison.runs {
        let _ = writeln!(
            out,
            "{:name_width$}  {:>22}  {:>22}",
            run.name,
            accuracy(run.accuracy(View::Tta)),
            accuracy(run.accuracy(View::SingleView))
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:11}  {:name_width$}  {:name_width$}  {:>6}  {:>6}  {:>6}  {:>15}  {:>8}",
        "view", "A", "B", "A only", "B only", "B − A", "95 % interval", "p"
    );
    for pair in &comparison.pairs {
        let paired = &pair.paired;
        let _ = writeln!(
            out,
            "{:11}  {:name_width$}  {:name_width$}  {:>6}  {:>6}  {:>6}  {:>15}  {:>8}",
            pair.view.name(),
            comparison.runs[pair.a].name,
            comparison.runs[pair.b].name,
            paired.a_only,
            paired.b_only,
            points(paired.difference),
            format!("{}..{}", points(paired.interval.low), points(paired.interval.high)),
            p_value(pair.p_value_adjusted)
        );
    }
    let _ = writeln!(out);
    for pair in &comparison.pairs {
        let _ = writeln!(out, "{}: {}", pair.view.name(), verdict(comparison, pair));
    }
    out
}

fn csv(comparison: &Comparison) -> String {
    let mut out = String::from(
        "view,a,b,photos,a_correct,b_correct,a_only,b_only,difference,difference_low,difference_high,p_value,p_value_adjusted,verdict\n",
    );
    for pair in &comparison.pairs {
        let paired = &pair.paired;
        let verdict = match pair.verdict {
            Verdict::ABetter => "a_better",
            Verdict::BBetter => "b_better",
            Verdict::NoDetectableDifference => "no_detectable_difference",
        };
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6},{:.6e},{:.6e},{verdict}",
            match pair.view {
                View::Tta => "tta",
                View::SingleView => "single_view",
            },
            csv_field(&comparison.runs[pair.a].path.display().to_string()),
            csv_field(&comparison.runs[pair.b].path.display().to_string()),
            paired.photos,
            paired.a_correct,
            paired.b_correct,
            paired.a_only,
            paired.b_only,
            paired.difference,
            paired.interval.low,
            paired.interval.high,
            paired.p_value,
            pair.p_value_adjusted,
        );
    }
    out
}
