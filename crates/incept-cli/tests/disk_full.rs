//! A full disk: `extract`, `merge` and `train-head` stop with one line naming the file and the
//! fix, keep what was committed, leave no temporary file behind, and the same command finishes
//! the work once there is space. The small disk is a tmpfs the test mounts (as root); where it
//! cannot be mounted, the test says so and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use incept_cache::Cache;

use crate::common::*;
use crate::sharding::{plan, shard_command};

/// A tmpfs of `kilobytes` at a new folder, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// `None` (with a message) where this process may not mount (not root, or in a container
    /// without the capability).
    fn mount(parent: &Path, kilobytes: u64) -> Option<SmallDisk> {
        let path = parent.join("small-disk");
        std::fs::create_dir_all(&path).ok()?;
        let size = format!("size={kilobytes}k");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs", path_str(&path)])
            .output()
            .is_ok_and(|output| output.status.success());
        if !mounted {
            eprintln!(
                "SKIPPED: a full disk needs a small tmpfs, and this process cannot mount one (run \
                 the tests as root to include it)"
            );
            return None;
        }
        Some(SmallDisk { path })
    }

    fn grow(&self, kilobytes: u64) -> TestResult {
        let size = format!("remount,size={kilobytes}k");
        let status = Command::new("mount").args(["-o", &size, path_str(&self.path)]).status()?;
        assert!(status.success());
        Ok(())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Every file under `root` whose name marks a temporary of incept's atomic writes.
fn temporaries(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(temporaries(&path)?);
        } else if path.file_name().is_some_and(|n| n.to_string_lossy().contains(".tmp-")) {
            found.push(path);
        }
    }
    Ok(found)
}

/// One error line, naming the disk-full condition, the file and the fix.
fn assert_disk_full_line(output: &std::process::Output, fix: &str) {
    assert!(!output.status.success());
    let message = stderr(output);
    let errors: Vec<&str> = message.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{message}");
    assert!(errors[0].contains("no space left on device writing"), "{message}");
    assert!(errors[0].contains(fix), "{message}");
    assert!(!message.contains("HDF5-DIAG") && !message.contains("errno"), "{message}");
}

#[test]
fn a_full_disk_stops_extract_and_merge_in_one_line_and_the_work_resumes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let Some(disk) = SmallDisk::mount(dir.path(), 48) else { return Ok(()) };
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee"], 6)?;
    let clean = dir.path().join("clean.h5");
    ok(extract(&data, &clean, &["--copies", "3"])?);

    let cache = disk.path.join("c.h5");
    let small = ["--copies", "3", "--segment-samples", "4", "--batch-size", "2"];
    let full = extract(&data, &cache, &small)?;
    assert_disk_full_line(&full, "samples kept");
    assert_eq!(temporaries(&disk.path)?, Vec::<PathBuf>::new());
    let kept = incept_cache::rows_on_disk(&cache);
    assert!(kept > 0 && kept < 48, "{kept} samples kept of 48");
    assert!(stderr(&full).contains(&format!("{kept} samples kept")), "{}", stderr(&full));

    disk.grow(4096)?;
    let resumed = ok(extract(&data, &cache, &small)?);
    assert!(stderr(&resumed).contains(&format!("{kept} samples cached or pending")));
    let (grown, reference) = (Cache::open(&cache)?, Cache::open(&clean)?);
    assert_eq!(grown.keys(), reference.keys());
    ok(run(&["verify", path_str(&cache)])?);

    // A merge into the small disk, full: nothing half-written stays, and it merges once there is
    // space.
    let plan_dir = dir.path().join("plan");
    ok(plan(&data, &plan_dir, 2, &["--copies", "3"])?);
    for shard in ["0", "1"] {
        ok(shard_command(&plan_dir, shard).output()?);
    }
    disk.grow(grown_size(&disk.path)? + 24)?;
    let copy = disk.path.join("copy.h5");
    let full = run(&["merge", path_str(&plan_dir), "-o", path_str(&copy), "--copy"])?;
    assert_disk_full_line(&full, "run the same command again");
    assert!(!copy.exists());
    assert_eq!(temporaries(&disk.path)?, Vec::<PathBuf>::new());
    disk.grow(8192)?;
    ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&copy), "--copy"])?);
    assert_eq!(Cache::open(&copy)?.len(), 48);
    Ok(())
}

/// Kilobytes used on the small disk.
fn grown_size(path: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let path = entry?.path();
        total +=
            if path.is_dir() { grown_size(&path)? * 1024 } else { std::fs::metadata(&path)?.len() };
    }
    Ok(total.div_ceil(1024))
}

#[test]
fn a_full_disk_stops_training_in_one_line_and_resume_finishes_the_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 4)?;
    let config = small_config_with(dir.path(), 3, "")?;
    let Some(disk) = SmallDisk::mount(dir.path(), 12) else { return Ok(()) };
    let run_dir = disk.path.join("run");
    let full = train(&cache, &run_dir, &config, &[])?;
    assert_disk_full_line(&full, "--resume");
    assert_eq!(temporaries(&disk.path)?, Vec::<PathBuf>::new());
    disk.grow(262_144)?;
    ok(train(&cache, &run_dir, &config, &["--resume"])?);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json"))?)?;
    assert_eq!(state["completed_epochs"], 3);
    ok(run(&["confusion", path_str(&run_dir)])?);
    Ok(())
}
