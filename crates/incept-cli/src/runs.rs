//! `incept runs`: the runs of one cache (or folder) side by side, one line each, every figure
//! with the half-width of its 95 % interval.

use anyhow::Result;
use incept_report::Interval;

use crate::cli::RunsArgs;

/// Characters of a class name `incept runs` shows in its worst-class column.
const WORST_CLASS_NAME_WIDTH: usize = 20;

pub(crate) fn runs(args: &RunsArgs) -> Result<()> {
    let runs = incept_head::list_runs(&args.target, &args.runs_dir)?;
    if runs.is_empty() {
        eprintln!(
            "no runs found for {} (runs are looked for in {})",
            args.target.display(),
            args.runs_dir.display()
        );
        return Ok(());
    }
    // One more for the `*` of a run whose cache changed.
    let name_width = runs.iter().map(|r| r.name.len() + 1).max().unwrap_or(4).max(4);
    let head_width = runs.iter().map(|r| r.head.len()).max().unwrap_or(4).max(4);
    // A figure with the half-width of its 95 % interval, one line per run.
    let percent = |value: f64, interval: Interval| {
        format!("{:.1}% ±{:.1}", 100.0 * value, 100.0 * interval.half_width())
    };
    let cells: Vec<[String; 5]> = runs
        .iter()
        .map(|run| {
            let Some(metrics) = &run.metrics else {
                return std::array::from_fn(|_| "-".to_owned());
            };
            [
                percent(metrics.accuracy, metrics.accuracy_interval),
                metrics
                    .single_view_accuracy
                    .zip(metrics.single_view_accuracy_interval)
                    .map_or_else(|| "-".to_owned(), |(v, i)| percent(v, i)),
                percent(metrics.balanced_accuracy, metrics.balanced_accuracy_interval),
                // The worst class's name, cut short: the table stays one line per run.
                metrics.worst_class.as_ref().map_or_else(
                    || "-".to_owned(),
                    |worst| {
                        format!(
                            "{:>11} {}",
                            percent(worst.recall, worst.recall_interval),
                            incept_report::shorten(&worst.class, WORST_CLASS_NAME_WIDTH)
                        )
                    },
                ),
                format!("{:.3} ±{:.3}", metrics.macro_f1, metrics.macro_f1_interval.half_width()),
            ]
        })
        .collect();
    let width = |column: usize, header: &str| {
        cells.iter().map(|c| c[column].chars().count()).chain([header.len()]).max().unwrap_or(0)
    };
    let widths = [
        width(0, "accuracy"),
        width(1, "single view"),
        width(2, "balanced"),
        width(3, "worst class"),
        width(4, "macro-F1"),
    ];
    let [accuracy_width, single_width, balanced_width, worst_width, f1_width] = widths;
    println!(
        "{:name_width$}  {:head_width$}  {:>7}  {:>accuracy_width$}  {:>single_width$}  \
         {:>balanced_width$}  {:worst_width$}  {:>f1_width$}  {:>8}",
        "run",
        "head",
        "epochs",
        "accuracy",
        "single view",
        "balanced",
        "worst class",
        "macro-F1",
        "time"
    );
    let changed = runs.iter().filter(|run| run.cache_changed).count();
    let problems: Vec<(String, String)> = runs
        .iter()
        .filter_map(|run| run.problem.clone().map(|problem| (run.name.clone(), problem)))
        .collect();
    for (run, [accuracy, single, balanced, worst, f1]) in runs.into_iter().zip(cells) {
        let marker = if run.problem.is_some() {
            "!"
        } else if run.cache_changed {
            "*"
        } else {
            ""
        };
        println!(
            "{:name_width$}  {:head_width$}  {:>7}  {accuracy:>accuracy_width$}  \
             {single:>single_width$}  {balanced:>balanced_width$}  {worst:worst_width$}  \
             {f1:>f1_width$}  {:>7.0}s",
            format!("{}{marker}", run.name),
            run.head,
            format!("{}/{}", run.epochs, run.planned_epochs),
            run.seconds
        );
    }
    eprintln!(
        "(± half the width of a 95 % interval: Wilson for accuracies, a bootstrap over photos for balanced accuracy and macro-F1)"
    );
    for (name, problem) in problems {
        eprintln!("! {name}: cannot be read whole: {problem}");
    }
    if changed > 0 {
        eprintln!(
            "* trained on an earlier content of {} (re-extracted or grown since): not comparable with the others",
            args.target.display()
        );
    }
    Ok(())
}
