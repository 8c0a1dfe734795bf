//! Runs judged side by side on the same validation photos (`incept compare`): each run's
//! per-photo results from its `predictions.csv`, paired photo by photo, every pair of runs
//! compared with [`incept_report::paired::Paired`] for test-time augmentation and single view.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use incept_report::Interval;
use incept_report::interval::wilson;
use incept_report::paired::{Paired, Verdict, holm};
use incept_report::{PhotoPrediction, read_predictions_csv};
use serde::Serialize;

use crate::config::TrainConfig;
use crate::run_folder::{PREDICTIONS_CSV, RunState, committed_file, load_config, load_state};
use crate::{Error, Result};

/// How a run's photos are classified for a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Each photo's probabilities averaged over its augmented views.
    Tta,
    /// Each photo alone (variant 0): what `incept predict` answers.
    SingleView,
}

impl View {
    pub fn name(self) -> &'static str {
        match self {
            View::Tta => "TTA",
            View::SingleView => "single view",
        }
    }
}

/// One run of a comparison: per validation photo (in the comparison's order), whether it got
/// the photo right.
#[derive(Clone, Debug, Serialize)]
pub struct ComparedRun {
    pub name: String,
    pub path: PathBuf,
    /// Its accuracy with TTA; `None` for a run validated without it.
    pub tta: Option<Accuracy>,
    /// Its accuracy in single view; `None` for a TTA run of an earlier incept, whose
    /// `predictions.csv` did not record single views.
    pub single_view: Option<Accuracy>,
    /// Per photo, right with TTA.
    #[serde(skip)]
    pub tta_correct: Option<Vec<bool>>,
    /// Per photo, right in single view.
    #[serde(skip)]
    pub single_view_correct: Option<Vec<bool>>,
    #[serde(skip)]
    state: RunState,
    #[serde(skip)]
    config: TrainConfig,
    /// (source, class name) per photo, sorted by source.
    #[serde(skip)]
    photos: Vec<(String, String)>,
}

impl ComparedRun {
    /// Its per-photo results in `view`.
    pub fn correct(&self, view: View) -> Option<&[bool]> {
        match view {
            View::Tta => self.tta_correct.as_deref(),
            View::SingleView => self.single_view_correct.as_deref(),
        }
    }

    /// Its accuracy in `view`.
    pub fn accuracy(&self, view: View) -> Option<&Accuracy> {
        match view {
            View::Tta => self.tta.as_ref(),
            View::SingleView => self.single_view.as_ref(),
        }
    }
}

/// A run's accuracy on the compared photos.
#[derive(Clone, Debug, Serialize)]
pub struct Accuracy {
    pub correct: usize,
    pub photos: usize,
    pub accuracy: f64,
    /// Wilson's 95 % interval.
    pub interval: Interval,
}

impl Accuracy {
    fn of(correct: &[bool]) -> Self {
        let right = correct.iter().filter(|x| **x).count();
        Accuracy {
            correct: right,
            photos: correct.len(),
            accuracy: right as f64 / correct.len().max(1) as f64,
            interval: wilson(right, correct.len()),
        }
    }
}

/// Two runs of a comparison, in one view.
#[derive(Clone, Debug, Serialize)]
pub struct ComparedPair {
    pub view: View,
    /// Indices into [`Comparison::runs`]; `difference` is B's accuracy minus A's.
    pub a: usize,
    pub b: usize,
    #[serde(flatten)]
    pub paired: Paired,
    /// `paired.p_value` adjusted for this view's other pairs (Holm); equal to it for one pair.
    pub p_value_adjusted: f64,
    pub verdict: Verdict,
}

/// Runs compared on their common validation photos.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// Validation photos, the same in every run.
    pub photos: usize,
    pub runs: Vec<ComparedRun>,
    pub pairs: Vec<ComparedPair>,
    /// Why a view is missing for a run (validated without TTA, single views not recorded).
    pub notes: Vec<String>,
}

/// Compares the runs in `run_dirs` (at least two) photo by photo; refuses runs that were not
/// validated on the same photos, saying why.
pub fn compare_runs(run_dirs: &[PathBuf]) -> Result<Comparison> {
    let runs = run_dirs.iter().map(|dir| load(dir)).collect::<Result<Vec<_>>>()?;
    if let Some(first) = runs.first() {
        for other in &runs[1..] {
            if other.photos != first.photos {
                return Err(Error::NotComparable {
                    a: first.path.clone(),
                    b: other.path.clone(),
                    reason: why_different(first, other),
                });
            }
        }
    }
    let mut notes = Vec::new();
    for run in &runs {
        if run.tta_correct.is_none() {
            notes
                .push(format!("{}: validated without TTA: compared in single view only", run.name));
        }
        if run.single_view_correct.is_none() {
            notes.push(format!(
                "{}: its predictions.csv records no single view (an earlier incept wrote it): compared with TTA only",
                run.name
            ));
        }
    }
    let mut pairs = Vec::new();
    for view in [View::Tta, View::SingleView] {
        let mut of_view = Vec::new();
        for a in 0..runs.len() {
            for b in a + 1..runs.len() {
                if let (Some(x), Some(y)) = (runs[a].correct(view), runs[b].correct(view)) {
                    of_view.push((a, b, Paired::of(x, y)));
                }
            }
        }
        // Several pairs: each p-value adjusted so that the family keeps its 5 %.
        let adjusted = holm(&of_view.iter().map(|(_, _, p)| p.p_value).collect::<Vec<_>>());
        for ((a, b, paired), p_value_adjusted) in of_view.into_iter().zip(adjusted) {
            let verdict = paired.verdict(p_value_adjusted);
            pairs.push(ComparedPair { view, a, b, paired, p_value_adjusted, verdict });
        }
    }
    let photos = runs.first().map_or(0, |run| run.photos.len());
    Ok(Comparison { photos, runs, pairs, notes })
}

