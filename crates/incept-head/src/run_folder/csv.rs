//! The run folder's CSV files: `metrics.csv` (one row per finished epoch) and the best epoch's
//! `predictions.csv`.

use std::path::Path;

use incept_report::csv_field;

use super::state::EpochRecord;
use super::{METRICS_CSV, io, not_a_run, write_file};
use crate::Result;
use crate::data::argmax;

pub(super) const METRICS_CSV_HEADER: &str = "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,validation_balanced_accuracy,validation_macro_f1,seconds\n";

/// `metrics.csv` rows of a run from before `run.json` recorded them: the rows of finished
/// epochs, the last one of each epoch kept.
pub fn records_from_metrics_csv(run_dir: &Path, completed: usize) -> Result<Vec<EpochRecord>> {
    let path = run_dir.join(METRICS_CSV);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let mut records: Vec<EpochRecord> = Vec::new();
    for (line_number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        // Six columns in runs from before the balanced accuracy and macro-F1 were recorded;
        // they may be empty.
        let (numbers, later) = match fields[..] {
            [a, b, c, d, e, balanced, f1, seconds] => ([a, b, c, d, e, seconds], [balanced, f1]),
            [a, b, c, d, e, seconds] => ([a, b, c, d, e, seconds], ["", ""]),
            _ => ([""; 6], ["", ""]),
        };
        let parsed: Vec<f64> = numbers.iter().filter_map(|f| f.parse().ok()).collect();
        let [epoch, train_loss, train_accuracy, validation_loss, validation_accuracy, seconds] =
            parsed[..]
        else {
            return Err(not_a_run(
                run_dir,
                format!("{} line {}: not a metrics row: {line:?}", path.display(), line_number + 1),
            ));
        };
        let later = |column: usize| later[column].parse::<f64>().ok();
        let epoch = epoch as usize;
        if epoch == 0 || epoch > completed {
            continue;
        }
        records.retain(|r| r.epoch != epoch);
        records.push(EpochRecord {
            epoch,
            train_loss,
            train_accuracy,
            validation_loss,
            validation_accuracy,
            validation_balanced_accuracy: later(0),
            validation_macro_f1: later(1),
            seconds,
        });
    }
    records.sort_by_key(|r| r.epoch);
    Ok(records)
}

pub(super) fn write_metrics_csv(run_dir: &Path, epochs: &[EpochRecord]) -> Result<()> {
    let mut text = String::from(METRICS_CSV_HEADER);
    for record in epochs {
        text.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{},{},{:.3}\n",
            record.epoch,
            record.train_loss,
            record.train_accuracy,
            record.validation_loss,
            record.validation_accuracy,
            optional(record.validation_balanced_accuracy),
            optional(record.validation_macro_f1),
            record.seconds,
        ));
    }
    write_file(&run_dir.join(METRICS_CSV), text.as_bytes())
}

/// A figure to 6 decimals, or an empty field for one a run did not record.
fn optional(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{v:.6}"))
}

/// `predictions.csv`: source, label, predicted, one probability column per class, and with
/// `single_view` (a run validated with TTA) each photo's single-view prediction and, with
/// `single_view_probabilities`, its single-view probability of each class (empty where its own
/// view was not validated); one row per photo, `labels` and rows of `probabilities` indexing
/// `classes`.
pub(crate) fn predictions_csv(
    classes: &[String],
    sources: &[String],
    labels: &[usize],
    probabilities: &[Vec<f64>],
    single_view: Option<&[Option<Vec<f64>>]>,
    single_view_probabilities: bool,
) -> String {
    let mut text = String::from("source,label,predicted");
    for class in classes {
        text.push(',');
        text.push_str(&csv_field(&format!("p_{class}")));
    }
    let single_view_probabilities = single_view_probabilities && single_view.is_some();
    if single_view.is_some() {
        text.push(',');
        text.push_str(incept_report::SINGLE_VIEW_COLUMN);
    }
    if single_view_probabilities {
        for class in classes {
            text.push(',');
            text.push_str(&csv_field(&format!(
                "{}{class}",
                incept_report::SINGLE_VIEW_PROBABILITY_PREFIX
            )));
        }
    }
    text.push('\n');
    for (photo, ((source, &label), probabilities)) in
        sources.iter().zip(labels).zip(probabilities).enumerate()
    {
        text.push_str(&format!(
            "{},{},{}",
            csv_field(source),
            csv_field(&classes[label]),
            csv_field(&classes[argmax(probabilities)])
        ));
        for p in probabilities {
            text.push_str(&format!(",{p:.6}"));
        }
        if let Some(single_view) = single_view {
            text.push(',');
            let own = single_view.get(photo).and_then(Option::as_ref);
            if let Some(own) = own {
                text.push_str(&csv_field(&classes[argmax(own)]));
            }
            if single_view_probabilities {
                for class in 0..classes.len() {
                    text.push(',');
                    if let Some(p) = own.and_then(|own| own.get(class)) {
                        text.push_str(&format!("{p:.6}"));
                    }
                }
            }
        }
        text.push('\n');
    }
    text
}
