//! Integrity: bytes flipped in the pieces of caches made by `extract`, by a merge of shards (an
//! index) and by `merge --copy` are found by `incept verify`, refused by every reader with one
//! line naming the rows, and `verify --repair` makes maps equal to a clean extraction, bit for bit.

use std::path::{Path, PathBuf};

use incept_cache::{Cache, stored_chunk_extent};

use crate::common::*;
use crate::sharding::{plan, shard_command};

/// Flips one byte inside the stored chunk of each of `rows` of the piece at `piece`, at a place
/// drawn from `seed` (a damaged disk or network filesystem does this).
fn flip_in(piece: &Path, rows: &[usize], seed: u64) -> TestResult {
    let mut bytes = std::fs::read(piece)?;
    let length = bytes.len();
    for (k, &row) in rows.iter().enumerate() {
        let (offset, size) = stored_chunk_extent(piece, row)?;
        let draw = incept_core::stable_hash(&[&seed.to_le_bytes(), &k.to_le_bytes()]);
        let at = (offset + draw % size) as usize;
        bytes[at] ^= 1 << (draw % 8);
    }
    assert_eq!(bytes.len(), length);
    std::fs::write(piece, bytes)?;
    Ok(())
}

fn pieces_of(cache: &Path) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let cache = Cache::open(cache)?;
    Ok(cache.as_pieces().into_iter().map(|p| p.path).collect())
}

fn verify(cache: &Path, extra: &[&str]) -> std::io::Result<std::process::Output> {
    let model = tiny_model();
    let mut args = vec!["verify", path_str(cache)];
    if extra.contains(&"--repair") {
        args.extend_from_slice(&["--model", path_str(&model)]);
    }
    args.extend_from_slice(extra);
    run(&args)
}

/// The rows `incept verify` lists on stdout (first column), header left out.
fn listed_rows(output: &std::process::Output) -> Vec<usize> {
    stdout(output)
        .lines()
        .skip(1)
        .filter_map(|line| line.split('\t').next().and_then(|row| row.parse().ok()))
        .collect()
}

fn assert_same_maps(cache: &Path, clean: &Path) -> TestResult {
    let (cache, clean) = (Cache::open(cache)?, Cache::open(clean)?);
    assert_eq!(cache.keys(), clean.keys());
    assert_eq!(cache.len(), clean.len());
    for row in 0..cache.len() {
        // Rows may be in another order (a clean cache of its own), so match them by key.
        let other = (0..clean.len())
            .find(|&r| {
                clean.source_path(r) == cache.source_path(row)
                    && clean.variant[r] == cache.variant[row]
            })
            .ok_or("row not found")?;
        assert_eq!(cache.read_block(row, 1)?, clean.read_block(other, 1)?, "row {row}");
    }
    Ok(())
}

#[test]
fn flipped_bytes_in_an_extracted_cache_are_found_refused_and_repaired() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 4)?;
    let clean = dir.path().join("clean.h5");
    ok(extract(&data, &clean, &["--copies", "1", "--batch-size", "5"])?);
    let config = small_config_with(dir.path(), 1, "")?;
    let head = dir.path().join("head");
    ok(train(&clean, &head, &config, &[])?);
    let clean_verify = ok(verify(&cache, &[])?);
    assert_eq!(listed_rows(&clean_verify), Vec::<usize>::new());

    let piece = pieces_of(&cache)?.remove(0);
    let damaged = [2, 11, 19];
    flip_in(&piece, &damaged, 5)?;
    let found = verify(&cache, &[])?;
    assert_eq!(found.status.code(), Some(1), "{}", stderr(&found));
    assert_eq!(listed_rows(&found), damaged);
    assert!(stderr(&found).contains("--repair"), "{}", stderr(&found));

    // Every reader refuses, in one line naming the piece, the first rows and their photos.
    let cache_text = path_str(&cache).to_owned();
    let refusals = [
        train(&cache, &dir.path().join("refused"), &config, &[])?,
        run(&["confusion", path_str(&head), "--cache", &cache_text])?,
    ];
    let (photo, _, variant) = {
        let opened = Cache::open(&cache)?;
        let photo = opened.source_path(2).to_owned();
        (photo, (), opened.variant[2])
    };
    for refused in refusals {
        assert!(!refused.status.success());
        let message = stderr(&refused);
        let line = message.lines().find(|l| l.starts_with("error:")).ok_or("no error line")?;
        assert!(line.contains("damaged"), "{message}");
        assert!(line.contains(&format!("row 2: {photo} (variant {variant})")), "{message}");
        assert!(line.contains("incept verify") && line.contains("--repair"), "{message}");
    }

    let repaired = verify(&cache, &["--repair"])?;
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    assert!(!piece.exists(), "the damaged piece is replaced");
    assert_same_maps(&cache, &clean)?;
    ok(verify(&cache, &[])?);
    ok(train(&cache, &dir.path().join("after"), &config, &[])?);
    Ok(())
}

