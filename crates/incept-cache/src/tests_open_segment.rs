//! Segments filled batch by batch ([`CacheWriter::append`]).

use super::*;
use crate::tests::{SHAPE, sample, settings, tempdir};

/// The names in the cache's pieces folder, hidden temporaries included.
fn parts(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(with_suffix(path, PARTS_SUFFIX))
        .map(|entries| {
            entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn batches_fill_segments_of_the_set_size_across_batch_boundaries() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.set_segment_samples(2);
    let photos: Vec<Sample> =
        (0..5).map(|i| sample(&format!("a/{i}.jpg"), "a", 0, i as f32 * 10.0)).collect();
    writer.append(&photos[..3], SHAPE)?;
    // One segment of 2 committed; the third sample is in the open (temporary) segment.
    assert_eq!(parts(&path).iter().filter(|n| !n.starts_with('.')).count(), 1);
    assert!(writer.is_done("a/1.jpg", 0));
    assert!(!writer.is_done("a/2.jpg", 0), "a sample counts once its segment is committed");
    writer.append(&photos[3..], SHAPE)?;
    assert_eq!(writer.finish()?, MergeSummary { total: 5, added: 5 });

    let cache = Cache::open(&path)?;
    let block = cache.read_block(0, 5)?;
    for (row, expected) in photos.iter().enumerate() {
        assert_eq!(cache.source_path(row), expected.source);
        assert_eq!(
            block.slice(ndarray::s![row, .., .., ..]).iter().copied().collect::<Vec<_>>(),
            expected.features
        );
    }
    assert!(parts(&path).iter().all(|name| !name.starts_with('.')), "{:?}", parts(&path));
    Ok(())
}

#[test]
fn a_writer_dropped_with_an_open_segment_leaves_only_committed_segments() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F16), false)?;
    writer.set_segment_samples(3);
    writer.append(
        &[
            sample("a/1.jpg", "a", 0, 1.0),
            sample("a/2.jpg", "a", 0, 2.0),
            sample("a/3.jpg", "a", 0, 3.0),
        ],
        SHAPE,
    )?;
    writer.append(&[sample("a/4.jpg", "a", 0, 4.0)], SHAPE)?;
    // A run stopped by an error before its last commit: the open segment's file goes.
    drop(writer);
    assert_eq!(parts(&path), ["segment-00000000.h5"]);

    let mut writer = CacheWriter::open(&path, settings(Dtype::F16), false)?;
    assert_eq!(writer.done_count(), 3);
    assert!(!writer.is_done("a/4.jpg", 0));
    writer.append(&[sample("a/4.jpg", "a", 0, 4.0)], SHAPE)?;
    assert_eq!(writer.finish()?, MergeSummary { total: 4, added: 4 });
    assert_eq!(Cache::open(&path)?.read_block(3, 1)?[[0, 0, 0, 0]], 4.0);
    Ok(())
}

#[test]
fn a_batch_of_another_shape_or_length_is_refused_and_the_open_segment_kept() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.append(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    let other = MapShape { height: 1, width: 1, channels: 12 };
    match writer.append(&[sample("a/2.jpg", "a", 0, 2.0)], other) {
        Err(Error::ShapeDiffers { path: named, .. }) => {
            assert!(named.ends_with("c.h5.parts/segment-00000000.h5"), "{}", named.display())
        }
        other => panic!("expected ShapeDiffers, got {other:?}"),
    }
    let wrong_length = Sample { features: vec![0.0; 5], ..sample("a/3.jpg", "a", 0, 0.0) };
    assert!(matches!(writer.append(&[wrong_length], SHAPE), Err(Error::Corrupt { .. })));
    // Both batches were refused before anything was written: the open segment is intact.
    writer.append(&[sample("a/4.jpg", "a", 0, 4.0)], SHAPE)?;
    assert_eq!(writer.finish()?, MergeSummary { total: 2, added: 2 });
    assert_eq!(Cache::open(&path)?.source_path(1), "a/4.jpg");
    Ok(())
}

#[test]
fn a_segment_opened_for_a_refused_batch_is_not_committed_empty() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.set_segment_samples(1);
    writer.append(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    // A new segment is opened for this batch, which is then refused whole.
    let wrong_length = Sample { features: vec![0.0; 5], ..sample("a/2.jpg", "a", 0, 0.0) };
    assert!(writer.append(&[wrong_length], SHAPE).is_err());
    assert_eq!(writer.finish()?, MergeSummary { total: 1, added: 1 });
    assert_eq!(parts(&path), ["segment-00000000.h5"]);
    Ok(())
}
