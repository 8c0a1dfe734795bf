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
//! `metrics.json` ([`incept_report::Metrics`]), `predictions.csv` and `calibration.json`
//! ([`RunCalibration`]); the writer lock is
//! `.NAME.lock` beside the folder ([`lock`]).
//!
//! # Crash safety
//! Every file is written whole through [`incept_core::atomic`]. An epoch's checkpoint spans
//! several files, so it is a two-step commit whose commit point is `run.json`:
//! 1. the epoch's new `last.bpk` and `optimizer.bin` (and, when it is the best epoch so far,
//!    `best.bpk`, `predictions.csv`, `metrics.json` and `calibration.json`) are written whole
//!    under pending names
//!    `NAME.epoch-N`;
//! 2. `run.json` records epoch N (its metrics included) and the SHA-256 of the checkpoint files
//!    of step 1, which their readers check: from here on the epoch counts;
//! 3. the pending files are renamed onto their names and `metrics.csv` is rewritten.
//!
//! A kill before step 2 leaves the previous checkpoint whole (its pending files are stale and
//! removed on resume); a kill after it is finished by [`recover`] (a reader meanwhile finds the
//! committed file through [`committed_file`]). So a resumed run never trains an epoch twice nor
//! writes a row twice.

use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::{Error, Result};

mod calibration;
mod checkpoint;
mod csv;
mod state;

pub use calibration::{CALIBRATION_JSON, FittedOn, RunCalibration, read_calibration};
pub(crate) use checkpoint::{
    BestEpoch, Checkpoint, commit, load_best_weights, load_last_checkpoint, optimizer_bytes,
    recover, weights_bytes, write_metrics_json,
};
pub use checkpoint::{committed_file, read_metrics};
pub(crate) use csv::predictions_csv;
pub use csv::records_from_metrics_csv;
pub use state::{CacheStamp, EpochRecord, RunState, load_state};
pub(crate) use state::{finish, save_state};

pub const CONFIG_FILE: &str = "config.toml";
pub const STATE_FILE: &str = "run.json";
pub const BEST_WEIGHTS: &str = "best.bpk";
pub const LAST_WEIGHTS: &str = "last.bpk";
pub const OPTIMIZER_FILE: &str = "optimizer.bin";
pub const METRICS_CSV: &str = "metrics.csv";
pub const METRICS_JSON: &str = "metrics.json";
pub const PREDICTIONS_CSV: &str = "predictions.csv";

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| disk_full_or_io(path.to_path_buf(), source)
}

/// An I/O error, or the one line a full disk deserves (the run folder keeps its last epoch).
fn disk_full_or_io(path: PathBuf, source: std::io::Error) -> Error {
    if incept_core::is_disk_full(&source) {
        Error::DiskFull { path }
    } else {
        Error::Io { path, source }
    }
}

fn not_a_run(run_dir: &Path, reason: String) -> Error {
    Error::NotARun { path: run_dir.to_path_buf(), reason }
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    incept_core::write_atomically(path, bytes).map_err(core_error)
}

fn core_error(error: incept_core::Error) -> Error {
    match error {
        incept_core::Error::Io { path, source } => disk_full_or_io(path, source),
        other => Error::Data(other.to_string()),
    }
}

/// Whether `run_dir` holds a run (its `run.json`).
pub(crate) fn holds_a_run(run_dir: &Path) -> bool {
    run_dir.join(STATE_FILE).exists()
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
    let restore = |e: Error| {
        not_a_run(
            run_dir,
            format!("{e}; restore the run's config.toml, or train it again in a new --run-dir"),
        )
    };
    let config = TrainConfig::from_saved_toml_file(&path).map_err(restore)?;
    // A hand-edited value out of range is refused here, naming the file, not later at the weights.
    config.validate().map_err(|e| match e {
        Error::Config(message) => restore(Error::Config(format!("{}: {message}", path.display()))),
        other => restore(other),
    })?;
    Ok(config)
}

