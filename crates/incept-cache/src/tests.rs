use super::*;

const SHAPE: MapShape = MapShape { height: 2, width: 2, channels: 3 };

fn settings(dtype: Dtype) -> Settings {
    Settings {
        model_sha256: "abc".into(),
        input_size: 224,
        preprocessing: "x/127.5-1".into(),
        augmentation: "{}".into(),
        seed: 7,
        copies: 1,
        dtype,
    }
}

fn sample(source: &str, class: &str, variant: u32, value: f32) -> Sample {
    let features = (0..SHAPE.len()).map(|i| value + i as f32 * 0.25).collect();
    Sample { source: source.into(), class: class.into(), variant, features }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

#[test]
fn segments_merge_into_a_sorted_deduplicated_cache() -> Result<()> {
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
    assert!(!dir.path().join("c.h5.parts").exists());

    let cache = Cache::open(&path)?;
    assert_eq!(cache.classes, ["a", "b"]);
    assert_eq!(cache.labels, [0, 1, 1]);
    assert_eq!(cache.variant, [0, 0, 1]);
    assert_eq!(cache.source_path(2), "b/2.jpg");
    let block = cache.read_block(0, 3)?;
    // The first segment's copy of a/1.jpg variant 0 wins; the duplicate is dropped.
    assert_eq!(block[[0, 0, 0, 0]], 1.0);
    assert_eq!(block[[1, 0, 0, 0]], 3.0);
    assert_eq!(block[[2, 1, 1, 2]], 4.0 + 11.0 * 0.25);
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
    let writer = CacheWriter::open(&path, settings(Dtype::F32), false)?;
    assert!(writer.is_done("a/1.jpg", 0));
    assert_eq!(writer.finish()?.total, 1);
    assert!(!dir.path().join("c.h5.merging").exists());
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
fn rfc3339_dates_look_right() {
    let now = now_rfc3339();
    assert_eq!(now.len(), 20);
    assert!(now.starts_with("20") && now.ends_with('Z'));
}
