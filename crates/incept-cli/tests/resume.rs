//! `train-head --resume` and the run folder under kills and bad input: a resumed run continues
//! the saved recipe, a kill at any moment loses or repeats nothing, and a refused command leaves
//! the folder as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;

mod checksums;
mod damaged;
mod folds;

/// Copies the files of a run folder (not its sub-folders) into `to`.
fn copy_run(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    Ok(())
}

/// Every file of a folder and its bytes: to show that a refused command changed nothing.
fn snapshot(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        files.insert(path.clone(), std::fs::read(&path)?);
    }
    Ok(files)
}

/// The first five columns of metrics.csv (all but the time).
fn metric_rows(run: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(run.join("metrics.csv"))?
        .lines()
        .map(|line| line.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect())
}

/// Asserts that `output` failed with one `error:` line naming `file` and saying what to do.
fn assert_one_line_error(output: &std::process::Output, file: &str, fix: &str) {
    let message = stderr(output);
    assert!(!output.status.success(), "succeeded: {message}");
    assert!(!message.contains("panicked"), "{message}");
    let errors: Vec<&str> = message.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{message}");
    assert!(errors[0].contains(file) && errors[0].contains(fix), "{message}");
}

#[test]
fn resume_continues_the_saved_recipe_and_only_epochs_may_grow() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 6)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    ok(train(&cache, &run_dir, &config, &["--epochs", "2", "--seed", "4"])?);
    let resume = |extra: &[&str]| {
        let mut args = vec!["train-head", path_str(&cache), "--run-dir", path_str(&run_dir)];
        args.push("--resume");
        args.extend_from_slice(extra);
        run(&args)
    };
    // Without the original flags: the saved recipe, not the default preset's 30 epochs.
    let again = ok(resume(&[])?);
    assert!(stderr(&again).contains("after epoch 2"), "{}", stderr(&again));
    assert_eq!(metric_rows(&run_dir)?.len(), 1 + 2);
    let saved = std::fs::read_to_string(run_dir.join("config.toml"))?;
    assert!(saved.contains("epochs = 2") && saved.contains("seed = 4"), "{saved}");

    // Flags that would change the recipe are refused, each named, and nothing is written.
    let before = snapshot(&run_dir)?;
    for (flags, named) in [
        (&["--learning-rate", "0.5"][..], "--learning-rate"),
        (&["--seed", "5", "--pooling", "flatten"][..], "--pooling"),
        (&["--preset", "blog"][..], "--optimizer"),
        (&["--backend", "ndarray"][..], "--backend"),
        (&["--epochs", "1"][..], "extended, not shortened"),
    ] {
        let refused = resume(flags)?;
        assert_one_line_error(&refused, "run", named);
        assert_eq!(snapshot(&run_dir)?, before, "{flags:?} changed the folder");
    }
    // Repeating the run's own values is fine.
    ok(resume(&["--seed", "4", "--config", path_str(&config), "--epochs", "2"])?);

    // A larger --epochs extends the run: recorded, and the schedule change stated.
    let extended = ok(resume(&["--epochs", "4"])?);
    let message = stderr(&extended);
    assert!(message.contains("extending the run from 2 to 4 epochs"), "{message}");
    assert!(message.contains("schedule"), "{message}");
    assert!(std::fs::read_to_string(run_dir.join("config.toml"))?.contains("epochs = 4"));
    let rows = metric_rows(&run_dir)?;
    assert_eq!(rows.len(), 1 + 4, "{rows:?}");
    let listing = ok(run(&["runs", path_str(&dir.path().join("run"))])?);
    assert!(stdout(&listing).contains("4/4"), "{}", stdout(&listing));
    Ok(())
}

/// A burnpack file's tensors: name → raw bytes.
fn tensors_by_name(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let reader = burn_pack::Reader::from_file(path)?;
    let mut tensors = BTreeMap::new();
    for name in reader.tensor_names() {
        tensors.insert(name.to_owned(), reader.tensor_data(name)?);
    }
    Ok(tensors)
}

