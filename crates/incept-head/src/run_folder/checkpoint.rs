//! An epoch's checkpoint: its two-step commit (see [`super`]), recovery from a kill inside one,
//! and reading the committed files back.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;

use super::csv::{records_from_metrics_csv, write_metrics_csv};
use super::state::{RunState, save_state};
use super::{
    BEST_WEIGHTS, CALIBRATION_JSON, LAST_WEIGHTS, METRICS_JSON, OPTIMIZER_FILE, PREDICTIONS_CSV,
    STATE_FILE, core_error, io, not_a_run, write_file,
};
use crate::model::Head;
use crate::{Error, Result};

/// Pending checkpoint files are `NAME{PENDING_MARK}N`, N the epoch they belong to.
const PENDING_MARK: &str = ".epoch-";
/// Files committed with the last finished epoch.
const LAST_EPOCH_FILES: [&str; 2] = [LAST_WEIGHTS, OPTIMIZER_FILE];
/// Files committed with the best epoch.
const BEST_EPOCH_FILES: [&str; 4] = [BEST_WEIGHTS, PREDICTIONS_CSV, METRICS_JSON, CALIBRATION_JSON];
/// Files whose SHA-256 `run.json` records: the weights and optimizer state, in which a changed
/// byte still reads as a number, so that nothing else would notice it.
const CHECKSUMMED_FILES: [&str; 3] = [BEST_WEIGHTS, LAST_WEIGHTS, OPTIMIZER_FILE];

/// Test-only: pause this many milliseconds before each step of a checkpoint, naming the step on
/// stderr, so that a test can kill training inside a checkpoint and know where it landed.
const CHECKPOINT_PAUSE_VARIABLE: &str = "INCEPT_TEST_CHECKPOINT_PAUSE_MS";
/// Test-only: abort the process (as a kill would end it: no destructors, no flushing) right
/// before the first checkpoint step whose description contains this text.
const CHECKPOINT_ABORT_VARIABLE: &str = "INCEPT_TEST_CHECKPOINT_ABORT_BEFORE";

pub(super) fn pending_path(run_dir: &Path, name: &str, epoch: usize) -> PathBuf {
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
    /// When this epoch is the best so far: its weights, `predictions.csv`, `metrics.json` and
    /// `calibration.json`.
    pub best: Option<BestEpoch>,
}

/// The files of a new best epoch.
pub(crate) struct BestEpoch {
    pub weights: Vec<u8>,
    pub predictions_csv: String,
    pub metrics_json: String,
    pub calibration_json: String,
}

