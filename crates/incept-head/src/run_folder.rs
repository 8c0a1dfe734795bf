//! The run folder: a contract that `confusion`, `runs`, `predict`, `export` and outside scripts
//! read.
//!
//! # Files
//! **docs/FORMATS.md, section 3, is the specification** of every file (every `run.json` field,
//! the `config.toml` keys, the CSV columns, the lock and the transient files), checked against a
//! trained run by `crates/incept-cli/tests/formats.rs`. In short: `config.toml` (the resolved
//! [`TrainConfig`]), `run.json` ([`RunState`]: classes, input shape, the cache and its stamp,
//! progress and every finished epoch), `best.bpk` and `last.bpk` (weights, burnpack),
//! `optimizer.bin`, `metrics.csv` (rewritten from `run.json`), and the best epoch's
//! `metrics.json` ([`incept_report::Metrics`]) and `predictions.csv`; the writer lock is
//! `.NAME.lock` beside the folder ([`lock`]).
//!
//! # Crash safety
//! Every file is written whole through [`incept_core::atomic`]. An epoch's checkpoint spans
//! several files, so it is a two-step commit whose commit point is `run.json`:
//! 1. the epoch's new `last.bpk` and `optimizer.bin` (and, when it is the best epoch so far,
//!    `best.bpk`, `predictions.csv` and `metrics.json`) are written whole under pending names
//!    `NAME.epoch-N`;
//! 2. `run.json` records epoch N (its metrics included): from here on the epoch counts;
//! 3. the pending files are renamed onto their names and `metrics.csv` is rewritten.
//!
//! A kill before step 2 leaves the previous checkpoint whole (its pending files are stale and
//! removed on resume); a kill after it is finished by [`recover`] (a reader meanwhile finds the
//! committed file through [`committed_file`]). So a resumed run never trains an epoch twice nor
//! writes a row twice.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use incept_cache::Cache;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::model::Head;
use crate::train::Backend;
use crate::{Error, Result};

pub const CONFIG_FILE: &str = "config.toml";
pub const STATE_FILE: &str = "run.json";
pub const BEST_WEIGHTS: &str = "best.bpk";
pub const LAST_WEIGHTS: &str = "last.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
pub const METRICS_CSV: &str = "metrics.csv";
pub const METRICS_JSON: &str = "metrics.json";
pub const PREDICTIONS_CSV: &str = "predictions.csv";
const METRICS_CSV_HEADER: &str =
    "epoch,train_loss,train_accuracy,validation_loss,validation_accuracy,seconds\n";
/// Pending checkpoint files are `NAME{PENDING_MARK}N`, N the epoch they belong to.
const PENDING_MARK: &str = ".epoch-";
/// Files committed with the last finished epoch.
const LAST_EPOCH_FILES: [&str; 2] = [LAST_WEIGHTS, OPTIMIZER_FILE];
/// Files committed with the best epoch.
const BEST_EPOCH_FILES: [&str; 3] = [BEST_WEIGHTS, PREDICTIONS_CSV, METRICS_JSON];

/// Test-only: pause this many milliseconds before each step of a checkpoint, naming the step on
/// stderr, so that a test can kill training inside a checkpoint and know where it landed.
const CHECKPOINT_PAUSE_VARIABLE: &str = "INCEPT_TEST_CHECKPOINT_PAUSE_MS";
/// Test-only: abort the process (as a kill would end it: no destructors, no flushing) right
/// before the first checkpoint step whose description contains this text.
const CHECKPOINT_ABORT_VARIABLE: &str = "INCEPT_TEST_CHECKPOINT_ABORT_BEFORE";

/// What `run.json` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub classes: Vec<String>,
    /// [H, W, C] of the feature maps the head takes.
    pub input_shape: [usize; 3],
    pub cache: PathBuf,
    pub cache_model_sha256: String,
    /// The cache's content when the run started (absent in runs from before it was recorded).
    #[serde(default)]
    pub cache_stamp: Option<CacheStamp>,
    pub backend: Backend,
    pub completed_epochs: usize,
    pub best_epoch: usize,
    /// `null` (infinite) until an epoch has finished.
    #[serde(deserialize_with = "null_is_infinite")]
    pub best_validation_loss: f64,
    pub best_validation_accuracy: f64,
    pub train_seconds: f64,
    pub finished: bool,
    /// Every finished epoch, in order (`metrics.csv` is written from these). Runs from before
    /// it was recorded read their rows from `metrics.csv`.
    #[serde(default)]
    pub epochs: Vec<EpochRecord>,
}

