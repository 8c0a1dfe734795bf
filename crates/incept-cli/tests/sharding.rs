//! Sharded extraction: `incept plan`, `extract --plan --shard`, `status`, `merge`. The merged
//! cache equals a plain `incept extract` whatever the shard count; shards are idempotent,
//! resumable and safe to start twice; errors a retry cannot fix exit with status 2.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;
use incept_cache::Cache;

/// `incept plan` of `data` into `plan` with the tiny model.
pub(crate) fn plan(
    data: &Path,
    plan: &Path,
    shards: usize,
    extra: &[&str],
) -> std::io::Result<Output> {
    let model = tiny_model();
    let shards = shards.to_string();
    let mut args = vec!["plan", path_str(data), "-o", path_str(plan), "--shards", &shards];
    args.extend_from_slice(&["--model", path_str(&model)]);
    // Defaults unless `extra` names them.
    for (flag, value) in [("--copies", "1"), ("--seed", "3")] {
        if !extra.contains(&flag) {
            args.extend_from_slice(&[flag, value]);
        }
    }
    args.extend_from_slice(extra);
    run(&args)
}

/// `incept extract --plan PLAN --shard SHARD` on one thread with small segments.
pub(crate) fn shard_command(plan: &Path, shard: &str) -> Command {
    let mut command = incept();
    command.args(["extract", "--plan", path_str(plan), "--shard", shard]);
    command.args(["--batch-size", "4", "--segment-samples", "8", "--threads", "1"]);
    for name in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"] {
        command.env_remove(name);
    }
    command
}

/// (class name, source, variant) of every row, in order, and the row of each (source, variant).
fn rows(cache: &Cache) -> Vec<(String, String, i32)> {
    (0..cache.len())
        .map(|i| {
            let class = cache.classes[cache.labels[i] as usize].clone();
            (class, cache.source_path(i).to_owned(), cache.variant[i])
        })
        .collect()
}

/// Same rows (class, source, variant) in the same order, and bit-identical feature maps.
fn assert_identical(cache: &Cache, reference: &Cache) -> TestResult {
    assert_eq!(
        rows(cache),
        rows(reference),
        "{} vs {}",
        cache.path.display(),
        reference.path.display()
    );
    assert_eq!(cache.settings, reference.settings);
    assert_eq!(cache.read_block(0, cache.len())?, reference.read_block(0, reference.len())?);
    Ok(())
}

fn exit_code(output: &Output) -> Option<i32> {
    output.status.code()
}

#[test]
fn any_shard_count_merges_into_the_cache_plain_extraction_makes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 7)?;
    let plain = dir.path().join("plain.h5");
    ok(extract(&data, &plain, &["--copies", "1", "--seed", "3", "--threads", "1"])?);
    let plain = Cache::open(&plain)?;

    for shards in [1, 7] {
        let plan_dir = dir.path().join(format!("plan{shards}"));
        let made = ok(plan(&data, &plan_dir, shards, &[])?);
        assert!(stderr(&made).contains(&format!("{shards} shards")), "{}", stderr(&made));
        let status = ok(run(&["status", path_str(&plan_dir)])?);
        let expected_missing = if shards == 1 { "missing: 0" } else { "missing: 0-6" };
        assert!(stdout(&status).contains(expected_missing), "{}", stdout(&status));
        for index in 0..shards {
            // Each engine's variable (and an offset) reaches the same shard.
            let mut command = shard_command(&plan_dir, "auto");
            match index % 3 {
                0 => command.env("SLURM_ARRAY_TASK_ID", index.to_string()),
                1 => command
                    .env("JOB_COMPLETION_INDEX", (index - 1).to_string())
                    .args(["--shard-offset", "1"]),
                _ => command.env("AWS_BATCH_JOB_ARRAY_INDEX", index.to_string()),
            };
            ok(command.output()?);
        }
        let status = ok(run(&["status", path_str(&plan_dir), "--format", "json"])?);
        let json: serde_json::Value = serde_json::from_str(&stdout(&status))?;
        assert_eq!(
            (json["done"].as_u64(), json["missing_array"].as_str()),
            (Some(shards as u64), Some(""))
        );
        assert_eq!(json["rows"].as_u64(), Some(plain.len() as u64));

        let merged = plan_dir.join("merged.h5");
        ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&merged)])?);
        let merged = Cache::open(&merged)?;
        assert!(merged.pieces().is_some());
        assert_identical(&merged, &plain)?;
        let copy = dir.path().join(format!("copy{shards}.h5"));
        ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&copy), "--copy"])?);
        let copy = Cache::open(&copy)?;
        assert!(copy.pieces().is_none());
        assert_identical(&copy, &plain)?;
    }

    // The plan folder moves as a whole: the merged index inside it still reads.
    let moved = dir.path().join("moved");
    std::fs::rename(dir.path().join("plan7"), &moved)?;
    assert_identical(&Cache::open(&moved.join("merged.h5"))?, &plain)?;
    Ok(())
}

