use super::*;

pub(crate) const SHAPE: MapShape = MapShape { height: 2, width: 2, channels: 3 };

pub(crate) fn settings(dtype: Dtype) -> Settings {
    Settings {
        model_sha256: "abc".into(),
        input_size: 224,
        preprocessing: "x/127.5-1".into(),
        augmentation: "{}".into(),
        seed: 7,
        copies: 1,
        dtype,
        augmentation_version: 1,
        layer: "mixed_10".into(),
    }
}

pub(crate) fn sample(source: &str, class: &str, variant: u32, value: f32) -> Sample {
    let features = (0..SHAPE.len()).map(|i| value + i as f32 * 0.25).collect();
    Sample { source: source.into(), class: class.into(), variant, features }
}

pub(crate) fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

#[test]
fn segments_become_pieces_of_an_index_without_duplicates() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer
        .write_segment(&[sample("b/2.jpg", "b", 1, 4.0), sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer
        .write_segment(&[sample("b/2.jpg", "b", 0, 3.0), sample("a/1.jpg", "a", 0, 9.0)], SHAPE)?;
    assert!(writer.is_done("b/2.jpg", 1));
    let summary = writer.finish()?;
    assert_eq!(summary, MergeSummary { total: 3, added: 3 });

    let cache = Cache::open(&path)?;
    assert_eq!(cache.classes, ["a", "b"]);
    // Rows in extraction order; the second segment's copy of a/1.jpg variant 0 is dropped.
    assert_eq!(cache.labels, [1, 0, 1]);
    assert_eq!(cache.variant, [1, 0, 0]);
    assert_eq!(cache.source_path(2), "b/2.jpg");
    let block = cache.read_block(0, 3)?;
    assert_eq!(block[[0, 1, 1, 2]], 4.0 + 11.0 * 0.25);
    assert_eq!(block[[1, 0, 0, 0]], 1.0);
    assert_eq!(block[[2, 0, 0, 0]], 3.0);
    // The run's two segments were packed into one piece (chunks copied as they are).
    let pieces = cache.pieces().expect("an index");
    assert_eq!(pieces.iter().map(|p| p.rows).collect::<Vec<_>>(), [3]);
    assert!(pieces[0].path.ends_with("c.h5.parts/segment-00000002.h5"));
    for consumed in ["segment-00000000.h5", "segment-00000001.h5"] {
        assert!(!dir.path().join("c.h5.parts").join(consumed).exists());
    }
    assert_eq!(cache.read_block(1, 2)?, block.slice(ndarray::s![1..3, .., .., ..]));
    Ok(())
}

#[test]
fn growing_writes_the_new_samples_only() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer
        .write_segment(&[sample("a/1.jpg", "a", 0, 1.0), sample("a/1.jpg", "a", 1, 2.0)], SHAPE)?;
    writer.finish()?;
    let first = Cache::open(&path)?;
    let piece = first.pieces().expect("an index")[0].path.clone();
    let before = std::fs::metadata(&piece).map_err(io_error(&piece))?;
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/2.jpg", "a", 0, 5.0)], SHAPE)?;
    assert_eq!(writer.finish()?, MergeSummary { total: 3, added: 1 });
    let grown = Cache::open(&path)?;
    // The old piece is the same file, untouched; the index names it and the new segment.
    let after = std::fs::metadata(&piece).map_err(io_error(&piece))?;
    use std::os::unix::fs::MetadataExt;
    assert_eq!((before.ino(), before.mtime_nsec()), (after.ino(), after.mtime_nsec()));
    assert_eq!(grown.pieces().expect("an index").len(), 2);
    assert_eq!(grown.read_block(0, 2)?, first.read_block(0, 2)?);
    assert_eq!(grown.read_block(2, 1)?[[0, 0, 0, 0]], 5.0);
    assert_ne!(grown.content_id, first.content_id);
    assert_eq!(grown.created, first.created);
    Ok(())
}

#[test]
fn a_self_contained_cache_grows_into_an_index_and_stays_whole_until_then() -> Result<()> {
    let dir = tempdir();
    let built = dir.path().join("built.h5");
    let mut writer = CacheWriter::open(&built, settings(Dtype::F16), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    // A cache as incept 0.1.0 wrote it: one file, `features` inside.
    let path = dir.path().join("c.h5");
    copy_into_one_file(&path, &[Cache::open(&built)?])?;
    let legacy = Cache::open(&path)?;
    assert!(legacy.pieces().is_none());
    let mut writer = CacheWriter::open(&path, settings(Dtype::F16), false)?;
    writer.write_segment(&[sample("b/1.jpg", "b", 0, 2.0)], SHAPE)?;
    writer.finish()?;
    let grown = Cache::open(&path)?;
    let pieces = grown.pieces().expect("an index now");
    assert!(pieces[0].path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("whole-")));
    assert_eq!(grown.read_block(0, 1)?, legacy.read_block(0, 1)?);
    assert_eq!((grown.len(), grown.classes.as_slice()), (2, &["a".to_owned(), "b".to_owned()][..]));
    Ok(())
}