/// JSON has no infinity: serde writes it as `null`, read back here as infinity.
fn null_is_infinite<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::INFINITY))
}

/// Tells one content of a cache file from another: re-extracting rewrites its creation time,
/// growing `--copies` adds samples. `incept runs` compares runs only within one content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStamp {
    pub created: Option<String>,
    pub samples: usize,
    /// The cache's `content_id` (new at every merge; absent in caches of earlier versions and in
    /// runs that recorded none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

impl CacheStamp {
    pub fn of(cache: &Cache) -> Self {
        CacheStamp {
            created: cache.created.clone(),
            samples: cache.len(),
            content_id: cache.content_id.clone(),
        }
    }
}

/// One finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_loss: f64,
    pub validation_accuracy: f64,
    pub seconds: f64,
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

fn not_a_run(run_dir: &Path, reason: String) -> Error {
    Error::NotARun { path: run_dir.to_path_buf(), reason }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    incept_core::write_atomically(path, bytes).map_err(core_error)
}

fn core_error(error: incept_core::Error) -> Error {
    match error {
        incept_core::Error::Io { path, source } => Error::Io { path, source },
        other => Error::Data(other.to_string()),
    }
}

pub fn load_state(run_dir: &Path) -> Result<RunState> {
    let path = run_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        not_a_run(run_dir, format!("{}: {e}; train it with `incept train-head`", path.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        not_a_run(
            run_dir,
            format!(
                "{}: {e}; the file is damaged: restore it, or train the run again in a new --run-dir",
                path.display()
            ),
        )
    })
}

pub(crate) fn save_state(run_dir: &Path, state: &RunState) -> Result<()> {
    let text = serde_json::to_string_pretty(state).map_err(|e| Error::Data(e.to_string()))?;
    write_file(&run_dir.join(STATE_FILE), text.as_bytes())
}

/// The run's saved configuration, with an error that says what to do when it is unreadable.
pub fn load_config(run_dir: &Path) -> Result<TrainConfig> {
    let path = run_dir.join(CONFIG_FILE);
    if !path.exists() {
        return Err(not_a_run(
            run_dir,
            format!("{} is missing; train the run again in a new --run-dir", path.display()),
        ));
    }
    TrainConfig::from_toml_file(&path).map_err(|e| {
        not_a_run(
            run_dir,
            format!("{e}; restore the run's config.toml, or train it again in a new --run-dir"),
        )
    })
}

/// Starts a run folder: the resolved configuration, then `run.json` with no epoch finished.
pub(crate) fn start(run_dir: &Path, config: &TrainConfig, state: &RunState) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    write_file(&run_dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    save_state(run_dir, state)?;
    write_metrics_csv(run_dir, &state.epochs)
}

fn pending_path(run_dir: &Path, name: &str, epoch: usize) -> PathBuf {
    run_dir.join(format!("{name}{PENDING_MARK}{epoch}"))
}

/// The epoch that a file of the run folder must hold according to `state`.
fn committed_epoch(name: &str, state: &RunState) -> Option<usize> {
    if LAST_EPOCH_FILES.contains(&name) {
        Some(state.completed_epochs)
    } else if BEST_EPOCH_FILES.contains(&name) {
        (state.best_epoch <= state.completed_epochs).then_some(state.best_epoch)
    } else {
        None
    }
}

/// Where the committed version of run-folder file `name` is: its pending file when a checkpoint
/// was committed but not yet finished (see the module docs), else the file itself.
pub fn committed_file(run_dir: &Path, name: &str, state: &RunState) -> PathBuf {
    committed_epoch(name, state)
        .map(|epoch| pending_path(run_dir, name, epoch))
        .filter(|pending| pending.exists())
        .unwrap_or_else(|| run_dir.join(name))
}

/// One epoch's checkpoint, serialised and ready to commit.
pub(crate) struct Checkpoint {
    pub last_weights: Vec<u8>,
    pub optimizer: Vec<u8>,
    /// When this epoch is the best so far: its weights, `predictions.csv` and `metrics.json`.
    pub best: Option<BestEpoch>,
}