#[test]
fn a_finished_shard_is_left_alone_and_a_changed_plan_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee"], 3)?;
    let plan_dir = dir.path().join("plan");
    ok(plan(&data, &plan_dir, 2, &[])?);
    let again = ok(plan(&data, &plan_dir, 2, &[])?);
    assert!(stderr(&again).contains("already planned"), "{}", stderr(&again));
    let changed = plan(&data, &plan_dir, 2, &["--copies", "2"])?;
    assert_eq!(exit_code(&changed), Some(2), "{}", stderr(&changed));
    assert!(
        stderr(&changed).contains("copies: plan has 1, this run wants 2"),
        "{}",
        stderr(&changed)
    );

    ok(shard_command(&plan_dir, "1").output()?);
    let marker = plan_dir.join("shards/shard-00001-of-00002.done.json");
    let snapshot = |path: &Path| -> std::io::Result<Vec<(String, std::time::SystemTime)>> {
        let mut files = Vec::new();
        for entry in walk(path)? {
            files.push((entry.display().to_string(), std::fs::metadata(&entry)?.modified()?));
        }
        files.sort();
        Ok(files)
    };
    let before = snapshot(&plan_dir.join("shards"))?;
    let rerun = ok(shard_command(&plan_dir, "1").output()?);
    assert!(stderr(&rerun).contains("already done"), "{}", stderr(&rerun));
    assert_eq!(snapshot(&plan_dir.join("shards"))?, before);
    let marker_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&marker)?)?;
    assert_eq!(marker_json["rows"].as_u64(), Some(6));
    Ok(())
}

/// Every file under `root`, recursively.
fn walk(root: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(walk(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

#[test]
fn errors_a_retry_cannot_fix_exit_2_and_name_the_fix() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 3)?;
    let plan_dir = dir.path().join("plan");
    ok(plan(&data, &plan_dir, 7, &[])?);
    let permanent = |output: Output, expected: &str| {
        let message = stderr(&output);
        assert_eq!(exit_code(&output), Some(2), "{message}");
        assert!(message.contains(expected), "wanted {expected:?} in {message}");
        assert!(!message.contains("panicked"), "{message}");
    };
    permanent(shard_command(&plan_dir, "7").output()?, "shard 7 is out of range");
    permanent(shard_command(&plan_dir, "auto").output()?, "SLURM_ARRAY_TASK_ID");
    let nowhere = dir.path().join("nowhere");
    permanent(shard_command(&nowhere, "0").output()?, "incept plan DATA_DIR");
    permanent(run(&["merge", path_str(&plan_dir), "-o", "x.h5"])?, "run shards 0-6");
    let too_many = plan(&data, &dir.path().join("p2"), 10, &[])?;
    assert_eq!(exit_code(&too_many), Some(2), "{}", stderr(&too_many));

    // A marker from another plan in this plan's folder.
    for index in [0, 2, 3, 4, 5, 6] {
        ok(shard_command(&plan_dir, &index.to_string()).output()?);
    }
    let other = dir.path().join("other");
    ok(plan(&data, &other, 7, &["--seed", "4"])?);
    ok(shard_command(&other, "1").output()?);
    let marker = "shards/shard-00001-of-00007.done.json";
    std::fs::copy(other.join(marker), plan_dir.join(marker))?;
    permanent(shard_command(&plan_dir, "1").output()?, "written for plan");
    let status = ok(run(&["status", path_str(&plan_dir)])?);
    assert!(
        stdout(&status).contains("problem:") && stdout(&status).contains("missing: 1"),
        "{}",
        stdout(&status)
    );
    std::fs::remove_file(plan_dir.join(marker))?;
    // A marker whose shard file is gone.
    ok(shard_command(&plan_dir, "1").output()?);
    let shard_file = plan_dir.join("shards/shard-00003-of-00007.h5");
    std::fs::rename(&shard_file, dir.path().join("aside.h5"))?;
    permanent(run(&["merge", path_str(&plan_dir), "-o", "x.h5"])?, "remove the marker");
    std::fs::rename(dir.path().join("aside.h5"), &shard_file)?;
    let merged = dir.path().join("merged.h5");
    ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&merged)])?);
    assert_eq!(Cache::open(&merged)?.len(), 3 * 3 * 2);
    // Merging over a cache that `incept extract` made would orphan its pieces: refused.
    let extracted = dir.path().join("extracted.h5");
    ok(extract(&data, &extracted, &["--copies", "1"])?);
    permanent(run(&["merge", path_str(&plan_dir), "-o", path_str(&extracted)])?, "orphan");
    assert_eq!(Cache::open(&extracted)?.len(), 3 * 3 * 2);

    // A photo deleted after planning is skipped and counted; its shard still finishes.
    let plan_deleted = dir.path().join("plan-deleted");
    ok(plan(&data, &plan_deleted, 1, &[])?);
    std::fs::remove_file(data.join("bee/img001.png"))?;
    let output = ok(shard_command(&plan_deleted, "0").output()?);
    assert!(stderr(&output).contains("img001.png"), "{}", stderr(&output));
    let marker: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        plan_deleted.join("shards/shard-00000-of-00001.done.json"),
    )?)?;
    assert_eq!((marker["rows"].as_u64(), marker["skipped"].as_u64()), (Some(16), Some(1)));
    Ok(())
}