#[test]
fn a_missing_piece_is_an_error_naming_it_not_zeros() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    let piece = dir.path().join("c.h5.parts/segment-00000000.h5");
    std::fs::remove_file(&piece).map_err(io_error(&piece))?;
    let message = Cache::open(&path).unwrap_err().to_string();
    assert!(message.contains("segment-00000000.h5") && message.contains("missing"), "{message}");
    Ok(())
}

#[test]
fn an_index_moves_with_its_pieces() -> Result<()> {
    let dir = tempdir();
    let folder = dir.path().join("one");
    let path = folder.join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    let moved = dir.path().join("two");
    std::fs::rename(&folder, &moved).map_err(io_error(&moved))?;
    let cache = Cache::open(&moved.join("c.h5"))?;
    assert_eq!(cache.read_block(0, 1)?[[0, 0, 0, 0]], 1.0);
    // h5py reads `features` through the virtual dataset: so does the HDF5 library here.
    let file = hdf5::File::open(moved.join("c.h5")).at(&moved)?;
    let through_vds: ndarray::Array4<f32> = file.dataset(FEATURES).at(&moved)?.read().at(&moved)?;
    assert_eq!(through_vds, cache.read_block(0, 1)?);
    Ok(())
}

#[test]
fn caches_combine_into_an_index_or_one_copy_and_overlaps_are_refused() -> Result<()> {
    let dir = tempdir();
    let mut parts = Vec::new();
    for (name, source, value) in [("s0.h5", "a/1.jpg", 1.0), ("s1.h5", "b/1.jpg", 2.0)] {
        let path = dir.path().join("shards").join(name);
        let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
        writer.write_segment(&[sample(source, &source[..1], 0, value)], SHAPE)?;
        writer.finish()?;
        parts.push(Cache::open(&path)?);
    }
    let index = dir.path().join("merged.h5");
    assert_eq!(index_over(&index, &parts)?.total, 2);
    let copy = dir.path().join("copy.h5");
    copy_into_one_file(&copy, &parts)?;
    let (index, copy) = (Cache::open(&index)?, Cache::open(&copy)?);
    assert!(index.pieces().is_some() && copy.pieces().is_none());
    assert_eq!(index.read_block(0, 2)?, copy.read_block(0, 2)?);
    assert_eq!((index.labels.as_slice(), copy.labels.as_slice()), (&[0, 1][..], &[0, 1][..]));
    let overlap = index_over(&dir.path().join("twice.h5"), &[index, copy]).unwrap_err().to_string();
    assert!(overlap.contains("a/1.jpg") && overlap.contains("twice"), "{overlap}");
    Ok(())
}

#[test]
fn relative_paths_climb_out_of_the_index_folder() -> Result<()> {
    let base = Path::new("/data/plan");
    assert_eq!(
        relative_path(&base.join("shards/s.h5.parts/x.h5"), base)?,
        "shards/s.h5.parts/x.h5"
    );
    assert_eq!(relative_path(Path::new("/data/other/x.h5"), base)?, "../other/x.h5");
    assert_eq!(relative_path(Path::new("/data/plan/./a/../x.h5"), base)?, "x.h5");
    Ok(())
}

#[test]
fn adding_a_class_later_remaps_old_labels() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F16), false)?;
    writer.write_segment(&[sample("m/1.jpg", "m", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    let mut writer = CacheWriter::open(&path, settings(Dtype::F16), false)?;
    assert!(writer.is_done("m/1.jpg", 0));
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 2.0)], SHAPE)?;
    let summary = writer.finish()?;
    assert_eq!(summary, MergeSummary { total: 2, added: 1 });
    let cache = Cache::open(&path)?;
    assert_eq!(cache.classes, ["a", "m"]);
    assert_eq!(cache.labels, [1, 0]);
    assert_eq!(cache.settings.dtype, Dtype::F16);
    assert_eq!(cache.read_block(1, 1)?[[0, 0, 0, 1]], 2.25);
    Ok(())
}