/// The files of a new best epoch.
pub(crate) struct BestEpoch {
    pub weights: Vec<u8>,
    pub predictions_csv: String,
    pub metrics_json: String,
}

/// Commits the checkpoint of epoch `state.completed_epochs` (`state` already describes it).
pub(crate) fn commit(run_dir: &Path, state: &RunState, checkpoint: Checkpoint) -> Result<()> {
    let epoch = state.completed_epochs;
    let mut files = vec![
        (LAST_WEIGHTS, checkpoint.last_weights.as_slice()),
        (OPTIMIZER_FILE, checkpoint.optimizer.as_slice()),
    ];
    if let Some(best) = &checkpoint.best {
        files.push((BEST_WEIGHTS, best.weights.as_slice()));
        files.push((PREDICTIONS_CSV, best.predictions_csv.as_bytes()));
        files.push((METRICS_JSON, best.metrics_json.as_bytes()));
    }
    for (name, bytes) in files {
        pause_for_tests(&format!("writing {name}{PENDING_MARK}{epoch}"));
        write_file(&pending_path(run_dir, name, epoch), bytes)?;
    }
    pause_for_tests(&format!("writing {STATE_FILE} (epoch {epoch})"));
    save_state(run_dir, state)?;
    pause_for_tests(&format!("renaming the files of epoch {epoch}"));
    recover(run_dir, state)?;
    pause_for_tests("done");
    Ok(())
}

/// Finishes a committed checkpoint and removes what an uncommitted one left: pending files are
/// renamed onto their names when `run.json` counts their epoch and deleted otherwise; temporary
/// files of processes that are gone are deleted; `metrics.csv` is rewritten from `run.json`.
pub(crate) fn recover(run_dir: &Path, state: &RunState) -> Result<()> {
    incept_core::atomic::remove_stale_temporaries(run_dir).map_err(core_error)?;
    for entry in std::fs::read_dir(run_dir).map_err(io(run_dir))? {
        let entry = entry.map_err(io(run_dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some((name, epoch)) = file_name.rsplit_once(PENDING_MARK) else { continue };
        let Ok(epoch) = epoch.parse::<usize>() else { continue };
        let Some(wanted) = committed_epoch(name, state) else { continue };
        if epoch == wanted {
            incept_core::atomic::rename_durably(&entry.path(), &run_dir.join(name))
                .map_err(core_error)?;
        } else {
            std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
        }
    }
    write_metrics_csv(run_dir, &state.epochs)
}

/// `metrics.csv` rows of a run from before `run.json` recorded them: the rows of finished
/// epochs, the last one of each epoch kept.
pub fn records_from_metrics_csv(run_dir: &Path, completed: usize) -> Result<Vec<EpochRecord>> {
    let path = run_dir.join(METRICS_CSV);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let mut records: Vec<EpochRecord> = Vec::new();
    for (line_number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<f64> = line.split(',').filter_map(|f| f.parse().ok()).collect();
        let [epoch, train_loss, train_accuracy, validation_loss, validation_accuracy, seconds] =
            fields[..]
        else {
            return Err(not_a_run(
                run_dir,
                format!("{} line {}: not a metrics row: {line:?}", path.display(), line_number + 1),
            ));
        };
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
            seconds,
        });
    }
    records.sort_by_key(|r| r.epoch);
    Ok(records)
}

fn write_metrics_csv(run_dir: &Path, epochs: &[EpochRecord]) -> Result<()> {
    let mut text = String::from(METRICS_CSV_HEADER);
    for record in epochs {
        text.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.3}\n",
            record.epoch,
            record.train_loss,
            record.train_accuracy,
            record.validation_loss,
            record.validation_accuracy,
            record.seconds
        ));
    }
    write_file(&run_dir.join(METRICS_CSV), text.as_bytes())
}

/// A head's weights in burnpack format.
pub(crate) fn weights_bytes(model: &Head) -> Result<Vec<u8>> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Data(format!("cannot serialise the weights: {e}")))?;
    Ok(bytes.to_vec())
}

/// An optimizer's state in burnpack format.
pub(crate) fn optimizer_bytes(optimizer: &ModuleOptimizer) -> Result<Vec<u8>> {
    let bytes = optimizer
        .into_bytes()
        .map_err(|e| Error::Data(format!("cannot serialise the optimizer state: {e}")))?;
    Ok(bytes.to_vec())
}

