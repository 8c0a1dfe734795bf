//! Per-photo predictions and training curves: the plain data an HTML report is made of, read
//! from a run folder's `predictions.csv` or filled in by the caller (a head evaluated on another
//! cache), and the photos a report picks from them (most confused pairs, top losses).

use std::path::Path;

use crate::{Error, Metrics, Result};

/// One photo as a head classified it.
#[derive(Clone, Debug, PartialEq)]
pub struct PhotoPrediction {
    /// The photo's path relative to the data folder the cache was extracted from
    /// (`<class>/<file>`), as the cache records it.
    pub source: String,
    /// The true class, an index into the classes.
    pub truth: usize,
    /// The predicted class, an index into the classes: the most probable one, as the head
    /// decided it (kept rather than recomputed, since written probabilities are rounded).
    pub predicted: usize,
    /// Class probabilities, [classes], summing to 1.
    pub probabilities: Vec<f64>,
    /// With test-time augmentation (`predicted` from the mean over the photo's views): the
    /// class its own view alone (variant 0) was given, what a single prediction gets; `None`
    /// without TTA (`predicted` is the single view then) or where it was not recorded.
    pub single_view_predicted: Option<usize>,
    /// With test-time augmentation, the class probabilities of the photo's own view alone
    /// ([classes]): what calibration fits a single prediction's temperature on. `None` without
    /// TTA (`probabilities` are the single view then) or in runs of an earlier incept.
    pub single_view_probabilities: Option<Vec<f64>>,
}

impl PhotoPrediction {
    /// The probabilities of the photo's own view alone: the recorded single view with TTA, else
    /// `probabilities` when `tta` is false; `None` for a TTA run that did not record them.
    pub fn single_view(&self, tta: bool) -> Option<&Vec<f64>> {
        match (&self.single_view_probabilities, tta) {
            (Some(row), _) => Some(row),
            (None, false) => Some(&self.probabilities),
            (None, true) => None,
        }
    }

    pub fn is_correct(&self) -> bool {
        self.truth == self.predicted
    }

    /// The probability given to the true class.
    pub fn probability_of_truth(&self) -> f64 {
        self.probabilities.get(self.truth).copied().unwrap_or(0.0)
    }

    /// The probability given to the predicted class.
    pub fn probability_of_predicted(&self) -> f64 {
        self.probabilities.get(self.predicted).copied().unwrap_or(0.0)
    }

    /// Cross-entropy of the true class, nats (probabilities floored at 1e-12, as training
    /// computes its validation loss).
    pub fn loss(&self) -> f64 {
        -self.probability_of_truth().max(1e-12).ln()
    }
}

/// The column of `predictions.csv` holding, with TTA, each photo's single-view prediction.
pub const SINGLE_VIEW_COLUMN: &str = "single_view_predicted";
/// The prefix of the columns holding, with TTA, each photo's single-view probability of a
/// class (`single_view_p_<class>`).
pub const SINGLE_VIEW_PROBABILITY_PREFIX: &str = "single_view_p_";

/// One finished training epoch; accuracies are fractions in [0, 1], losses in nats.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochCurve {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
}

/// The confusion matrix and metrics of `predictions`.
pub fn metrics_of(classes: &[String], predictions: &[PhotoPrediction]) -> Result<Metrics> {
    let (truth, predicted): (Vec<usize>, Vec<usize>) =
        predictions.iter().map(|p| (p.truth, p.predicted)).unzip();
    Metrics::from_labels(classes, &truth, &predicted)
}