/// Starts a run folder: the resolved configuration, then `run.json` with no epoch finished.
pub(crate) fn start(run_dir: &Path, config: &TrainConfig, state: &RunState) -> Result<()> {
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    write_file(&run_dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    save_state(run_dir, state)?;
    csv::write_metrics_csv(run_dir, &state.epochs)
}

/// Reopens a run extended to more epochs (its `config.toml` already records them): `run.json`
/// no longer reads finished.
pub(crate) fn reopen(run_dir: &Path, state: &mut RunState) -> Result<()> {
    state.finished = false;
    save_state(run_dir, state)
}

/// Scratch files beside the run folder, kept to one process by its lock: `.NAME.streamed.f32`
/// (what a streamed run's head keeps of every map of its cache, pooled once; see
/// `data/spill.rs`) and `.NAME.streamed-validation.f32` (of `--validation-cache`).
pub(crate) fn spill_paths(run_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (parent, name) = parent_and_name(run_dir)?;
    Ok((
        parent.join(format!(".{name}.streamed.f32")),
        parent.join(format!(".{name}.streamed-validation.f32")),
    ))
}

/// The folder a run folder lies in (`.` for a bare name) and the run folder's name.
fn parent_and_name(run_dir: &Path) -> Result<(&Path, String)> {
    let parent =
        run_dir.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = run_dir.file_name() else {
        return Err(not_a_run(run_dir, "name the run folder itself (e.g. runs/first)".into()));
    };
    Ok((parent, name.to_string_lossy().into_owned()))
}

/// Takes the run folder's writer lock (`.NAME.lock` beside the folder, so a refused command
/// leaves the folder itself untouched): a second `train-head` on the same folder is refused at
/// once, naming the first.
pub(crate) fn lock(run_dir: &Path) -> Result<incept_core::lock::WriterLock> {
    let (parent, name) = parent_and_name(run_dir)?;
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    // One lock per folder, however the path to it is spelled.
    let parent = std::fs::canonicalize(parent).map_err(io(parent))?;
    let lock_path = parent.join(format!(".{name}.lock"));
    incept_core::lock::WriterLock::acquire(&lock_path, run_dir).map_err(|error| match error {
        incept_core::Error::Locked { target, owner } => Error::RunLocked { path: target, owner },
        other => core_error(other),
    })
}

#[cfg(test)]
mod tests {
    use super::checkpoint::{pending_path, read_verified};
    use super::csv::METRICS_CSV_HEADER;
    use super::*;
    use crate::backend::Backend;

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
                    validation_balanced_accuracy: Some(0.5),
                    validation_macro_f1: Some(0.5),
                    seconds: 1.0,
                })
                .collect(),
            sha256: Default::default(),
            cross_validation: None,
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

    /// Flips the lowest bit of the middle byte: the length kept, so only a checksum tells.
    fn flip_middle_byte(path: &Path) -> Result<()> {
        let mut bytes = std::fs::read(path).map_err(io(path))?;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        write_file(path, &bytes)
    }

    #[test]
    fn commits_record_the_checksums_that_readers_check() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let run = dir.path();
        let mut state = state(1, 1);
        let best = BestEpoch {
            weights: b"best 1".to_vec(),
            predictions_csv: String::new(),
            metrics_json: "{}".into(),
            calibration_json: "{}".into(),
        };
        let first = Checkpoint {
            last_weights: b"last 1".to_vec(),
            optimizer: b"optimizer 1".to_vec(),
            best: Some(best),
        };
        commit(run, &mut state, first)?;
        // Epoch 2 is no better: best.bpk keeps epoch 1's bytes and checksum.
        state.completed_epochs = 2;
        let second = Checkpoint {
            last_weights: b"last 2".to_vec(),
            optimizer: b"optimizer 2".to_vec(),
            best: None,
        };
        commit(run, &mut state, second)?;
        let recorded = load_state(run)?.sha256;
        let expected: Vec<(&str, String)> =
            [(BEST_WEIGHTS, "best 1"), (LAST_WEIGHTS, "last 2"), (OPTIMIZER_FILE, "optimizer 2")]
                .map(|(name, text)| (name, incept_core::sha256_hex(text.as_bytes())))
                .into();
        let found: Vec<(&str, String)> =
            recorded.iter().map(|(name, sum)| (name.as_str(), sum.clone())).collect();
        assert_eq!(found, expected);
        for name in [BEST_WEIGHTS, LAST_WEIGHTS, OPTIMIZER_FILE] {
            read_verified(run, name, &state, "test")?;
        }

        for (name, fix) in [
            (BEST_WEIGHTS, "; restore it from a backup"),
            (LAST_WEIGHTS, "no earlier epoch to resume from"),
            (OPTIMIZER_FILE, "no earlier epoch to resume from"),
        ] {
            let path = run.join(name);
            flip_middle_byte(&path)?;
            let damaged = std::fs::read(&path).map_err(io(&path))?;
            match read_verified(run, name, &state, "test") {
                Err(error @ Error::Damaged { .. }) => {
                    let message = error.to_string();
                    assert!(message.starts_with(&path.display().to_string()), "{message}");
                    assert!(message.contains("SHA-256") && message.contains(fix), "{message}");
                }
                other => panic!("{name}: {other:?}"),
            }
            // Refused, not repaired nor removed.
            assert_eq!(std::fs::read(&path).map_err(io(&path))?, damaged);
        }

        // A run.json of an earlier version has no checksums: its files are read as they are.
        let mut old = serde_json::to_value(&state).map_err(|e| Error::Data(e.to_string()))?;
        old.as_object_mut().and_then(|fields| fields.remove("sha256"));
        write_file(&run.join(STATE_FILE), old.to_string().as_bytes())?;
        let old = load_state(run)?;
        assert!(old.sha256.is_empty());
        for name in [BEST_WEIGHTS, LAST_WEIGHTS, OPTIMIZER_FILE] {
            read_verified(run, name, &old, "test")?;
        }
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