/// Commits the checkpoint of epoch `state.completed_epochs` (`state` already describes it; the
/// SHA-256 of its checkpoint files is recorded in it here).
pub(crate) fn commit(run_dir: &Path, state: &mut RunState, checkpoint: Checkpoint) -> Result<()> {
    let epoch = state.completed_epochs;
    let mut files = vec![
        (LAST_WEIGHTS, checkpoint.last_weights.as_slice()),
        (OPTIMIZER_FILE, checkpoint.optimizer.as_slice()),
    ];
    if let Some(best) = &checkpoint.best {
        files.push((BEST_WEIGHTS, best.weights.as_slice()));
        files.push((PREDICTIONS_CSV, best.predictions_csv.as_bytes()));
        files.push((METRICS_JSON, best.metrics_json.as_bytes()));
        files.push((CALIBRATION_JSON, best.calibration_json.as_bytes()));
    }
    for (name, bytes) in files {
        // Hashed from the bytes in memory: what was meant to be written, not what was read back.
        if CHECKSUMMED_FILES.contains(&name) {
            state.sha256.insert(name.to_owned(), incept_core::sha256_hex(bytes));
        }
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
/// Its SHA-256 is left to the caller to check ([`verify_sha256`]).
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

/// Refuses `bytes`, read from `path` as run-folder file `name`, when they differ from the SHA-256
/// that `run.json` recorded for the file; a file it recorded none for (a run of an earlier
/// version) is taken as it is.
fn verify_sha256(path: &Path, name: &str, bytes: &[u8], state: &RunState) -> Result<()> {
    let Some(recorded) = state.sha256.get(name) else { return Ok(()) };
    if incept_core::sha256_hex(bytes) == *recorded {
        return Ok(());
    }
    // A run folder keeps one last epoch only: there is none before it for --resume to go back to.
    let fix = if LAST_EPOCH_FILES.contains(&name) {
        "the run folder keeps no earlier epoch to resume from; restore it from a backup, or train \
         the run again in a new --run-dir"
    } else {
        "restore it from a backup, or train the run again in a new --run-dir"
    };
    Err(Error::Damaged { path: path.to_path_buf(), fix })
}

/// [`read_required`], refused at once when the file differs from its recorded SHA-256.
pub(super) fn read_verified(
    run_dir: &Path,
    name: &str,
    state: &RunState,
    what: &str,
) -> Result<(PathBuf, Bytes)> {
    let (path, bytes) = read_required(run_dir, name, state, what)?;
    verify_sha256(&path, name, &bytes, state)?;
    Ok((path, bytes))
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
fn load_weights(model: Head, run_dir: &Path, name: &str, state: &RunState) -> Result<Head> {
    let (path, bytes) = read_required(run_dir, name, state, "weights")?;
    // The checksum's verdict is given last: a file that does not parse or does not fit this head
    // gets the more precise message and fix; one that loads yet is not the file written, this one.
    let checksum = verify_sha256(&path, name, &bytes, state);
    let record =
        burn::store::ModuleRecord::from_bytes(bytes).map_err(|e| damaged(&path, "weights", e))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| Error::WeightsDoNotFit { path, reason: e.to_string() })?;
    checksum.map(|()| model)
}

/// Loads the best epoch's committed weights (`best.bpk`) into `model`.
pub(crate) fn load_best_weights(model: Head, run_dir: &Path, state: &RunState) -> Result<Head> {
    load_weights(model, run_dir, BEST_WEIGHTS, state)
}

/// Loads the committed optimizer state into `optimizer`.
fn load_optimizer(
    optimizer: ModuleOptimizer,
    run_dir: &Path,
    state: &RunState,
) -> Result<ModuleOptimizer> {
    let (path, bytes) = read_required(run_dir, OPTIMIZER_FILE, state, "optimizer state")?;
    // Given last, as for the weights.
    let checksum = verify_sha256(&path, OPTIMIZER_FILE, &bytes, state);
    let optimizer =
        optimizer.from_bytes(bytes).map_err(|e| damaged(&path, "optimizer state", e))?;
    checksum.map(|()| optimizer)
}

/// Where a resumed run continues from: the last finished epoch's weights and optimizer state
/// loaded into `model` and `optimizer`, and `state.epochs` filled from `metrics.csv` for a run
/// of an earlier version whose `run.json` did not record them. A run that finished no epoch
/// starts from `model` and `optimizer` as they are.
pub(crate) fn load_last_checkpoint(
    model: Head,
    optimizer: ModuleOptimizer,
    run_dir: &Path,
    state: &mut RunState,
) -> Result<(Head, ModuleOptimizer)> {
    if state.completed_epochs == 0 {
        return Ok((model, optimizer));
    }
    let model = load_weights(model, run_dir, LAST_WEIGHTS, state)?;
    let optimizer = load_optimizer(optimizer, run_dir, state)?;
    // A damaged best.bpk is refused too, before any training: a later epoch replaces it only by
    // beating the validation figure run.json recorded for it, which may never happen, so the
    // run would finish with weights that no command can load, hours of training later.
    if state.best_epoch > 0 && state.sha256.contains_key(BEST_WEIGHTS) {
        read_verified(run_dir, BEST_WEIGHTS, state, "weights")?;
    }
    if state.epochs.is_empty() {
        state.epochs = records_from_metrics_csv(run_dir, state.completed_epochs)?;
    }
    Ok((model, optimizer))
}

/// Writes `metrics.json`.
pub(crate) fn write_metrics_json(run_dir: &Path, metrics: &incept_report::Metrics) -> Result<()> {
    write_file(&run_dir.join(METRICS_JSON), metrics.to_json().as_bytes())
}

/// The best epoch's committed `metrics.json`; `None` while no epoch has finished.
pub fn read_metrics(run_dir: &Path, state: &RunState) -> Result<Option<incept_report::Metrics>> {
    match read_committed(run_dir, METRICS_JSON, state) {
        // One reader for every version's file: figures it lacks are derived from its matrix.
        (path, Ok(bytes)) => incept_report::Metrics::from_json(&bytes, &path)
            .map(Some)
            .map_err(|e| not_a_run(run_dir, e.to_string())),
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