#[test]
fn a_killed_shard_resumes_and_two_processes_on_one_index_leave_one_shard() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 30)?;
    let plain = dir.path().join("plain.h5");
    ok(extract(&data, &plain, &["--copies", "3", "--seed", "3", "--threads", "1"])?);
    let plain = Cache::open(&plain)?;
    let plan_dir = dir.path().join("plan");
    ok(plan(&data, &plan_dir, 2, &["--copies", "3"])?);

    // Shard 0: killed with SIGKILL once some segments are on disk, then run again.
    let parts = plan_dir.join("shards/shard-00000-of-00002.h5.parts");
    let mut child =
        shard_command(&plan_dir, "0").stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline && child.try_wait()?.is_none() {
        if std::fs::read_dir(&parts).map(|d| d.count()).unwrap_or(0) >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill()?;
    child.wait()?;
    let status = ok(run(&["status", path_str(&plan_dir), "--format", "json"])?);
    let json: serde_json::Value = serde_json::from_str(&stdout(&status))?;
    assert_eq!(json["states"][0].as_str(), Some("partial"), "{json}");
    assert_eq!(json["missing_array"].as_str(), Some("0-1"));
    ok(shard_command(&plan_dir, "0").output()?);

    // Shard 1: two processes at once (a duplicate pod); both succeed, one shard, one marker.
    let first =
        shard_command(&plan_dir, "1").stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let second =
        shard_command(&plan_dir, "1").stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let outputs = [first.wait_with_output()?, second.wait_with_output()?];
    for output in &outputs {
        assert!(output.status.success(), "{}", stderr(output));
    }
    let said: Vec<String> = outputs.iter().map(stderr).collect();
    assert!(said.iter().any(|s| s.contains("already done")), "{said:?}");
    let markers = walk(&plan_dir.join("shards"))?
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".done.json"))
        .count();
    assert_eq!(markers, 2);

    let merged = dir.path().join("merged.h5");
    ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&merged)])?);
    let merged = Cache::open(&merged)?;
    // Nothing lost or duplicated: the same rows as a plain extraction, maps identical.
    let by_key: HashMap<(String, i32), usize> =
        rows(&plain).into_iter().enumerate().map(|(i, (_, s, v))| ((s, v), i)).collect();
    assert_eq!(merged.len(), plain.len());
    for (i, (_, source, variant)) in rows(&merged).into_iter().enumerate() {
        let j = by_key[&(source, variant)];
        assert_eq!(merged.read_block(i, 1)?, plain.read_block(j, 1)?);
    }
    Ok(())
}

#[test]
fn h5py_reads_a_merged_index_and_a_grown_cache_like_any_cache() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee"], 4)?;
    let plan_dir = dir.path().join("plan");
    ok(plan(&data, &plan_dir, 3, &[])?);
    for index in 0..3 {
        ok(shard_command(&plan_dir, &index.to_string()).output()?);
    }
    // The merged index outside the plan folder: its pieces are named by relative paths (`../`).
    let merged = dir.path().join("features/merged.h5");
    ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&merged)])?);
    // A cache grown twice: two pieces.
    let grown = dir.path().join("grown.h5");
    ok(extract(&data, &grown, &["--copies", "1"])?);
    std::fs::create_dir_all(dir.path().join("more/ant"))?;
    std::fs::copy(data.join("ant/img000.png"), dir.path().join("more/ant/new.png"))?;
    ok(extract(&dir.path().join("more"), &grown, &["--copies", "1"])?);
    let script = "import sys, hashlib, h5py, numpy\n\
        with h5py.File(sys.argv[1], 'r') as f:\n\
        \x20   maps = f['features'][...]\n\
        \x20   classes = [c.decode() if isinstance(c, bytes) else c for c in f['classes'][...]]\n\
        \x20   labels = f['labels'][...]\n\
        \x20   print(maps.shape[0], hashlib.sha256(maps.astype('<f4').tobytes()).hexdigest(), ' '.join(classes[l] for l in labels))\n";
    for path in [&merged, &grown] {
        let cache = Cache::open(path)?;
        assert!(cache.pieces().is_some_and(|p| p.len() > 1), "{}", path.display());
        // From another working directory, as a user's notebook would.
        let output = Command::new("python3")
            .env("PYTHONPATH", incept_core::project_root().join(".deps/python"))
            .current_dir(std::env::temp_dir())
            .args(["-c", script, path_str(path)])
            .output()?;
        assert!(output.status.success(), "h5py (installed by `just setup`): {}", stderr(&output));
        let raw = dir.path().join("maps.raw");
        let block = cache.read_block(0, cache.len())?;
        let bytes: Vec<u8> = block.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&raw, bytes)?;
        let labels: Vec<&str> =
            cache.labels.iter().map(|&l| cache.classes[l as usize].as_str()).collect();
        let expected =
            format!("{} {} {}\n", cache.len(), incept_core::sha256_file(&raw)?, labels.join(" "));
        assert_eq!(stdout(&output), expected, "{}", path.display());
    }
    Ok(())
}