/// Reads a run folder's `predictions.csv` (`source,label,predicted,p_<class>...`, labels by
/// class name, and `single_view_predicted` for runs validated with TTA), with `classes` the
/// run's classes in order. Columns after the first three are matched by name, so their order
/// does not matter.
pub fn read_predictions_csv(path: &Path, classes: &[String]) -> Result<Vec<PhotoPrediction>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let bad =
        |line: usize, reason: String| Error::Predictions { path: path.to_path_buf(), line, reason };
    let records = csv_records(&text).map_err(|(line, reason)| bad(line, reason))?;
    let mut records = records.into_iter();
    let Some((_, header)) = records.next() else {
        return Err(bad(
            1,
            "empty file; expected a header source,label,predicted,p_<class>...".into(),
        ));
    };
    if header.len() < 3 || header[..3] != ["source", "label", "predicted"] {
        return Err(bad(
            1,
            format!("header {header:?} does not start with source,label,predicted"),
        ));
    }
    // Column of each class's probability.
    let mut columns = Vec::with_capacity(classes.len());
    for class in classes {
        let name = format!("p_{class}");
        let column = header.iter().position(|h| *h == name).ok_or_else(|| {
            bad(1, format!("no column {name:?}: these predictions are of other classes"))
        })?;
        columns.push(column);
    }
    let single_view_column = header.iter().position(|h| h == SINGLE_VIEW_COLUMN);
    // Single-view probabilities: every class's column or none.
    let single_view_columns: Vec<Option<usize>> = classes
        .iter()
        .map(|class| {
            let name = format!("{SINGLE_VIEW_PROBABILITY_PREFIX}{class}");
            header.iter().position(|h| *h == name)
        })
        .collect();
    let single_view_columns: Option<Vec<usize>> = match single_view_columns.iter().flatten().count()
    {
        0 => None,
        n if n == classes.len() => Some(single_view_columns.into_iter().flatten().collect()),
        _ => {
            return Err(bad(
                1,
                format!("some {SINGLE_VIEW_PROBABILITY_PREFIX}<class> columns are missing"),
            ));
        }
    };
    let class_index = |line: usize, name: &str| {
        classes.iter().position(|c| c == name).ok_or_else(|| {
            bad(line, format!("class {name:?} is not one of the run's ({})", classes.join(", ")))
        })
    };
    let mut predictions = Vec::new();
    for (number, fields) in records {
        if fields.len() != header.len() {
            return Err(bad(
                number,
                format!("{} fields where the header has {}", fields.len(), header.len()),
            ));
        }
        let row = |columns: &[usize]| -> Result<Vec<f64>> {
            let mut probabilities = Vec::with_capacity(columns.len());
            for &column in columns {
                let value: f64 = fields[column].trim().parse().map_err(|_| {
                    bad(number, format!("{:?} is not a probability", fields[column]))
                })?;
                if !(0.0..=1.0).contains(&value) {
                    return Err(bad(number, format!("probability {value} outside [0, 1]")));
                }
                probabilities.push(value);
            }
            Ok(probabilities)
        };
        let probabilities = row(&columns)?;
        // Empty where a photo's own view was not validated.
        let single_view_probabilities = match &single_view_columns {
            Some(columns) if columns.iter().all(|&c| !fields[c].is_empty()) => Some(row(columns)?),
            _ => None,
        };
        predictions.push(PhotoPrediction {
            source: fields[0].clone(),
            truth: class_index(number, &fields[1])?,
            predicted: class_index(number, &fields[2])?,
            probabilities,
            single_view_predicted: match single_view_column.map(|c| fields[c].as_str()) {
                None | Some("") => None,
                Some(name) => Some(class_index(number, name)?),
            },
            single_view_probabilities,
        });
    }
    Ok(predictions)
}

/// A CSV record: the line it starts on (1-based) and its fields.
type CsvRecord = (usize, Vec<String>);

/// The records of a CSV text with their first line numbers (1-based), empty lines skipped. A
/// quoted field may hold commas, doubled quotes and line breaks, as `csv_field` writes them.
fn csv_records(text: &str) -> std::result::Result<Vec<CsvRecord>, (usize, String)> {
    let mut records = Vec::new();
    let (mut fields, mut field) = (Vec::new(), String::new());
    let (mut line, mut record_line) = (1, 1);
    let (mut quoted, mut at_start) = (false, true);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            }
            '\r' if !quoted && chars.peek() == Some(&'\n') => continue,
            '\n' if !quoted => {
                fields.push(std::mem::take(&mut field));
                if fields.len() > 1 || fields.first().is_some_and(|f| !f.is_empty()) {
                    records.push((record_line, std::mem::take(&mut fields)));
                }
                fields.clear();
                line += 1;
                record_line = line;
                at_start = true;
                continue;
            }
            _ => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
        }
        at_start = false;
    }
    if quoted {
        return Err((record_line, "a quoted field is not closed".into()));
    }
    fields.push(field);
    if fields.len() > 1 || fields.first().is_some_and(|f| !f.is_empty()) {
        records.push((record_line, fields));
    }
    Ok(records)
}

/// The photos behind the confusion cell (`truth`, `predicted`), most confident first (highest
/// probability of the predicted class).
pub fn confused_photos(
    predictions: &[PhotoPrediction],
    truth: usize,
    predicted: usize,
) -> Vec<&PhotoPrediction> {
    let mut photos: Vec<&PhotoPrediction> =
        predictions.iter().filter(|p| p.truth == truth && p.predicted == predicted).collect();
    photos.sort_by(|a, b| {
        b.probability_of_predicted()
            .total_cmp(&a.probability_of_predicted())
            .then_with(|| a.source.cmp(&b.source))
    });
    photos
}

