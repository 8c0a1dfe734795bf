//! Damaged run folders and bad configuration files: refused with one line naming the file and
//! the fix, and the folder left as it was.

use std::path::{Path, PathBuf};

use super::{assert_one_line_error, copy_run, snapshot};
use crate::common::*;

/// A finished two-epoch run to damage, and the command that resumes it.
fn damaged_run_fixture(
    dir: &Path,
) -> Result<(PathBuf, PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let (_, cache) = tiny_cache(dir, 5)?;
    let config = small_config_with(dir, 2, "")?;
    let good = dir.join("good");
    ok(train(&cache, &good, &config, &[])?);
    Ok((cache, config, good))
}

#[test]
fn damaged_run_folders_are_refused_naming_the_file_and_left_as_they_were() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (cache, config, good) = damaged_run_fixture(dir.path())?;
    let other_head = dir.path().join("other-head");
    let wide = small_config_with(dir.path(), 1, "ensemble = 2\n")?;
    ok(train(&cache, &other_head, &wide, &[])?);

    type Damage = Box<dyn Fn(&Path) -> std::io::Result<()>>;
    let truncate = |name: &'static str| -> Damage {
        Box::new(move |run: &Path| {
            let bytes = std::fs::read(run.join(name))?;
            std::fs::write(run.join(name), &bytes[..bytes.len() / 2])
        })
    };
    let remove = |name: &'static str| -> Damage {
        Box::new(move |run: &Path| std::fs::remove_file(run.join(name)))
    };
    let edit = |name: &'static str, from: &'static str, to: &'static str| -> Damage {
        Box::new(move |run: &Path| {
            let text = std::fs::read_to_string(run.join(name))?;
            assert!(text.contains(from), "{name} has no {from:?}");
            std::fs::write(run.join(name), text.replace(from, to))
        })
    };
    let foreign = |name: &'static str, from: PathBuf| -> Damage {
        Box::new(move |run: &Path| std::fs::copy(from.join(name), run.join(name)).map(|_| ()))
    };
    let cases: Vec<(&str, Damage, &str, &str)> = vec![
        ("run.json missing", remove("run.json"), "run.json", "train"),
        ("run.json truncated", truncate("run.json"), "run.json", "restore"),
        ("config.toml missing", remove("config.toml"), "config.toml", "--run-dir"),
        ("config.toml truncated", truncate("config.toml"), "config.toml", "restore"),
        (
            "config.toml with a value out of range",
            edit("config.toml", "epochs = 2", "epochs = 0"),
            "config.toml",
            "restore",
        ),
        (
            "config.toml of another head",
            foreign("config.toml", other_head.clone()),
            "config.toml",
            "restore",
        ),
        ("last.bpk missing", remove("last.bpk"), "last.bpk", "restore"),
        ("last.bpk truncated", truncate("last.bpk"), "last.bpk", "damaged"),
        (
            "last.bpk of another head",
            foreign("last.bpk", other_head.clone()),
            "last.bpk",
            "do not fit",
        ),
        ("optimizer.bin missing", remove("optimizer.bin"), "optimizer.bin", "restore"),
        ("optimizer.bin truncated", truncate("optimizer.bin"), "optimizer.bin", "damaged"),
    ];
    for (index, (what, damage, file, fix)) in cases.into_iter().enumerate() {
        let run_dir = dir.path().join(format!("damaged-{index}"));
        copy_run(&good, &run_dir)?;
        damage(&run_dir)?;
        let before = snapshot(&run_dir)?;
        let output =
            run(&["train-head", path_str(&cache), "--run-dir", path_str(&run_dir), "--resume"])?;
        eprintln!("{what}: {}", stderr(&output).trim());
        assert_one_line_error(&output, file, fix);
        assert_eq!(snapshot(&run_dir)?, before, "{what}: the folder changed");
    }
    // Commands that only load a trained head check its config.toml as resume does.
    let edited = dir.path().join("edited");
    copy_run(&good, &edited)?;
    edit("config.toml", "epochs = 2", "epochs = 0")(&edited)?;
    let before = snapshot(&edited)?;
    let output = run(&["confusion", path_str(&edited), "--cache", path_str(&cache)])?;
    assert_one_line_error(&output, "config.toml", "restore");
    assert!(stderr(&output).contains("epochs must be at least 1"), "{}", stderr(&output));
    assert_eq!(snapshot(&edited)?, before, "confusion changed the run folder");
    // `runs` lists a run whose config.toml is damaged, marked, with the reason.
    let runs_dir = dir.path().join("listing");
    copy_run(&good, &runs_dir.join("fine"))?;
    copy_run(&good, &runs_dir.join("broken"))?;
    std::fs::write(runs_dir.join("broken/config.toml"), "epochs = \"many\"\n")?;
    let listing = ok(run(&["runs", path_str(&runs_dir)])?);
    assert!(stdout(&listing).contains("broken!"), "{}", stdout(&listing));
    assert!(stdout(&listing).contains("fine"), "{}", stdout(&listing));
    assert!(stderr(&listing).contains("broken: cannot be read whole"), "{}", stderr(&listing));
    assert!(stderr(&listing).contains("config.toml"), "{}", stderr(&listing));
    let _ = config;
    Ok(())
}

#[test]
fn bad_config_files_and_a_replaced_cache_are_refused_with_one_line() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache, good) = {
        let (cache, _, good) = damaged_run_fixture(dir.path())?;
        (dir.path().join("data"), cache, good)
    };
    for (what, text, fix) in [
        ("unknown key", "epochz = 3\n", "expected one of"),
        ("wrong type", "epochs = \"three\"\n", "invalid type"),
        ("negative learning rate", "learning_rate = -0.1\n", "positive"),
        ("zero epochs", "epochs = 0\n", "at least 1"),
    ] {
        let path = dir.path().join(format!("bad-{}.toml", what.replace(' ', "-")));
        std::fs::write(&path, text)?;
        let run_dir = dir.path().join(format!("never-{}", what.replace(' ', "-")));
        let output = train(&cache, &run_dir, &path, &[])?;
        assert_one_line_error(
            &output,
            path.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
            fix,
        );
        assert!(!run_dir.exists(), "{what}: a run folder was created");
    }
    // The cache is replaced (re-extracted with another seed) between training and --resume.
    let before = snapshot(&good)?;
    ok(extract(&data, &cache, &["--copies", "1", "--seed", "9", "--overwrite"])?);
    let output = run(&["train-head", path_str(&cache), "--run-dir", path_str(&good), "--resume"])?;
    assert_one_line_error(&output, "c.h5", "another --run-dir");
    assert!(stderr(&output).contains("changed since the run started"), "{}", stderr(&output));
    assert_eq!(snapshot(&good)?, before);
    // So is another cache file.
    let elsewhere = dir.path().join("other.h5");
    std::fs::copy(&cache, &elsewhere)?;
    let output =
        run(&["train-head", path_str(&elsewhere), "--run-dir", path_str(&good), "--resume"])?;
    assert_one_line_error(&output, "other.h5", "trained on");
    assert_eq!(snapshot(&good)?, before);
    Ok(())
}