/// Takes the run folder's writer lock (`.NAME.lock` beside the folder, so a refused command
/// leaves the folder itself untouched): a second `train-head` on the same folder is refused at
/// once, naming the first.
pub(crate) fn lock(run_dir: &Path) -> Result<incept_core::lock::WriterLock> {
    let parent = run_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = run_dir.file_name() else {
        return Err(not_a_run(run_dir, "name the run folder itself (e.g. runs/first)".into()));
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    // One lock per folder, however the path to it is spelled.
    let parent = std::fs::canonicalize(parent).map_err(io(parent))?;
    let lock_path = parent.join(format!(".{}.lock", name.to_string_lossy()));
    incept_core::lock::WriterLock::acquire(&lock_path, run_dir).map_err(|error| match error {
        incept_core::Error::Locked { target, owner } => Error::RunLocked { path: target, owner },
        other => core_error(other),
    })
}

/// The committed version of `name` (see [`committed_file`]) and its bytes; if the pending file
/// is renamed into place between finding and reading it, the renamed file is read.
fn read_committed(
    run_dir: &Path,
    name: &str,
    state: &RunState,
) -> (PathBuf, std::io::Result<Vec<u8>>) {
    let path = committed_file(run_dir, name, state);
    let final_path = run_dir.join(name);
    match std::fs::read(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && path != final_path => {
            let bytes = std::fs::read(&final_path);
            (final_path, bytes)
        }
        bytes => (path, bytes),
    }
}

/// [`read_committed`] for a file the run cannot go on without (`what` names it in the error).
fn read_required(
    run_dir: &Path,
    name: &str,
    state: &RunState,
    what: &str,
) -> Result<(PathBuf, Bytes)> {
    match read_committed(run_dir, name, state) {
        (path, Ok(bytes)) => Ok((path, Bytes::from_bytes_vec(bytes))),
        (path, Err(error)) if error.kind() == std::io::ErrorKind::NotFound => Err(Error::Weights {
            path,
            reason: format!(
                "the {what} file is missing; restore it, or train the run again in a new --run-dir"
            ),
        }),
        (path, Err(source)) => Err(Error::Io { path, source }),
    }
}

fn damaged(path: &Path, what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        reason: format!(
            "the {what} file is damaged ({reason}); restore it, or train the run again in a new --run-dir"
        ),
    }
}

/// Loads the committed weights file `name` (`best.bpk`, `last.bpk`) into `model`, telling a
/// damaged file from one of another head.
pub(crate) fn load_weights(
    model: Head,
    run_dir: &Path,
    name: &str,
    state: &RunState,
) -> Result<Head> {
    let (path, bytes) = read_required(run_dir, name, state, "weights")?;
    let record =
        burn::store::ModuleRecord::from_bytes(bytes).map_err(|e| damaged(&path, "weights", e))?;
    model
        .try_load_record(record)
        .map_err(|e| Error::WeightsDoNotFit { path, reason: e.to_string() })
}

/// Loads the committed optimizer state into `optimizer`.
pub(crate) fn load_optimizer(
    optimizer: ModuleOptimizer,
    run_dir: &Path,
    state: &RunState,
) -> Result<ModuleOptimizer> {
    let (path, bytes) = read_required(run_dir, OPTIMIZER_FILE, state, "optimizer state")?;
    optimizer.from_bytes(bytes).map_err(|e| damaged(&path, "optimizer state", e))
}

/// Writes `metrics.json`.
pub(crate) fn write_metrics_json(run_dir: &Path, metrics: &incept_report::Metrics) -> Result<()> {
    write_file(&run_dir.join(METRICS_JSON), metrics.to_json().as_bytes())
}

/// The best epoch's committed `metrics.json`; `None` while no epoch has finished.
pub fn read_metrics(run_dir: &Path, state: &RunState) -> Result<Option<incept_report::Metrics>> {
    match read_committed(run_dir, METRICS_JSON, state) {
        (path, Ok(bytes)) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            not_a_run(run_dir, format!("{}: {e}; the file is damaged", path.display()))
        }),
        (_, Err(error)) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        (path, Err(source)) => Err(Error::Io { path, source }),
    }
}