/// The `count` photos with the highest loss: the lowest probability given to the true class
/// (ties: the most confident prediction first). Wrong predictions come first in practice,
/// since a photo whose true class won has a probability of at least 1/classes.
pub fn top_losses(predictions: &[PhotoPrediction], count: usize) -> Vec<&PhotoPrediction> {
    let mut photos: Vec<&PhotoPrediction> = predictions.iter().collect();
    photos.sort_by(|a, b| {
        a.probability_of_truth()
            .total_cmp(&b.probability_of_truth())
            .then_with(|| b.probability_of_predicted().total_cmp(&a.probability_of_predicted()))
            .then_with(|| a.source.cmp(&b.source))
    });
    photos.truncate(count);
    photos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        ["ant", "bee, wild", "cricket"].map(str::to_owned).to_vec()
    }

    #[test]
    fn csv_records_split_as_csv_field_quotes_them() {
        let fields = |record: &[&str]| record.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        let written = ["a", "b, c", "say \"hi\"", "two\nlines", ""].map(crate::csv_field).join(",");
        let text = format!("h1,h2\r\n\n{written}\nlast,x\n");
        assert_eq!(
            csv_records(&text),
            Ok(vec![
                (1, fields(&["h1", "h2"])),
                (3, fields(&["a", "b, c", "say \"hi\"", "two\nlines", ""])),
                (5, fields(&["last", "x"])),
            ])
        );
        assert_eq!(csv_records("a\n\"b,c\n"), Err((2, "a quoted field is not closed".into())));
    }

    #[test]
    fn reads_predictions_by_class_name() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let path = dir.path().join("predictions.csv");
        let text = "source,label,predicted,p_ant,\"p_bee, wild\",p_cricket\n\
                    ant/1.jpg,ant,\"bee, wild\",0.2,0.7,0.1\n\
                    cricket/2.jpg,cricket,cricket,0.1,0.1,0.8\n";
        std::fs::write(&path, text).map_err(|source| Error::Io { path: path.clone(), source })?;
        let predictions = read_predictions_csv(&path, &classes())?;
        assert_eq!(predictions.len(), 2);
        assert_eq!((predictions[0].truth, predictions[0].predicted), (0, 1));
        assert_eq!(predictions[0].probabilities, [0.2, 0.7, 0.1]);
        assert!((predictions[0].loss() - 0.2f64.ln().abs()).abs() < 1e-12);
        assert!(predictions[1].is_correct());
        let metrics = metrics_of(&classes(), &predictions)?;
        assert_eq!(metrics.matrix[0][1], 1);

        // Another run's classes, a damaged row: errors naming the file and the line.
        let other = ["ant".to_owned(), "wasp".to_owned()];
        let error = read_predictions_csv(&path, &other).err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("p_wasp")), "{error:?}");
        std::fs::write(&path, format!("{text}x/3.jpg,ant,ant,0.5,oops,0.5\n"))
            .map_err(|source| Error::Io { path: path.clone(), source })?;
        let error = read_predictions_csv(&path, &classes()).err().map(|e| e.to_string());
        assert!(error.as_deref().is_some_and(|e| e.contains("line 4")), "{error:?}");
        Ok(())
    }

    #[test]
    fn picks_confused_photos_and_top_losses() {
        let photo = |source: &str, truth, predicted, probabilities: [f64; 3]| PhotoPrediction {
            source: source.into(),
            truth,
            predicted,
            probabilities: probabilities.to_vec(),
            single_view_predicted: None,
            single_view_probabilities: None,
        };
        let predictions = vec![
            photo("a", 0, 1, [0.3, 0.6, 0.1]),
            photo("b", 0, 1, [0.1, 0.8, 0.1]),
            photo("c", 0, 0, [0.5, 0.4, 0.1]),
            photo("d", 2, 2, [0.0, 0.1, 0.9]),
        ];
        let sources = |photos: Vec<&PhotoPrediction>| -> Vec<String> {
            photos.iter().map(|p| p.source.clone()).collect()
        };
        assert_eq!(sources(confused_photos(&predictions, 0, 1)), ["b", "a"]);
        assert_eq!(sources(top_losses(&predictions, 3)), ["b", "a", "c"]);
    }
}
