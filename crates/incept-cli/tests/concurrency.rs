//! Two `incept` processes on one cache: a second writer is refused at once, naming the first,
//! and never harms what the first writes; a reader sees the old cache or the new one, whole.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use incept_cache::Cache;

/// `incept extract` of `data` into `cache` with the tiny model, small segments, one thread.
fn extract_command(data: &Path, cache: &Path, copies: &str) -> Command {
    let mut command = incept();
    command.args(["extract", path_str(data), "-o", path_str(cache)]);
    command.args(["--model", path_str(&tiny_model()), "--copies", copies]);
    command.args(["--batch-size", "4", "--segment-samples", "8", "--threads", "1"]);
    command
}

/// Every sample of the cache reads back, and each (source, variant) is there once.
fn assert_whole(cache_path: &Path, expected: usize) -> TestResult {
    let cache = Cache::open(cache_path)?;
    assert_eq!(cache.len(), expected);
    for start in (0..cache.len()).step_by(16) {
        cache.read_block(start, 16.min(cache.len() - start))?;
    }
    let keys: HashSet<(String, i32)> =
        (0..cache.len()).map(|i| (cache.source_path(i).to_owned(), cache.variant[i])).collect();
    assert_eq!(keys.len(), expected);
    Ok(())
}

fn wait_for(condition: impl Fn() -> bool, what: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn signal(child: &Child, name: &str) -> TestResult {
    let mut kill = Command::new("kill");
    inherit_no_descriptors(&mut kill);
    let status = kill.args([name, &child.id().to_string()]).status()?;
    assert!(status.success(), "kill {name} failed");
    Ok(())
}

#[test]
fn a_second_writer_is_refused_naming_the_first_which_finishes_unharmed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b", "c"], 20)?;
    let cache = dir.path().join("c.h5");
    let mut first = extract_command(&data, &cache, "3").stderr(Stdio::null()).spawn()?;
    // Freeze the first writer mid-run, holding its lock, with segments written.
    let parts = dir.path().join("c.h5.parts");
    wait_for(|| std::fs::read_dir(&parts).is_ok_and(|d| d.count() >= 2), "segments")?;
    signal(&first, "-STOP")?;
    let second = extract_command(&data, &cache, "3").output()?;
    let message = stderr(&second);
    signal(&first, "-CONT")?;
    assert!(!second.status.success(), "{message}");
    assert!(message.contains("is being written by another incept process"), "{message}");
    assert!(message.contains(&format!("pid {}", first.id())), "{message}");
    assert!(message.contains("c.h5"), "{message}");
    assert!(first.wait()?.success());
    assert_whole(&cache, 3 * 20 * 4)?;
    // Once the first is done, the same command runs and finds nothing to do.
    let again = ok(extract_command(&data, &cache, "3").output()?);
    assert!(stderr(&again).contains(" 0 to extract"), "{}", stderr(&again));
    Ok(())
}

#[test]
fn two_extractions_started_together_leave_one_whole_cache() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 20)?;
    let cache = dir.path().join("c.h5");
    let first = extract_command(&data, &cache, "1").stderr(Stdio::piped()).spawn()?;
    std::thread::sleep(Duration::from_millis(200));
    let second = extract_command(&data, &cache, "1").stderr(Stdio::piped()).spawn()?;
    let outputs = [first.wait_with_output()?, second.wait_with_output()?];
    for output in &outputs {
        let message = stderr(output);
        // Each either did the work (or found it done) or was refused at once, naming the other.
        assert!(
            output.status.success() || message.contains("being written by another incept process"),
            "{message}"
        );
        assert!(!message.contains("errno") && !message.contains("panicked"), "{message}");
    }
    assert!(outputs.iter().any(|o| o.status.success()));
    assert_whole(&cache, 2 * 20 * 2)?;
    Ok(())
}

#[test]
fn a_reader_sees_the_old_cache_or_the_new_one_whole_while_a_writer_replaces_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["a", "b"], 16)?;
    let cache = dir.path().join("c.h5");
    ok(extract(&data, &cache, &["--copies", "1"])?);
    let (old, new) = (2 * 16 * 2, 2 * 16 * 4);
    // Grow the cache to 3 copies while reading it over and over.
    let mut writer = extract_command(&data, &cache, "3").stderr(Stdio::null()).spawn()?;
    let mut sizes = HashSet::new();
    let mut reads = 0;
    loop {
        let done = writer.try_wait()?.is_some();
        let seen = Cache::open(&cache)?;
        assert!(seen.len() == old || seen.len() == new, "{} samples", seen.len());
        for start in (0..seen.len()).step_by(32) {
            seen.read_block(start, 32.min(seen.len() - start))?;
        }
        sizes.insert(seen.len());
        reads += 1;
        if done {
            break;
        }
    }
    assert!(writer.wait()?.success());
    assert!(sizes.contains(&new), "{sizes:?}");
    assert!(reads >= 2, "no read while the writer ran");
    // A training run reads the cache while an extraction replaces it.
    let mut writer = extract_command(&data, &cache, "5").stderr(Stdio::null()).spawn()?;
    let config = small_config_with(dir.path(), 2, "")?;
    let trained = train(&cache, &dir.path().join("run"), &config, &[])?;
    assert!(writer.wait()?.success());
    assert!(trained.status.success(), "{}", stderr(&trained));
    eprintln!("{reads} whole reads while the writer ran");
    Ok(())
}