/// The next of a xorshift sequence: kill delays that differ between rounds, the same every run.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Starts `command` with checkpoint pauses of 20 ms, SIGKILLs it after `delay`, and returns its
/// output with its exit status when it had already finished.
fn kill_after(
    command: &mut std::process::Command,
    delay: Duration,
) -> std::io::Result<(Option<std::process::ExitStatus>, std::process::Output)> {
    command.env("INCEPT_TEST_CHECKPOINT_PAUSE_MS", "20");
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    std::thread::sleep(delay);
    let exited = child.try_wait()?;
    child.kill()?; // SIGKILL
    Ok((exited, child.wait_with_output()?))
}

/// Runs `command` with the test hook that aborts it right before the first checkpoint step
/// naming `target`; `false` when it finished without reaching that step.
fn abort_before(command: &mut std::process::Command, target: &str) -> std::io::Result<bool> {
    let output = command.env("INCEPT_TEST_CHECKPOINT_ABORT_BEFORE", target).output()?;
    if output.status.success() {
        return Ok(false);
    }
    assert!(stderr(&output).contains("aborting (test hook)"), "{}", stderr(&output));
    Ok(true)
}

/// Where a kill landed, from the last line the process printed.
fn landing(lines: &[String]) -> String {
    lines
        .iter()
        .rev()
        .find_map(|line| {
            if let Some(step) = line.strip_prefix("checkpoint: ") {
                // "writing last.bpk.epoch-3" → "before writing last.bpk"
                let step = step.split(".epoch-").next().unwrap_or(step);
                let step = step.split(" (epoch").next().unwrap_or(step);
                let step = step.split(" of epoch").next().unwrap_or(step);
                let step = step.trim_end_matches(" the files");
                Some(format!("checkpoint: before {step}"))
            } else if line.starts_with("epoch ") {
                Some("training, after an epoch's summary".to_owned())
            } else if line.starts_with("resuming") {
                Some("training, after resuming".to_owned())
            } else {
                None
            }
        })
        .unwrap_or_else(|| "start-up".to_owned())
}