#[test]
fn other_settings_are_refused_with_the_difference_named() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    let mut other = settings(Dtype::F32);
    other.seed = 8;
    let message =
        CacheWriter::open(&path, other.clone(), false).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("seed: cache has 7, this run wants 8"), "{message}");
    assert!(message.contains("--overwrite"), "{message}");
    // The refused run did not touch the cache; --overwrite replaces it.
    assert_eq!(Cache::open(&path)?.len(), 1);
    let writer = CacheWriter::open(&path, other, true)?;
    assert_eq!(writer.done_count(), 0);
    Ok(())
}

#[test]
fn leftovers_of_a_killed_run_are_recovered() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    drop(writer); // killed before finish
    let parts = dir.path().join("c.h5.parts");
    std::fs::write(parts.join("segment-00000009.h5.tmp"), b"half a segment")
        .map_err(io_error(&parts))?;
    std::fs::write(dir.path().join("c.h5.merging"), b"half a merge").map_err(io_error(&parts))?;
    // A temporary file of a process that is gone (pid above any pid_max) is removed; one of a
    // live process (this one) is not.
    let host = incept_core::atomic::host_name();
    let dead = dir.path().join(format!(".c.h5.tmp-999999999-0@{host}"));
    std::fs::write(&dead, b"half a merge").map_err(io_error(&dead))?;
    let live = incept_core::atomic::temporary_path(&path);
    std::fs::write(&live, b"being written").map_err(io_error(&live))?;
    let writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    assert!(writer.is_done("a/1.jpg", 0));
    assert_eq!(writer.finish()?.total, 1);
    assert!(!dir.path().join("c.h5.merging").exists());
    assert!(!parts.join("segment-00000009.h5.tmp").exists());
    assert!(!dead.exists() && live.exists());
    Ok(())
}

#[test]
fn foreign_files_give_clear_errors() -> Result<()> {
    let dir = tempdir();
    let missing = dir.path().join("none.h5");
    assert!(Cache::open(&missing).unwrap_err().to_string().contains("incept extract"));
    let text = dir.path().join("text.h5");
    std::fs::write(&text, b"not hdf5").map_err(io_error(&text))?;
    let message = Cache::open(&text).unwrap_err().to_string();
    assert!(message.contains("text.h5") && message.contains("HDF5"), "{message}");
    let foreign = dir.path().join("foreign.h5");
    let file = hdf5::File::create(&foreign).at(&foreign)?;
    file.new_dataset::<f32>().shape(3).create("something").at(&foreign)?;
    drop(file);
    let message = Cache::open(&foreign).unwrap_err().to_string();
    assert!(message.contains("not an incept feature cache (missing `features`)"), "{message}");
    Ok(())
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_cache() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut first = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    first.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    let refused = CacheWriter::open(&path, settings(Dtype::F32), false).map(|_| ()).unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("being written by another incept process"), "{message}");
    assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
    // The refused writer touched nothing: the first one's segment is still there and merges.
    assert_eq!(first.finish()?.total, 1);
    let second = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    assert!(second.is_done("a/1.jpg", 0));
    Ok(())
}

#[test]
fn overwrite_keeps_the_old_cache_until_the_new_one_is_whole() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    let mut other = settings(Dtype::F32);
    other.seed = 8;
    // An --overwrite run killed after one segment: the old cache is still there, whole.
    let mut replacing = CacheWriter::open(&path, other.clone(), true)?;
    assert_eq!(replacing.done_count(), 0);
    replacing.write_segment(&[sample("b/1.jpg", "b", 0, 2.0)], SHAPE)?;
    drop(replacing);
    let old = Cache::open(&path)?;
    assert_eq!((old.settings.seed, old.read_block(0, 1)?[[0, 0, 0, 0]]), (7, 1.0));
    // Resumed with --overwrite: its own segment is kept, the old samples are not.
    let mut resumed = CacheWriter::open(&path, other, true)?;
    assert!(resumed.is_done("b/1.jpg", 0) && !resumed.is_done("a/1.jpg", 0));
    resumed.write_segment(&[sample("b/2.jpg", "b", 0, 3.0)], SHAPE)?;
    assert_eq!(resumed.finish()?, MergeSummary { total: 2, added: 2 });
    let cache = Cache::open(&path)?;
    assert_eq!((cache.settings.seed, cache.classes.as_slice()), (8, &["b".to_owned()][..]));
    // The replaced cache's piece is gone once the new index is in place.
    assert!(!dir.path().join("c.h5.parts/segment-00000000.h5").exists());
    assert_eq!(cache.pieces().map(|p| p.len()), Some(1));
    Ok(())
}