#[test]
fn a_photo_that_is_gone_is_reported_and_its_rows_dropped_only_when_asked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 3)?;
    let opened = Cache::open(&cache)?;
    let (photo, rows) = {
        let photo = opened.source_path(0).to_owned();
        let rows: Vec<usize> =
            (0..opened.len()).filter(|&r| opened.source_path(r) == photo).collect();
        (photo, rows)
    };
    let before = opened.len();
    drop(opened);
    flip_in(&pieces_of(&cache)?[0], &rows, 1)?;
    std::fs::remove_file(data.join(&photo))?;
    let untouched = std::fs::read(&cache)?;
    let refused = verify(&cache, &["--repair"])?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains(&photo), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--drop-missing"), "{}", stderr(&refused));
    assert_eq!(std::fs::read(&cache)?, untouched, "nothing changed");

    let dropped = verify(&cache, &["--repair", "--drop-missing"])?;
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    let after = Cache::open(&cache)?;
    assert_eq!(after.len(), before - rows.len());
    assert!((0..after.len()).all(|r| after.source_path(r) != photo));
    ok(verify(&cache, &[])?);
    Ok(())
}

#[test]
fn merged_indexes_and_copies_are_verified_and_repaired() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee"], 3)?;
    let plan_dir = dir.path().join("plan");
    ok(plan(&data, &plan_dir, 2, &[])?);
    for shard in ["0", "1"] {
        ok(shard_command(&plan_dir, shard).output()?);
    }
    let clean = dir.path().join("clean.h5");
    ok(extract(&data, &clean, &["--copies", "1", "--seed", "3"])?);
    let merged = dir.path().join("merged.h5");
    let copy = dir.path().join("copy.h5");
    ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&merged)])?);
    ok(run(&["merge", path_str(&plan_dir), "-o", path_str(&copy), "--copy"])?);

    // A shard's piece, damaged: the merged index sees it; its repair leaves the shard's file.
    let shard_piece = pieces_of(&merged)?.remove(1);
    let first_rows = Cache::open(&merged)?.as_pieces()[0].rows;
    flip_in(&shard_piece, &[1], 2)?;
    let found = verify(&merged, &[])?;
    assert_eq!(found.status.code(), Some(1));
    assert_eq!(listed_rows(&found), [first_rows + 1]);
    ok(verify(&merged, &["--repair"])?);
    assert!(shard_piece.exists(), "a shard's own piece is not the merged index's to delete");
    assert!(!pieces_of(&merged)?.contains(&shard_piece));
    assert_same_maps(&merged, &clean)?;

    // A copy is one file: found, refused, repaired in place.
    flip_in(&copy, &[0, 5], 3)?;
    let found = verify(&copy, &[])?;
    assert_eq!(listed_rows(&found), [0, 5]);
    ok(verify(&copy, &["--repair"])?);
    assert!(Cache::open(&copy)?.pieces().is_none(), "still one self-contained file");
    assert_same_maps(&copy, &clean)?;
    Ok(())
}

#[test]
fn a_repair_killed_at_any_moment_leaves_the_old_cache_or_the_repaired_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 6)?;
    let clean = dir.path().join("clean.h5");
    ok(extract(&data, &clean, &["--copies", "1"])?);
    let damaged = [3, 17, 30];
    flip_in(&pieces_of(&cache)?[0], &damaged, 9)?;
    let model = tiny_model();
    // Kills land anywhere from before the first row is made again to after the new index.
    for delay_ms in [0, 10, 25, 50, 100, 200, 400] {
        let mut child = incept()
            .args(["verify", path_str(&cache), "--repair", "--model", path_str(&model)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill()?;
        child.wait()?;
        let after = verify(&cache, &[])?;
        let listed = listed_rows(&after);
        assert!(
            listed == damaged || listed.is_empty(),
            "killed after {delay_ms} ms: {listed:?} listed\n{}",
            stderr(&after)
        );
        if listed.is_empty() {
            assert_same_maps(&cache, &clean)?;
            break;
        }
    }
    ok(verify(&cache, &["--repair"])?);
    assert_same_maps(&cache, &clean)?;
    Ok(())
}