/// Kills `train-head` again and again — right before each step of a checkpoint, and at
/// pseudo-random moments — resuming each time, and checks that the finished run equals an
/// uninterrupted one: the same metrics rows, each epoch once, the same weights and predictions.
#[test]
fn a_run_killed_anywhere_resumes_to_the_uninterrupted_result() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 6)?;
    let config = small_config_with(dir.path(), 8, "")?;
    let whole = dir.path().join("whole");
    ok(train(&cache, &whole, &config, &[])?);

    let killed = dir.path().join("killed");
    // Abort right before these checkpoint steps (in turn; exactly there, by a test hook), or
    // SIGKILL after a pseudo-random delay ("random"), resuming each time.
    // The targeted rounds come first and commit only three of the eight epochs (the best-epoch
    // files are written in epoch 1, which always improves), so all twelve land before the run
    // can finish; the random rounds follow.
    let targets = [
        "writing best.bpk",
        "writing predictions.csv",
        "writing metrics.json",
        "writing run.json",
        "writing last.bpk",
        "renaming",
        "writing optimizer.bin",
        "done",
        "writing run.json",
        "renaming",
        "writing last.bpk",
        "writing run.json",
        "random",
        "random",
        "random",
        "random",
        "random",
        "random",
    ];
    let mut random_state = 0x2545_f491_4f6c_dd1d_u64;
    let mut landings: BTreeMap<String, usize> = BTreeMap::new();
    let mut kills = 0;
    for target in targets {
        let mut command = incept();
        command.args(["train-head", path_str(&cache), "--run-dir", path_str(&killed)]);
        command.args(["--config", path_str(&config)]);
        if killed.join("run.json").exists() {
            command.arg("--resume");
        }
        let landed = if target == "random" {
            let delay = Duration::from_millis(50 + next_random(&mut random_state) % 700);
            let (exited, output) = kill_after(&mut command, delay)?;
            let lines: Vec<String> = stderr(&output).lines().map(str::to_owned).collect();
            if let Some(status) = exited {
                assert!(status.success(), "train-head failed: {lines:?}");
                break; // it finished before the kill
            }
            landing(&lines)
        } else {
            if !abort_before(&mut command, target)? {
                break; // finished without reaching that step again
            }
            format!("checkpoint: before {target}")
        };
        kills += 1;
        *landings.entry(landed).or_default() += 1;
        // After every kill the folder holds each epoch at most once.
        if killed.join("metrics.csv").exists() {
            let rows = metric_rows(&killed)?;
            let mut epochs: Vec<&str> =
                rows.iter().skip(1).filter_map(|r| r.split(',').next()).collect();
            let count = epochs.len();
            epochs.dedup();
            assert_eq!(epochs.len(), count, "duplicate epoch rows after a kill: {rows:?}");
        }
    }
    // Let the last one finish.
    let resume = if killed.join("run.json").exists() { vec!["--resume"] } else { vec![] };
    ok(train(&cache, &killed, &config, &resume)?);
    eprintln!("{kills} kills, landed: {landings:?}");
    assert!(kills >= 12, "only {kills} kills landed: {landings:?}");
    assert!(
        landings.keys().filter(|k| k.starts_with("checkpoint")).count() >= 7,
        "kills did not reach the checkpoint steps: {landings:?}"
    );

    assert_eq!(metric_rows(&killed)?, metric_rows(&whole)?);
    for file in ["predictions.csv", "metrics.json"] {
        assert!(
            std::fs::read(killed.join(file))? == std::fs::read(whole.join(file))?,
            "{file} differs from the uninterrupted run's"
        );
    }
    // Burnpack files carry each parameter's random id: compare the values, tensor by tensor.
    assert!(tensors_by_name(&whole.join("best.bpk"))?.len() >= 4);
    for file in ["best.bpk", "last.bpk"] {
        assert!(
            tensors_by_name(&killed.join(file))? == tensors_by_name(&whole.join(file))?,
            "{file} holds other weights than the uninterrupted run's"
        );
    }
    let state = |run: &Path| -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
        // Optimizer state is keyed by parameter id: compare the set of tensors.
        let mut values: Vec<Vec<u8>> =
            tensors_by_name(&run.join("optimizer.bin"))?.into_values().collect();
        values.sort();
        Ok(values)
    };
    assert!(
        state(&killed)? == state(&whole)?,
        "optimizer.bin differs from the uninterrupted run's"
    );
    // Nothing pending or temporary is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(&killed)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.contains(".epoch-") || name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    Ok(())
}

#[test]
fn a_second_train_head_on_the_same_run_folder_is_refused_naming_the_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 5)?;
    let config = small_config(dir.path(), "")?;
    let run_dir = dir.path().join("run");
    // A slow first run (long pauses in its checkpoints), then a second on the same folder.
    let mut first = incept();
    first.args(["train-head", path_str(&cache), "--run-dir", path_str(&run_dir)]);
    first.args(["--config", path_str(&config)]).env("INCEPT_TEST_CHECKPOINT_PAUSE_MS", "400");
    let mut first = first.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !run_dir.join("run.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second =
        run(&["train-head", path_str(&cache), "--run-dir", path_str(&run_dir), "--resume"])?;
    let still_running = first.try_wait()?.is_none();
    first.kill()?;
    first.wait()?;
    assert!(still_running, "the first run ended before the second started");
    assert_one_line_error(&second, "being trained by another incept process", "pid");
    assert!(stderr(&second).contains(&format!("pid {}", first.id())), "{}", stderr(&second));
    Ok(())
}
