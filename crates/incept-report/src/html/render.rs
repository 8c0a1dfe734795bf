//! Rendering the page: one method per section, counting the thumbnails and placeholders it
//! puts on the page.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{ConfusedPair, Layout, ReportData, breakable, escape, percent, shade};
use crate::chart::{Chart, Series, line_chart};
use crate::interval::Interval;
use crate::predictions::{EpochCurve, PhotoPrediction};
use crate::thumbnail::{Thumbnails, photo_path};

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1240px;padding:0 16px;color:#222}
h1{margin-bottom:4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.note{color:#555;font-size:14px}
.figures{display:flex;flex-wrap:wrap;gap:12px}
.figure{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
.figure b{display:block;font-size:26px}.figure small{display:block;font-size:12px;color:#333}.figure span{font-size:13px;color:#555}
table{border-collapse:collapse;font-size:14px}td,th{padding:4px 8px;border:1px solid #ddd}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.matrix td{min-width:84px;height:56px;text-align:center;border:1px solid #ccc}
table.matrix td small{display:block;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
figure.card{margin:0;width:150px;border:1px solid #ddd;border-radius:4px;padding:6px;font-size:12px;background:#fff}
figure.card.wrong{border-color:#d33}
figure.card img,.placeholder{display:block;margin:0 auto 4px;max-width:138px}
.placeholder{width:128px;height:96px;border:2px dashed #bbb;background:#f3f3f3;color:#777;display:flex;align-items:center;justify-content:center;text-align:center;font-size:12px}
figure.card code{font-size:11px;overflow-wrap:anywhere;display:block;color:#333}
figure.card code.full{color:#777}
pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}
";

pub(super) struct Renderer<'a> {
    pub data: &'a ReportData,
    pub thumbnails: &'a Thumbnails,
    /// The photos folder, absolute.
    pub photos_root: PathBuf,
    pub html: String,
    pub images: usize,
    pub placeholders: usize,
}

impl Renderer<'_> {
    fn class(&self, index: usize) -> String {
        escape(self.class_name(index))
    }

    fn class_name(&self, index: usize) -> &str {
        self.data.metrics.classes.get(index).map_or("?", String::as_str)
    }

    /// `suspects`: the probably mislabelled photos shown, and how many were found.
    pub fn render(
        &mut self,
        pairs: &[ConfusedPair],
        losses: &[&PhotoPrediction],
        suspects: (&[&PhotoPrediction], usize),
        layout: &Layout,
    ) {
        let data = self.data;
        let name = escape(&data.run_name);
        let _ = write!(
            self.html,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>incept report: {name}</title><style>{STYLE}</style></head><body>\n<h1>incept report: {name}</h1>\n<p class=\"note\">Run folder <code>{}</code>. {} Photos from <code>{}</code>.</p>\n",
            escape(&data.run_dir.display().to_string()),
            escape(&data.predictions_from),
            escape(&self.photos_root.display().to_string()),
        );
        self.figures();
        self.recipe();
        self.matrix();
        self.curves();
        self.html.push_str(&super::calibration::section(
            data.calibration.as_ref(),
            &data.predictions,
            data.tta,
        ));
        self.html.push_str("<h2 id=\"confused\">Most confused pairs</h2>\n");
        if pairs.is_empty() {
            self.html.push_str("<p>No photo was misclassified.</p>\n");
        }
        for &((truth, predicted, count), ref photos) in pairs {
            let shown = photos.len().min(layout.photos_per_pair);
            let _ = write!(
                self.html,
                "<h3>{} taken for {}: {count} photos ({:.1}% of {})</h3>\n<p class=\"note\">{}, the most confident mistakes first.</p>\n<div class=\"cards\">\n",
                self.class(truth),
                self.class(predicted),
                self.data.metrics.row_percent(truth, predicted),
                self.class(truth),
                if shown < photos.len() {
                    format!("{shown} of {} shown", photos.len())
                } else {
                    "All shown".into()
                },
            );
            for photo in photos.iter().take(layout.photos_per_pair) {
                self.card(photo, false);
            }
            self.html.push_str("</div>\n");
        }
        let _ = write!(
            self.html,
            "<h2 id=\"top-losses\">Top losses</h2>\n<p class=\"note\">The {} photos whose true class got the lowest probability (red: misclassified): hard cases, or mislabelled photos. A mislabelled photo is fixed by moving it to its class folder under the path shown and extracting again.</p>\n<div class=\"cards\">\n",
            losses.len()
        );
        for photo in losses {
            self.card(photo, true);
        }
        self.html.push_str("</div>\n");
        self.suspects(suspects);
        self.problems();
        let _ = write!(
            self.html,
            "<p class=\"note\">Made by incept {}.</p>\n</body></html>\n",
            env!("CARGO_PKG_VERSION")
        );
    }

    fn figures(&mut self) {
        let metrics = &self.data.metrics;
        // (figure, its 95 % interval, what it is)
        let mut figures: Vec<(String, Option<Interval>, String)> = Vec::new();
        if self.data.tta {
            figures.push((
                percent(metrics.accuracy),
                Some(metrics.accuracy_interval),
                "accuracy with TTA (mean over each photo's augmented views)".into(),
            ));
            if let Some(single) = metrics.single_view_accuracy {
                figures.push((
                    percent(single),
                    metrics.single_view_accuracy_interval,
                    "single-view accuracy (each photo alone, as incept predict classifies)".into(),
                ));
            }
        } else {
            figures.push((
                percent(metrics.accuracy),
                Some(metrics.accuracy_interval),
                "accuracy (each photo alone, single view)".into(),
            ));
        }
        // Beside accuracy: on skewed classes a high accuracy can hide a class the head misses.
        let sampled = metrics.sampled_classes();
        let balanced = if sampled < metrics.classes.len() {
            format!("balanced accuracy (mean recall of the {sampled} classes with photos)")
        } else {
            "balanced accuracy (mean of the classes' recall)".to_owned()
        };
        figures.push((
            percent(metrics.balanced_accuracy),
            Some(metrics.balanced_accuracy_interval),
            balanced,
        ));
        if let Some(worst) = &metrics.worst_class {
            figures.push((
                percent(worst.recall),
                Some(worst.recall_interval),
                format!("recall of the worst class, {}", worst.class),
            ));
        }
        figures.push((
            format!("{:.3}", metrics.macro_f1),
            Some(metrics.macro_f1_interval),
            "macro-F1 (mean F1 of the classes with photos or predictions)".into(),
        ));
        figures.push((
            format!("{:.3}", metrics.weighted_f1),
            None,
            "weighted F1 (by support)".into(),
        ));
        figures.push((metrics.total().to_string(), None, "photos evaluated".into()));
        if let Some(best) = self.data.best_epoch {
            figures.push((
                format!("{best} / {}", self.data.epochs.len()),
                None,
                "best epoch (its weights made these predictions)".into(),
            ));
        }
        self.html.push_str("<div class=\"figures\">\n");
        for (value, interval, label) in figures {
            // Accuracies read as percentages, F1 as a ratio: the interval as its figure.
            let interval = interval.map_or_else(String::new, |interval| {
                let ends = if value.ends_with('%') {
                    format!("{:.1}–{:.1} %", 100.0 * interval.low, 100.0 * interval.high)
                } else {
                    format!("{:.3}–{:.3}", interval.low, interval.high)
                };
                format!("<small>95 % interval {ends}</small>")
            });
            let _ = writeln!(
                self.html,
                "<div class=\"figure\"><b>{}</b>{interval}<span>{}</span></div>",
                escape(&value),
                escape(&label)
            );
        }
        self.html.push_str("</div>\n");
        self.html.push_str("<p class=\"note\">95 % intervals: Wilson's for accuracies and recalls, a bootstrap over photos (2,000 resamples, fixed seed) for balanced accuracy and macro-F1. Two heads whose intervals overlap may still differ: <code>incept compare</code> tests them photo by photo.</p>\n");
    }

    fn recipe(&mut self) {
        self.html.push_str("<h2 id=\"recipe\">Recipe</h2>\n<table>\n");
        // Two fields a row: the recipe stays short beside the sections that matter more.
        for row in self.data.recipe.chunks(2) {
            self.html.push_str("<tr>");
            for (name, value) in row {
                let _ = write!(self.html, "<th>{}</th><td>{}</td>", escape(name), escape(value));
            }
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</table>\n");
        if let Some(text) = &self.data.recipe_text {
            let _ = writeln!(
                self.html,
                "<details><summary>config.toml</summary><pre>{}</pre></details>",
                escape(text)
            );
        }
    }

    fn matrix(&mut self) {
        let metrics = &self.data.metrics;
        self.html.push_str("<h2 id=\"confusion\">Confusion matrix</h2>\n<p class=\"note\">Rows: true class; columns: predicted class. Each cell: photos, and their share of the true class (the colour).</p>\n<table class=\"matrix\">\n<tr><th>true \\ predicted</th>");
        for class in &metrics.classes {
            let _ = write!(self.html, "<th>{}</th>", breakable(class));
        }
        self.html.push_str("<th>photos</th></tr>\n");
        for (truth, row) in metrics.matrix.iter().enumerate() {
            let _ = write!(self.html, "<tr><th>{}</th>", breakable(self.class_name(truth)));
            for (predicted, count) in row.iter().enumerate() {
                let share = metrics.row_percent(truth, predicted) / 100.0;
                let ink = if share > 0.5 { "#fff" } else { "#000" };
                let _ = write!(
                    self.html,
                    "<td style=\"background:{};color:{ink}\" title=\"{} taken for {}\"><b>{count}</b><small>{}</small></td>",
                    shade(share),
                    self.class(truth),
                    self.class(predicted),
                    percent(share),
                );
            }
            let _ =
                writeln!(self.html, "<td class=\"num\">{}</td></tr>", row.iter().sum::<usize>());
        }
        self.html.push_str("</table>\n<h3>Per class</h3>\n<table>\n<tr><th>class</th><th>precision</th><th>recall</th><th>recall, 95 % interval</th><th>F1</th><th>photos</th></tr>\n");
        for class in &metrics.per_class {
            let _ = writeln!(
                self.html,
                "<tr><th>{}</th><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}–{:.3}</td><td class=\"num\">{:.3}</td><td class=\"num\">{}</td></tr>",
                escape(&class.class),
                class.precision,
                class.recall,
                class.recall_interval.low,
                class.recall_interval.high,
                class.f1,
                class.support
            );
        }
        self.html.push_str("</table>\n");
    }

    fn curves(&mut self) {
        let epochs = &self.data.epochs;
        self.html.push_str("<h2 id=\"training\">Training curves</h2>\n");
        if epochs.is_empty() {
            self.html.push_str("<p>No epoch recorded.</p>\n");
            return;
        }
        let series = |name, colour, value: fn(&EpochCurve) -> f64| Series {
            name,
            colour,
            points: epochs.iter().map(|e| (e.epoch as f64, value(e))).collect(),
        };
        let marker = self.data.best_epoch.map(|best| (best as f64, "best"));
        let loss = Chart {
            title: "Loss (cross-entropy, nats)",
            x_label: "epoch",
            y_label: "loss",
            series: vec![
                series("train", "#1f77b4", |e| e.train_loss),
                series("validation", "#ff7f0e", |e| e.validation_loss),
            ],
            marker,
            percent: false,
            x_percent: false,
        };
        let accuracy = Chart {
            title: "Accuracy",
            x_label: "epoch",
            y_label: "accuracy",
            series: vec![
                series("train", "#1f77b4", |e| e.train_accuracy),
                series("validation", "#ff7f0e", |e| e.validation_accuracy),
            ],
            marker,
            percent: true,
            x_percent: false,
        };
        let _ = writeln!(
            self.html,
            "<p class=\"note\">Training figures are over augmented samples with dropout on; validation figures are {}.</p>\n<div class=\"charts\">{}{}</div>",
            if self.data.tta { "with TTA" } else { "single view" },
            line_chart(&loss),
            line_chart(&accuracy)
        );
    }

    /// One photo: its thumbnail (or a placeholder box), true and predicted class with their
    /// probabilities, its path; with `full_path`, also where it is on this machine.
    /// The probably mislabelled photos ([`crate::suspects`]), as `incept suspects` lists them.
    fn suspects(&mut self, (shown, found): (&[&PhotoPrediction], usize)) {
        let _ = write!(
            self.html,
            "<h2 id=\"suspects\">Probably mislabelled</h2>\n<p class=\"note\">{found} of {} photos are counted as another class than their label by confident learning (per class, the mean probability the heads give that class on its own photos is the bar another class's photo must reach); {} shown, the least likely label first. Judged on predictions made without the photo in training: a cross-validation's (<code>--folds</code>) covers every photo. Check each one; move a mislabelled photo to its class folder and extract again. <code>incept suspects</code> lists them all.</p>\n<div class=\"cards\">\n",
            self.data.predictions.len(),
            shown.len()
        );
        for photo in shown {
            self.card(photo, true);
        }
        self.html.push_str("</div>\n");
    }

    fn card(&mut self, photo: &PhotoPrediction, full_path: bool) {
        let path = photo_path(&self.photos_root, &photo.source)
            .unwrap_or_else(|| PathBuf::from(&photo.source));
        let path = escape(&path.display().to_string());
        let source = escape(&photo.source);
        let _ = write!(
            self.html,
            "<figure class=\"card{}\">",
            if photo.is_correct() { "" } else { " wrong" }
        );
        match self.thumbnails.get(&photo.source) {
            Some(Ok(thumbnail)) => {
                self.images += 1;
                let _ = write!(
                    self.html,
                    "<img src=\"{}\" width=\"{}\" height=\"{}\" alt=\"{source}\" title=\"{path}\">",
                    thumbnail.data_uri, thumbnail.width, thumbnail.height
                );
            }
            other => {
                self.placeholders += 1;
                let reason =
                    other.and_then(|t| t.as_ref().err()).map_or("not shown", |p| p.reason.as_str());
                let _ = write!(
                    self.html,
                    "<div class=\"placeholder\" title=\"{path}\">{}</div>",
                    escape(reason)
                );
            }
        }
        let _ = write!(
            self.html,
            "<figcaption>true <b>{}</b> {}<br>predicted <b>{}</b> {}",
            breakable(self.class_name(photo.truth)),
            percent(photo.probability_of_truth()),
            breakable(self.class_name(photo.predicted)),
            percent(photo.probability_of_predicted()),
        );
        if full_path {
            let _ = write!(
                self.html,
                "<br>loss {:.2}<code>{source}</code><code class=\"full\">{path}</code>",
                photo.loss()
            );
        } else {
            let _ = write!(self.html, "<code>{source}</code>");
        }
        self.html.push_str("</figcaption></figure>\n");
    }

    fn problems(&mut self) {
        let problems = self.thumbnails.problems();
        if problems.is_empty() {
            return;
        }
        let _ = writeln!(
            self.html,
            "<h2 id=\"missing\">Photos not shown</h2>\n<p class=\"note\">{} photos could not be read under {}:</p>\n<ul>",
            problems.len(),
            escape(&self.photos_root.display().to_string())
        );
        for problem in problems {
            let _ = writeln!(
                self.html,
                "<li><code>{}</code> {}</li>",
                escape(&problem.path.display().to_string()),
                escape(&problem.reason)
            );
        }
        self.html.push_str("</ul>\n");
    }
}
