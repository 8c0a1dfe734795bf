//! The renderings of `incept confusion`: the aligned table and the CSV.

use std::fmt::Write as _;

use super::Metrics;
use crate::csv_field;

impl Metrics {
    /// The aligned text table of `incept confusion`.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let names: Vec<&str> = self.classes.iter().map(String::as_str).collect();
        let label_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(4).max(10);
        let cell_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).clamp(12, 24);
        let _ = writeln!(
            out,
            "Confusion matrix (rows: true class, columns: predicted; count and row %)"
        );
        let _ = write!(out, "{:label_width$}", "true \\ predicted");
        for name in &names {
            let _ = write!(out, " {:>cell_width$}", shorten(name, cell_width));
        }
        let _ = writeln!(out, " {:>8}", "support");
        for (t, name) in names.iter().enumerate() {
            let _ = write!(out, "{:label_width$}", name);
            for p in 0..names.len() {
                let cell = format!("{} ({:.0}%)", self.matrix[t][p], self.row_percent(t, p));
                let _ = write!(out, " {cell:>cell_width$}");
            }
            let _ = writeln!(out, " {:>8}", self.matrix[t].iter().sum::<usize>());
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:label_width$} {:>9} {:>9} {:>16} {:>9} {:>8}",
            "class", "precision", "recall", "recall 95 %", "f1", "support"
        );
        for metrics in &self.per_class {
            let _ = writeln!(
                out,
                "{:label_width$} {:>9.3} {:>9.3} {:>16} {:>9.3} {:>8}",
                metrics.class,
                metrics.precision,
                metrics.recall,
                metrics.recall_interval.ratio(),
                metrics.f1,
                metrics.support
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:19}{:.3} {} ({} photos; 95 % intervals: Wilson for proportions, a bootstrap over photos otherwise)",
            "accuracy",
            self.accuracy,
            self.accuracy_interval.ratio(),
            self.total()
        );
        if let (Some(single), Some(interval)) =
            (self.single_view_accuracy, self.single_view_accuracy_interval)
        {
            let _ = writeln!(
                out,
                "{:19}(the mean over each photo's augmented views; the photo alone: {single:.3} {})",
                "",
                interval.ratio()
            );
        }
        let sampled = self.sampled_classes();
        let left_out = self.classes.len() - sampled;
        let _ = writeln!(
            out,
            "{:19}{:.3} {} (mean recall of the {sampled} classes with samples{})",
            "balanced accuracy",
            self.balanced_accuracy,
            self.balanced_accuracy_interval.ratio(),
            if left_out > 0 { format!("; {left_out} without any left out") } else { String::new() }
        );
        match &self.worst_class {
            Some(worst) => {
                let _ = writeln!(
                    out,
                    "{:19}{:.3} {} recall ({})",
                    "worst class",
                    worst.recall,
                    worst.recall_interval.ratio(),
                    worst.class
                );
            }
            None => {
                let _ = writeln!(out, "{:19}- (no class has samples)", "worst class");
            }
        }
        let judged = self.f1_classes();
        let neither = self.classes.len() - judged;
        let _ = writeln!(
            out,
            "{:19}{:.3} {}{}",
            "macro F1",
            self.macro_f1,
            self.macro_f1_interval.ratio(),
            if neither > 0 {
                format!(
                    " (mean F1 of the {judged} classes with samples or predictions; {neither} with neither left out)"
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "{:19}{:.3}", "weighted F1", self.weighted_f1);
        let confused = self.most_confused(3);
        if !confused.is_empty() {
            let _ = writeln!(out, "most confused (true -> predicted):");
            for (t, p, count) in confused {
                let _ = writeln!(
                    out,
                    "  {} -> {}: {count} ({:.1}% of {})",
                    names[t],
                    names[p],
                    self.row_percent(t, p),
                    names[t]
                );
            }
        }
        out
    }

    /// The matrix as CSV with a header row (first column: true class), then each row's recall
    /// and the ends of its 95 % interval: empty for a class without samples, so that the recall
    /// column's mean is the balanced accuracy and its minimum the worst class.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("true\\predicted");
        for name in &self.classes {
            out.push(',');
            out.push_str(&csv_field(name));
        }
        out.push_str(",recall,recall_low,recall_high\n");
        for ((name, row), metrics) in self.classes.iter().zip(&self.matrix).zip(&self.per_class) {
            out.push_str(&csv_field(name));
            for count in row {
                let _ = write!(out, ",{count}");
            }
            if metrics.support > 0 {
                let interval = metrics.recall_interval;
                let _ =
                    write!(out, ",{:.6},{:.6},{:.6}", metrics.recall, interval.low, interval.high);
            } else {
                out.push_str(",,,");
            }
            out.push('\n');
        }
        out
    }
}

/// `name` cut to `width` characters, the last one an ellipsis when it was longer.
pub fn shorten(name: &str, width: usize) -> String {
    if name.chars().count() <= width {
        name.to_owned()
    } else {
        let kept: String = name.chars().take(width.saturating_sub(1)).collect();
        format!("{kept}…")
    }
}
