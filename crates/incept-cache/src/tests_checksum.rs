//! Checksums: damaged chunks refused by every read, found by `verify`, healed by `repair`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::checksum::chunk_is_whole;
use crate::tests::{SHAPE, sample, settings, tempdir};
use crate::*;

/// A cache of `n` rows in one piece (one segment), photo `p{i}.jpg` of class `a`/`b`.
fn cache_of(path: &Path, n: usize) -> Result<Vec<Sample>> {
    let samples: Vec<Sample> = (0..n)
        .map(|i| sample(&format!("p{i}.jpg"), if i % 2 == 0 { "a" } else { "b" }, 0, i as f32))
        .collect();
    let mut writer = CacheWriter::open(path, settings(Dtype::F32), false)?;
    writer.write_segment(&samples, SHAPE)?;
    writer.finish()?;
    Ok(samples)
}

/// Flips one byte in the middle of the stored chunk of `row` of the file at `piece`.
fn flip(piece: &Path, row: usize) -> Result<()> {
    let (offset, size) = stored_chunk_extent(piece, row)?;
    let mut bytes = std::fs::read(piece).map_err(io_error(piece))?;
    bytes[(offset + size / 2) as usize] ^= 0x40;
    std::fs::write(piece, bytes).map_err(io_error(piece))
}

fn piece_of(cache: &Path) -> Result<std::path::PathBuf> {
    Ok(Cache::open(cache)?.pieces().expect("an index")[0].path.clone())
}

#[test]
fn incept_computes_the_checksum_hdf5_stores() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    cache_of(&path, 3)?;
    let piece = piece_of(&path)?;
    let bytes = std::fs::read(&piece).map_err(io_error(&piece))?;
    for row in 0..3 {
        let (offset, size) = stored_chunk_extent(&piece, row)?;
        assert!(chunk_is_whole(&bytes[offset as usize..(offset + size) as usize]), "row {row}");
    }
    Ok(())
}

#[test]
fn a_flipped_byte_is_refused_by_reads_found_by_verify_and_repaired() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let samples = cache_of(&path, 5)?;
    let before = Cache::open(&path)?;
    let clean = before.read_block(0, 5)?;
    let content_id = before.content_id.clone();
    drop(before);
    assert!(verify(&path, &|_| {})?.is_clean());

    let piece = piece_of(&path)?;
    flip(&piece, 3)?;
    let cache = Cache::open(&path)?;
    match cache.read_block(0, 5) {
        Err(Error::Damaged { rows, cache: Some(named), photos, .. }) => {
            assert_eq!(rows, [3]);
            assert_eq!(named, path);
            assert_eq!(photos, ["p3.jpg (variant 0)"]);
        }
        other => panic!("expected the damage to be refused, got {other:?}"),
    }
    let message = cache.read_block(2, 2).map(drop).map_err(|e| e.to_string());
    let message = message.expect_err("row 3 is damaged");
    assert!(message.contains("row 3: p3.jpg (variant 0)"), "{message}");
    assert!(message.contains("--repair"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    // Rows around it still read.
    assert_eq!(cache.read_block(0, 3)?, clean.slice(ndarray::s![0..3, .., .., ..]));
    drop(cache);

    let report = verify(&path, &|_| {})?;
    assert!(!report.is_clean());
    assert_eq!(report.bad_rows(), [3]);
    assert!(report.pieces[0].checksummed);

    let maps: HashMap<usize, Vec<f32>> = [(3, samples[3].features.clone())].into();
    let summary = repair(&report, &maps, &HashSet::new())?;
    assert_eq!(summary.repaired, 1);
    assert_eq!(summary.removed, std::slice::from_ref(&piece));
    assert!(!piece.exists(), "the damaged piece is deleted once no index names it");
    let repaired = Cache::open(&path)?;
    assert_eq!(repaired.read_block(0, 5)?, clean);
    assert_eq!(repaired.content_id, content_id, "the same maps: the same content");
    assert_eq!(repaired.keys(), Cache::open(&path)?.keys());
    assert!(verify(&path, &|_| {})?.is_clean());
    Ok(())
}

#[test]
fn damaged_chunks_are_not_copied_into_a_merge_and_copies_keep_checksums() -> Result<()> {
    let dir = tempdir();
    let (one, two) = (dir.path().join("one.h5"), dir.path().join("two.h5"));
    cache_of(&one, 2)?;
    let mut writer = CacheWriter::open(&two, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("q.jpg", "a", 0, 9.0)], SHAPE)?;
    writer.finish()?;
    let copy = dir.path().join("copy.h5");
    copy_into_one_file(&copy, &[Cache::open(&one)?, Cache::open(&two)?])?;
    let report = verify(&copy, &|_| {})?;
    assert!(report.self_contained && report.pieces[0].checksummed && report.is_clean());

    flip(&piece_of(&one)?, 1)?;
    let refused = dir.path().join("refused.h5");
    let error = copy_into_one_file(&refused, &[Cache::open(&one)?, Cache::open(&two)?]);
    assert!(matches!(error, Err(Error::Damaged { ref rows, .. }) if rows == &[1]), "{error:?}");
    assert!(!refused.exists(), "nothing is left of a refused copy");

    // A damaged self-contained copy is repaired in place, staying one file.
    flip(&copy, 2)?;
    let report = verify(&copy, &|_| {})?;
    assert_eq!(report.bad_rows(), [2]);
    let map = sample("q.jpg", "a", 0, 9.0).features;
    repair(&report, &[(2, map)].into(), &HashSet::new())?;
    let repaired = Cache::open(&copy)?;
    assert!(repaired.pieces().is_none());
    assert_eq!(repaired.read_block(2, 1)?[[0, 0, 0, 0]], 9.0);
    Ok(())
}

