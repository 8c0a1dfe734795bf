//! The SHA-256 that `run.json` records for each checkpoint file: a byte flipped inside
//! `best.bpk`, `last.bpk` or `optimizer.bin` (the length kept, so that only the checksum tells)
//! is refused by every command that reads the file, with one line naming it, and the folder is
//! left as it was; a run folder of an earlier version, without checksums, is read as it is.

use std::path::{Path, PathBuf};

use super::{assert_one_line_error, copy_run, snapshot};
use crate::common::*;

/// What the refusal of a damaged checkpoint file says to do.
const FIX: &str = "restore it from a backup";

/// Flips the lowest bit of the byte in the middle of `path`: a same-length change that a
/// burnpack reader cannot tell from real weights.
fn flip_middle_byte(path: &Path) -> std::io::Result<()> {
    let mut bytes = std::fs::read(path)?;
    let middle = bytes.len() / 2;
    if let Some(byte) = bytes.get_mut(middle) {
        *byte ^= 1;
    }
    std::fs::write(path, bytes)
}

/// A finished two-epoch run, with its data folder and cache.
fn trained_run(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let (data, cache) = tiny_cache(dir, 5)?;
    let config = small_config_with(dir, 2, "")?;
    let good = dir.join("good");
    ok(train(&cache, &good, &config, &[])?);
    Ok((data, cache, good))
}

#[test]
fn a_flipped_byte_in_a_checkpoint_file_is_refused_by_its_readers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache, good) = trained_run(dir.path())?;
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.join("run.json"))?)?;
    for name in ["best.bpk", "last.bpk", "optimizer.bin"] {
        let recorded = state["sha256"][name].as_str().unwrap_or_default();
        assert_eq!(recorded, incept_core::sha256_file(&good.join(name))?, "{name}");
    }

    // best.bpk: every command that loads the head refuses it.
    let damaged = dir.path().join("damaged-best");
    copy_run(&good, &damaged)?;
    flip_middle_byte(&damaged.join("best.bpk"))?;
    let before = snapshot(&damaged)?;
    let outside = dir.path().join("out");
    std::fs::create_dir_all(&outside)?;
    let (onnx, page) = (outside.join("classifier.onnx"), outside.join("report.html"));
    let photo = data.join("bee/img004.png");
    let model = tiny_model();
    let commands: [(&str, Vec<&str>); 5] = [
        (
            "predict",
            vec!["predict", path_str(&damaged), path_str(&photo), "--model", path_str(&model)],
        ),
        (
            "export",
            vec!["export", path_str(&damaged), "-o", path_str(&onnx), "--model", path_str(&model)],
        ),
        (
            "report --cache",
            vec![
                "report",
                path_str(&damaged),
                "-o",
                path_str(&page),
                "--photos",
                path_str(&data),
                "--cache",
                path_str(&cache),
            ],
        ),
        ("confusion --cache", vec!["confusion", path_str(&damaged), "--cache", path_str(&cache)]),
        // Resuming would finish a run whose best weights are unusable: refused before training.
        (
            "train-head --resume",
            vec!["train-head", path_str(&cache), "--run-dir", path_str(&damaged), "--resume"],
        ),
    ];
    for (what, args) in commands {
        let output = run(&args)?;
        eprintln!("{what}: {}", stderr(&output).trim());
        assert_one_line_error(&output, "best.bpk", FIX);
        assert!(stderr(&output).contains("SHA-256"), "{what}: {}", stderr(&output));
        assert_eq!(snapshot(&damaged)?, before, "{what}: the folder changed");
    }
    assert!(!onnx.exists() && !page.exists(), "a refused command wrote its output");

    // last.bpk and optimizer.bin: --resume refuses, and says there is no earlier epoch.
    for name in ["last.bpk", "optimizer.bin"] {
        let damaged = dir.path().join(format!("damaged-{name}"));
        copy_run(&good, &damaged)?;
        flip_middle_byte(&damaged.join(name))?;
        let before = snapshot(&damaged)?;
        let output =
            run(&["train-head", path_str(&cache), "--run-dir", path_str(&damaged), "--resume"])?;
        eprintln!("{name}: {}", stderr(&output).trim());
        assert_one_line_error(&output, name, FIX);
        assert!(stderr(&output).contains("no earlier epoch"), "{name}: {}", stderr(&output));
        assert_eq!(snapshot(&damaged)?, before, "{name}: the folder changed");
        // The best weights are whole: the head still predicts.
        ok(run(&["predict", path_str(&damaged), path_str(&photo), "--model", path_str(&model)])?);
    }
    Ok(())
}

#[test]
fn a_run_folder_without_checksums_is_read_as_it_is() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache, good) = trained_run(dir.path())?;
    // A run.json of an earlier version: no `sha256` field.
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.join("run.json"))?)?;
    let removed = state.as_object_mut().and_then(|fields| fields.remove("sha256"));
    assert!(removed.is_some(), "run.json records no sha256");
    std::fs::write(good.join("run.json"), serde_json::to_string_pretty(&state)?)?;
    // Its files are read as they are, a flipped byte included (nothing tells it).
    flip_middle_byte(&good.join("best.bpk"))?;
    let photo = data.join("bee/img004.png");
    let output = ok(run(&[
        "predict",
        path_str(&good),
        path_str(&photo),
        "--model",
        path_str(&tiny_model()),
    ])?);
    assert_eq!(stdout(&output).lines().count(), 1, "{}", stdout(&output));
    // Resumed, it trains on and records the checksums of the files it writes from then on.
    ok(run(&[
        "train-head",
        path_str(&cache),
        "--run-dir",
        path_str(&good),
        "--resume",
        "--epochs",
        "3",
    ])?);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(good.join("run.json"))?)?;
    for name in ["last.bpk", "optimizer.bin"] {
        let recorded = state["sha256"][name].as_str().unwrap_or_default();
        assert_eq!(recorded, incept_core::sha256_file(&good.join(name))?, "{name}");
    }
    Ok(())
}
