//! The streamed store's scratch file: what a head keeps of each map (channel averages, or the
//! bilinear pooling), computed once when the run opens its cache and read back at every pass.
//! Without it a cache larger than the memory budget would be decompressed and pooled again at
//! every epoch, a third of the speed of the same head in memory (docs/BENCHMARKS.md,
//! "Streaming").
//!
//! The file lies beside the run folder, whose lock keeps it to one process; it is deleted when
//! the store is dropped or its writing fails, and one a killed run left is deleted or replaced by
//! the next run of the folder.
//! Format (docs/FORMATS.md, run folder): float32 little-endian rows, one per cache sample in
//! cache order, of the kept values.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use incept_cache::Cache;

use super::{DISK_BLOCK, Kept, read_kept};
use crate::{Error, Result};

const FLOAT_BYTES: usize = std::mem::size_of::<f32>();

#[derive(Debug)]
pub(crate) struct Spill {
    path: PathBuf,
    file: File,
    /// Values per row.
    values: usize,
}

impl Spill {
    /// Writes what `kept` keeps of every sample of `cache` to `path` (replacing any file there)
    /// and opens it for reading. Non-finite maps are an error, as when loading into memory; on
    /// any error the file is deleted.
    pub(crate) fn write(cache: &Cache, kept: &Kept, path: &Path) -> Result<Self> {
        let written = write_rows(cache, kept, path).and_then(|()| {
            File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
        });
        match written {
            Ok(file) => {
                Ok(Spill { path: path.to_path_buf(), file, values: kept.len(&cache.shape) })
            }
            Err(error) => {
                remove(path);
                Err(error)
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Rows `start..start + count`.
    ///
    /// # Shapes
    /// → [count × values].
    pub(crate) fn read_rows(&self, start: usize, count: usize) -> Result<Vec<f32>> {
        let width = self.values * FLOAT_BYTES;
        let mut bytes = vec![0u8; count * width];
        let mut file = &self.file;
        file.seek(SeekFrom::Start((start * width) as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        Ok(bytes
            .chunks_exact(FLOAT_BYTES)
            .map(|value| f32::from_le_bytes([value[0], value[1], value[2], value[3]]))
            .collect())
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

/// Deletes a spill file, if there is one: this run's once done with, or one a killed run left
/// when the next run of the folder needs none.
pub(crate) fn remove(path: &Path) {
    // Scratch: nothing relies on it; a file that cannot be deleted is replaced by the next run
    // of the folder that streams.
    let _ = std::fs::remove_file(path);
}

/// Bytes of the spill of `cache`: one row of what `kept` keeps per sample.
pub(crate) fn bytes(cache: &Cache, kept: &Kept) -> u64 {
    (cache.len() * kept.len(&cache.shape) * FLOAT_BYTES) as u64
}

/// Refuses spills of `needed` bytes in all, at `paths` (beside one run folder, so on one disk),
/// where that disk has less free: before hours of pooling, not at the end of them. Leftovers a
/// killed run left at `paths` count as free, since they are replaced.
pub(crate) fn ensure_space(paths: &[&Path], needed: u64) -> Result<()> {
    let Some(first) = paths.first() else {
        return Ok(());
    };
    if needed == 0 {
        return Ok(());
    }
    let leftovers: u64 =
        paths.iter().map(|path| std::fs::metadata(path).map_or(0, |m| m.len())).sum();
    let folder = first.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let free = incept_core::limits::available_disk_bytes(folder)
        .map(|bytes| bytes.saturating_add(leftovers));
    check_space(first, needed, free)
}

/// Refuses a spill of `needed` bytes where `free` (when known) is less.
fn check_space(path: &Path, needed: u64, free: Option<u64>) -> Result<()> {
    const MIB: u64 = 1 << 20;
    match free {
        Some(free) if free < needed => Err(Error::SpillNoSpace {
            path: path.to_path_buf(),
            needed_mib: needed.div_ceil(MIB),
            free_mib: free / MIB,
        }),
        _ => Ok(()),
    }
}

/// The rows of [`Spill::write`], written to `path`.
fn write_rows(cache: &Cache, kept: &Kept, path: &Path) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let mut start = 0;
    while start < cache.len() {
        let count = DISK_BLOCK.min(cache.len() - start);
        // [count × kept values]
        let rows = read_kept(cache, kept, start, count)?;
        let bytes: Vec<u8> = rows.iter().flat_map(|value| value.to_le_bytes()).collect();
        out.write_all(&bytes).map_err(io)?;
        start += count;
    }
    out.into_inner().map_err(|error| io(error.into_error()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use incept_cache::{CacheWriter, Dtype, MapShape, Sample, Settings};

    use super::super::Store;
    use super::*;

    const SHAPE: MapShape = MapShape { height: 2, width: 3, channels: 8 };
    const PER_CLASS: usize = 70;

    fn write_cache(dir: &Path) -> PathBuf {
        let path = dir.join("maps.h5");
        let settings = Settings {
            model_sha256: "synthetic".into(),
            input_size: 224,
            preprocessing: "synthetic".into(),
            augmentation: "{}".into(),
            seed: 0,
            copies: 0,
            dtype: Dtype::F32,
            augmentation_version: 1,
            layer: "mixed_7".into(),
        };
        let mut writer = CacheWriter::open(&path, settings, true).expect("writer");
        for class in 0..3 {
            let samples: Vec<Sample> = (0..PER_CLASS)
                .map(|i| Sample {
                    source: format!("c{class}/{i}.jpg"),
                    class: format!("c{class}"),
                    variant: 0,
                    features: (0..SHAPE.len())
                        .map(|k| ((k * 31 + i * 7 + class * 3) % 17) as f32 / 4.0 - 1.0)
                        .collect(),
                })
                .collect();
            writer.write_segment(&samples, SHAPE).expect("segment");
        }
        writer.finish().expect("finish");
        path
    }

    fn open(path: &Path) -> Cache {
        Cache::open(path).expect("cache")
    }

    /// Every sample's row as `store.batches` hands it out, checking each comes once.
    fn rows(store: &Store, shuffle: Option<u64>) -> BTreeMap<usize, Vec<f32>> {
        let indices: Vec<usize> = (0..store.cache().len()).collect();
        let dim = store.sample_dims().iter().product::<usize>();
        let mut seen = BTreeMap::new();
        store
            .batches(&indices, 16, shuffle, |batch, values| {
                for (index, row) in batch.iter().zip(values.chunks_exact(dim)) {
                    assert!(seen.insert(*index, row.to_vec()).is_none(), "{index} twice");
                }
                Ok(true)
            })
            .expect("batches");
        assert_eq!(seen.len(), indices.len());
        seen
    }

    #[test]
    fn a_streamed_store_hands_out_from_its_spill_what_memory_holds_and_removes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_cache(dir.path());
        let projection = {
            let cache = open(&path);
            let train: Vec<usize> = (0..cache.len()).collect();
            crate::bilinear::fit_on_cache(&cache, &train, 3, 0).expect("projection")
        };
        for kept in [Kept::Averages, Kept::Bilinear(Arc::new(projection))] {
            let memory =
                Store::open(open(&path), usize::MAX, kept.clone(), None).expect("memory store");
            let spill = dir.path().join(".run.streamed.f32");
            // A killed run's leftover, longer than the new file: replaced, not appended to.
            std::fs::write(&spill, vec![7u8; 1 << 16]).expect("leftover");
            // A budget of a few rows: streamed, with a shuffle buffer smaller than the cache.
            let streamed =
                Store::open(open(&path), 4096, kept.clone(), Some(&spill)).expect("streamed store");
            assert!(streamed.is_streaming() && !memory.is_streaming(), "{kept:?}");
            let width = kept.len(&SHAPE) * std::mem::size_of::<f32>();
            let size = std::fs::metadata(&spill).expect("spill").len();
            assert_eq!(size, (3 * PER_CLASS * width) as u64, "{kept:?}");
            let expected = rows(&memory, None);
            assert_eq!(rows(&streamed, None), expected, "{kept:?}");
            assert_eq!(rows(&streamed, Some(3)), expected, "{kept:?}");
            drop(streamed);
            assert!(!spill.exists(), "{kept:?}: the spill outlived its store");
        }
    }

    #[test]
    fn a_spill_larger_than_the_free_disk_is_refused_before_writing_naming_the_fixes() {
        let path = Path::new("runs/.head.streamed.f32");
        let error = check_space(path, 3 << 30, Some(1 << 30)).expect_err("refused");
        let text = error.to_string();
        for says in ["runs/.head.streamed.f32", "3072 MiB", "1024 MiB free", "--memory-budget-mib"]
        {
            assert!(text.contains(says), "{text}");
        }
        assert!(check_space(path, 1 << 30, Some(1 << 30)).is_ok());
        // Unknown free space: written, and a full disk says so when it happens.
        assert!(check_space(path, u64::MAX, None).is_ok());
        // On a real folder: more than any disk holds is refused, naming the first file; a
        // leftover's bytes count as free.
        let dir = tempfile::tempdir().expect("tempdir");
        let (train, validation) = (dir.path().join(".r.streamed.f32"), dir.path().join(".r.v.f32"));
        let refused = ensure_space(&[&train, &validation], u64::MAX / 2).expect_err("refused");
        assert!(refused.to_string().contains(".r.streamed.f32"), "{refused}");
        assert!(ensure_space(&[&train, &validation], 0).is_ok());
        // 64 MiB left over: asking 32 MiB more than the disk has free passes (with 32 MiB to
        // spare for whatever else writes to this disk meanwhile).
        std::fs::write(&validation, vec![0u8; 64 << 20]).expect("leftover");
        let free = incept_core::limits::available_disk_bytes(dir.path()).expect("statvfs");
        assert!(ensure_space(&[&train, &validation], free + (32 << 20)).is_ok());
        assert!(ensure_space(&[&train, &validation], free + (128 << 20)).is_err());
    }

    #[test]
    fn maps_stream_from_the_cache_without_a_spill_and_leftovers_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_cache(dir.path());
        let spill = dir.path().join(".run.streamed.f32");
        // A killed streamed run's leftover, then a run of the folder that needs no spill.
        std::fs::write(&spill, [1u8; 64]).expect("leftover");
        let streamed = Store::open(open(&path), 4096, Kept::Maps, Some(&spill)).expect("store");
        assert!(streamed.is_streaming());
        assert!(!spill.exists());
        std::fs::write(&spill, [1u8; 64]).expect("leftover");
        let held =
            Store::open(open(&path), usize::MAX, Kept::Averages, Some(&spill)).expect("held");
        assert!(!held.is_streaming());
        assert!(!spill.exists());
        let memory = Store::open(open(&path), usize::MAX, Kept::Maps, None).expect("memory");
        assert_eq!(rows(&streamed, Some(1)), rows(&memory, None));
    }
}