#[test]
fn missing_pieces_and_stray_files_are_reported_and_rows_can_be_dropped() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    cache_of(&path, 4)?;
    let parts = dir.path().join("c.h5.parts");
    let stray = parts.join("segment-00000099.h5");
    std::fs::copy(piece_of(&path)?, &stray).map_err(io_error(&stray))?;
    let report = verify(&path, &|_| {})?;
    assert_eq!(report.stray, std::slice::from_ref(&stray), "an old segment no index names");
    assert!(report.bad_rows().is_empty() && !report.is_clean());

    std::fs::remove_file(piece_of(&path)?).map_err(io_error(&parts))?;
    let report = verify(&path, &|_| {})?;
    assert_eq!(report.pieces[0].problem.as_deref(), Some("missing"));
    assert_eq!(report.bad_rows(), [0, 1, 2, 3]);
    // Photos 1 and 3 are gone: dropped; 0 and 2 made again.
    let maps: HashMap<usize, Vec<f32>> =
        [0, 2].into_iter().map(|i| (i, sample("x", "a", 0, i as f32).features)).collect();
    let summary = repair(&report, &maps, &[1, 3].into())?;
    assert_eq!((summary.repaired, summary.dropped), (2, 2));
    assert!(!stray.exists());
    let cache = Cache::open(&path)?;
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.source_path(1), "p2.jpg");
    assert_eq!(cache.read_block(1, 1)?[[0, 0, 0, 0]], 2.0);
    assert!(verify(&path, &|_| {})?.is_clean());
    Ok(())
}