/// A run folder's validation predictions, sorted by photo.
fn load(run_dir: &Path) -> Result<ComparedRun> {
    let state = load_state(run_dir)?;
    let config = load_config(run_dir)?;
    if state.best_epoch == 0 {
        return Err(Error::NotARun {
            path: run_dir.to_path_buf(),
            reason: "no epoch has finished yet: nothing to compare".into(),
        });
    }
    let path = committed_file(run_dir, PREDICTIONS_CSV, &state);
    let mut predictions: Vec<PhotoPrediction> = read_predictions_csv(&path, &state.classes)?;
    predictions.sort_by(|a, b| a.source.cmp(&b.source));
    let right = |predicted: Option<usize>, photo: &PhotoPrediction| predicted == Some(photo.truth);
    let (tta_correct, single_view_correct) = if config.tta {
        let tta = predictions.iter().map(|p| p.is_correct()).collect();
        let single = predictions
            .iter()
            .map(|p| p.single_view_predicted.map(|s| right(Some(s), p)))
            .collect::<Option<Vec<bool>>>();
        (Some(tta), single)
    } else {
        (None, Some(predictions.iter().map(PhotoPrediction::is_correct).collect()))
    };
    let photos =
        predictions.iter().map(|p| (p.source.clone(), state.classes[p.truth].clone())).collect();
    let name = run_dir
        .file_name()
        .map_or_else(|| run_dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(ComparedRun {
        name,
        path: run_dir.to_path_buf(),
        tta: tta_correct.as_deref().map(Accuracy::of),
        single_view: single_view_correct.as_deref().map(Accuracy::of),
        tta_correct,
        single_view_correct,
        state,
        config,
        photos,
    })
}

/// Why two runs' validation photos differ, most telling reason first, then how they differ.
fn why_different(a: &ComparedRun, b: &ComparedRun) -> String {
    let mut reasons = Vec::new();
    let classes = |run: &ComparedRun| run.state.classes.iter().cloned().collect::<BTreeSet<_>>();
    if classes(a) != classes(b) {
        reasons.push(format!(
            "different classes ({} against {})",
            a.state.classes.join(", "),
            b.state.classes.join(", ")
        ));
    }
    let validation = |run: &ComparedRun| {
        run.config.validation_cache.as_ref().map_or_else(
            || format!("{} of its own cache", run.config.validation_split),
            |cache| cache.display().to_string(),
        )
    };
    if a.config.validation_cache != b.config.validation_cache {
        reasons.push(format!(
            "different validation caches ({} against {})",
            validation(a),
            validation(b)
        ));
    } else if a.config.validation_cache.is_none() {
        if a.config.validation_split != b.config.validation_split {
            reasons.push(format!(
                "different splits (--validation-split {} against {})",
                a.config.validation_split, b.config.validation_split
            ));
        }
        if a.config.stratified_split != b.config.stratified_split {
            let kind = |run: &ComparedRun| {
                if run.config.stratified_split {
                    "stratified"
                } else {
                    "unstratified (earlier incept)"
                }
            };
            reasons.push(format!("different splits ({} against {})", kind(a), kind(b)));
        }
        let content = |run: &ComparedRun| {
            run.state.cache_stamp.as_ref().and_then(|stamp| stamp.content_id.clone())
        };
        if a.state.cache != b.state.cache || content(a) != content(b) {
            reasons.push(format!(
                "trained on caches of other photos ({} against {})",
                a.state.cache.display(),
                b.state.cache.display()
            ));
        }
    }
    let set =
        |run: &ComparedRun| run.photos.iter().map(|(s, _)| s.clone()).collect::<BTreeSet<_>>();
    let (in_a, in_b) = (set(a), set(b));
    let only_a: Vec<&String> = in_a.difference(&in_b).collect();
    let only_b: Vec<&String> = in_b.difference(&in_a).collect();
    let relabelled = a
        .photos
        .iter()
        .filter(|(source, class)| {
            b.photos.binary_search_by(|(s, _)| s.cmp(source)).is_ok_and(|i| b.photos[i].1 != *class)
        })
        .count();
    let mut counts = Vec::new();
    if let Some(first) = only_a.first() {
        counts.push(format!("{} photos only in {}'s (e.g. {first})", only_a.len(), a.name));
    }
    if let Some(first) = only_b.first() {
        counts.push(format!("{} photos only in {}'s (e.g. {first})", only_b.len(), b.name));
    }
    if relabelled > 0 {
        counts.push(format!("{relabelled} photos with another class"));
    }
    let counts = format!(
        "{} validation photos against {}{}",
        a.photos.len(),
        b.photos.len(),
        if counts.is_empty() { String::new() } else { format!(": {}", counts.join(", ")) }
    );
    if reasons.is_empty() { counts } else { format!("{}; {counts}", reasons.join("; ")) }
}