#[test]
fn caches_without_an_augmentation_version_read_as_version_one_and_others_are_refused() -> Result<()>
{
    let dir = tempdir();
    let built = dir.path().join("built.h5");
    let mut writer = CacheWriter::open(&built, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    // An old self-contained cache without the attributes.
    let path = dir.path().join("c.h5");
    copy_into_one_file(&path, &[Cache::open(&built)?])?;
    {
        let file = hdf5::File::open_rw(&path).at(&path)?;
        file.delete_attr("augmentation_version").at(&path)?;
        file.delete_attr("layer").at(&path)?;
    }
    let old = Cache::open(&path)?;
    assert_eq!((old.settings.augmentation_version, old.settings.layer.as_str()), (1, "mixed_10"));
    let mut newer = settings(Dtype::F32);
    newer.augmentation_version = 2;
    let message = CacheWriter::open(&path, newer, false).map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("augmentation_version: cache has 1, this run wants 2"), "{message}");
    Ok(())
}

#[test]
fn a_kill_while_retiring_replaced_pieces_does_not_bring_them_back() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    let old_piece = dir.path().join("c.h5.parts/segment-00000000.h5");
    let kept = dir.path().join("kept.h5");
    std::fs::copy(&old_piece, &kept).map_err(io_error(&kept))?;
    let mut other = settings(Dtype::F32);
    other.seed = 8;
    let mut replacing = CacheWriter::open(&path, other.clone(), true)?;
    replacing.write_segment(&[sample("b/1.jpg", "b", 0, 2.0)], SHAPE)?;
    replacing.finish()?;
    // As if killed after the new index was in place, before the old piece was deleted.
    std::fs::copy(&kept, &old_piece).map_err(io_error(&old_piece))?;
    let writer = CacheWriter::open(&path, other, false)?;
    assert!(!writer.is_done("a/1.jpg", 0) && writer.is_done("b/1.jpg", 0));
    assert!(!old_piece.exists(), "a stale piece is removed, not taken for pending work");
    assert_eq!(writer.finish()?.total, 1);
    assert_eq!(Cache::open(&path)?.sources, ["b/1.jpg"]);
    Ok(())
}

#[test]
fn pieces_of_every_compression_read_grow_and_copy_alike() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    // The two choices of earlier versions (byte shuffle first), then today's two.
    let order = [
        Compression::ShuffleDeflate,
        Compression::ShuffleLzf,
        Compression::Deflate,
        Compression::Lzf,
    ];
    for (number, compression) in order.into_iter().enumerate() {
        let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
        writer.set_compression(compression);
        let source = format!("a/{number}.jpg");
        writer.write_segment(&[sample(&source, "a", 0, number as f32 + 1.0)], SHAPE)?;
        writer.finish()?;
        assert_eq!(Cache::open(&path)?.compression, compression);
    }
    let mixed = Cache::open(&path)?;
    assert_eq!(mixed.len(), order.len());
    for number in 0..order.len() {
        assert_eq!(mixed.read_block(number, 1)?[[0, 0, 0, 0]], number as f32 + 1.0);
    }
    // One file from pieces of four filter pipelines: chunks of other filters are re-encoded.
    let copy = dir.path().join("copy.h5");
    copy_into_one_file(&copy, &[Cache::open(&path)?])?;
    let copy = Cache::open(&copy)?;
    assert_eq!(copy.read_block(0, order.len())?, mixed.read_block(0, order.len())?);
    Ok(())
}

#[test]
fn a_cache_of_a_newer_format_is_refused_naming_it() -> Result<()> {
    let dir = tempdir();
    let path = dir.path().join("c.h5");
    let mut writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    writer.write_segment(&[sample("a/1.jpg", "a", 0, 1.0)], SHAPE)?;
    writer.finish()?;
    assert_eq!(Cache::open(&path)?.len(), 1);
    {
        let file = hdf5::File::open_rw(&path).at(&path)?;
        let attribute = file.attr(index::FORMAT_VERSION_ATTRIBUTE).at(&path)?;
        attribute.write_scalar(&(index::INDEX_FORMAT_VERSION + 1)).at(&path)?;
    }
    match Cache::open(&path) {
        Err(error @ Error::NewerFormat { .. }) => {
            assert!(
                error.to_string().contains("c.h5") && error.to_string().contains("newer incept")
            );
        }
        other => panic!("expected NewerFormat, got {:?}", other.map(|c| c.len())),
    }
    Ok(())
}