#[test]
fn pieces_without_checksums_still_read_and_verify_says_so() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    crate::checksum::WITHOUT_CHECKSUMS.with(|off| off.set(true));
    let old = cache_of(&path, 3);
    crate::checksum::WITHOUT_CHECKSUMS.with(|off| off.set(false));
    old?;
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("new.jpg", "a", 0, 7.0)], SHAPE)?;
    writer.finish()?;
    let report = verify(&path, &|_| {})?;
    let checksummed: Vec<bool> = report.pieces.iter().map(|p| p.checksummed).collect();
    assert_eq!(checksummed, [false, true]);
    assert_eq!(report.unchecked_rows(), 3);
    assert!(report.is_clean());
    assert_eq!(Cache::open(&path)?.read_block(3, 1)?[[0, 0, 0, 0]], 7.0);
    // A copy gives every row a checksum (the old piece's rows are decoded and encoded again).
    let copy = dir.path().join("copy.h5");
    copy_into_one_file(&copy, &[Cache::open(&path)?])?;
    let report = verify(&copy, &|_| {})?;
    assert_eq!((report.unchecked_rows(), report.pieces[0].checksummed), (0, true));
    assert_eq!(Cache::open(&copy)?.read_block(0, 4)?, Cache::open(&path)?.read_block(0, 4)?);
    Ok(())
}

#[test]
fn packed_segments_keep_their_checksums_and_a_damaged_one_is_not_packed() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.set_segment_samples(2);
    let samples: Vec<Sample> =
        (0..5).map(|i| sample(&format!("p{i}.jpg"), "a", 0, i as f32)).collect();
    writer.append(&samples, SHAPE)?;
    writer.finish()?;
    let report = verify(&path, &|_| {})?;
    assert_eq!(report.pieces.len(), 1, "three segments packed into one piece");
    assert!(report.pieces[0].checksummed && report.is_clean());

    // A pending segment damaged before the finish that would pack it: refused, nothing replaced.
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("q0.jpg", "a", 0, 7.0)], SHAPE)?;
    writer.write_segment(&[sample("q1.jpg", "a", 0, 8.0)], SHAPE)?;
    let pending = dir.path().join("c.h5.parts").join("segment-00000004.h5");
    flip(&pending, 0)?;
    let refused = writer.finish();
    assert!(matches!(refused, Err(Error::Damaged { .. })), "{refused:?}");
    assert_eq!(Cache::open(&path)?.len(), 5, "the cache is as it was");
    // verify calls it stray (not pending work), and --repair deletes it.
    let report = verify(&path, &|_| {})?;
    assert_eq!(report.stray, std::slice::from_ref(&pending));
    assert_eq!(report.pending.len(), 1);
    repair(&report, &HashMap::new(), &HashSet::new())?;
    assert!(!pending.exists());
    Ok(())
}

/// Rewrites row `row`'s label in the cache file at `path` (a flip no checksum of the maps sees).
fn relabel(path: &Path, row: usize) -> Result<()> {
    let file = hdf5::File::open_rw(path).at(path)?;
    let dataset = file.dataset(LABELS).at(path)?;
    let mut labels: Vec<i32> = dataset.read_raw().at(path)?;
    labels[row] = 1 - labels[row];
    dataset.write_raw(&labels).at(path)
}

#[test]
fn damaged_columns_are_refused_and_an_index_rebuilds_them_from_its_pieces() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    cache_of(&path, 4)?;
    let labels = Cache::open(&path)?.labels.clone();
    relabel(&path, 2)?;
    assert!(matches!(Cache::open(&path), Err(Error::ColumnsDamaged { .. })));
    let report = verify(&path, &|_| {})?;
    assert!(report.columns_damaged && !report.is_clean() && report.bad_rows().is_empty());
    repair(&report, &HashMap::new(), &HashSet::new())?;
    assert_eq!(Cache::open(&path)?.labels, labels);
    assert!(verify(&path, &|_| {})?.is_clean());

    // A self-contained file has no other record: refused, by open and by verify.
    let copy = dir.path().join("copy.h5");
    copy_into_one_file(&copy, &[Cache::open(&path)?])?;
    relabel(&copy, 0)?;
    assert!(matches!(Cache::open(&copy), Err(Error::ColumnsDamaged { .. })));
    let report = verify(&copy, &|_| {})?;
    assert_eq!(report.bad_rows().len(), 4, "every row is reported");
    let refused = repair(&report, &HashMap::new(), &HashSet::new()).map_err(|e| e.to_string());
    assert!(refused.expect_err("no record to rebuild from").contains("make it again"));
    Ok(())
}