fn pause_for_tests(step: &str) {
    static PAUSE: OnceLock<Option<u64>> = OnceLock::new();
    static ABORT: OnceLock<Option<String>> = OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        std::env::var(CHECKPOINT_PAUSE_VARIABLE).ok().and_then(|value| value.parse().ok())
    });
    let abort = ABORT.get_or_init(|| std::env::var(CHECKPOINT_ABORT_VARIABLE).ok());
    if abort.as_deref().is_some_and(|text| step.contains(text)) {
        eprintln!("checkpoint: {step}: aborting (test hook)");
        std::process::abort();
    }
    if let Some(milliseconds) = *pause {
        eprintln!("checkpoint: {step}");
        std::thread::sleep(std::time::Duration::from_millis(milliseconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(completed: usize, best: usize) -> RunState {
        RunState {
            classes: vec!["a".into()],
            input_shape: [1, 1, 1],
            cache: "c.h5".into(),
            cache_model_sha256: String::new(),
            cache_stamp: None,
            backend: Backend::Flex,
            completed_epochs: completed,
            best_epoch: best,
            best_validation_loss: 1.0,
            best_validation_accuracy: 0.5,
            train_seconds: 0.0,
            finished: false,
            epochs: (1..=completed)
                .map(|epoch| EpochRecord {
                    epoch,
                    train_loss: epoch as f64,
                    train_accuracy: 0.5,
                    validation_loss: 1.0,
                    validation_accuracy: 0.5,
                    seconds: 1.0,
                })
                .collect(),
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"))
    }

    #[test]
    fn committed_checkpoints_roll_forward_and_uncommitted_ones_are_dropped() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let run = dir.path();
        // Epoch 2 is committed (run.json says so) but its files were not renamed yet; epoch 3
        // was being written when the process was killed.
        for (name, text) in [(LAST_WEIGHTS, "last 1"), (BEST_WEIGHTS, "best 1")] {
            write_file(&run.join(name), text.as_bytes())?;
        }
        write_file(&pending_path(run, LAST_WEIGHTS, 2), b"last 2")?;
        write_file(&pending_path(run, BEST_WEIGHTS, 2), b"best 2")?;
        write_file(&pending_path(run, LAST_WEIGHTS, 3), b"last 3")?;
        let state = state(2, 2);
        // Readers find the committed files before anything is renamed.
        assert_eq!(read(&committed_file(run, LAST_WEIGHTS, &state)), "last 2");
        assert_eq!(read(&committed_file(run, BEST_WEIGHTS, &state)), "best 2");
        recover(run, &state)?;
        assert_eq!(read(&run.join(LAST_WEIGHTS)), "last 2");
        assert_eq!(read(&run.join(BEST_WEIGHTS)), "best 2");
        let mut names: Vec<String> = std::fs::read_dir(run)
            .map_err(io(run))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        assert_eq!(names, [BEST_WEIGHTS, LAST_WEIGHTS, METRICS_CSV]);
        let csv = read(&run.join(METRICS_CSV));
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv.lines().nth(2).is_some_and(|l| l.starts_with("2,2.000000,")), "{csv}");
        Ok(())
    }

    #[test]
    fn a_run_with_no_finished_epoch_reads_back() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut fresh = state(0, 0);
        fresh.best_validation_loss = f64::INFINITY;
        save_state(dir.path(), &fresh)?;
        let read = load_state(dir.path())?;
        assert_eq!(read.best_validation_loss, f64::INFINITY);
        assert_eq!(read.completed_epochs, 0);
        Ok(())
    }

    #[test]
    fn old_metrics_rows_are_read_once_per_finished_epoch() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let csv = format!(
            "{METRICS_CSV_HEADER}1,1.0,0.5,1.0,0.5,1.0\n2,2.0,0.5,1.0,0.5,1.0\n2,2.5,0.5,1.0,0.5,1.0\n3,3.0,0.5,1.0,0.5,1.0\n"
        );
        write_file(&dir.path().join(METRICS_CSV), csv.as_bytes())?;
        let records = records_from_metrics_csv(dir.path(), 2)?;
        let losses: Vec<(usize, f64)> = records.iter().map(|r| (r.epoch, r.train_loss)).collect();
        assert_eq!(losses, [(1, 1.0), (2, 2.5)]);
        Ok(())
    }
}
