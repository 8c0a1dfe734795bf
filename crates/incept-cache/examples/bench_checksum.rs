//! `just bench-checksums`: what the Fletcher-32 checksums cost, side by side in one run: writing
//! real feature maps into a cache with and without them, reading every map back from each, and
//! `verify` (checksums of the stored bytes, nothing decompressed) against a plain read.
//!
//! cargo run --release -p incept-cache --example bench_checksum -- [CACHE] [ROWS] [ROUNDS]
//!
//! CACHE (default: the demo's `features/amid5-mixed_7.h5`) gives the maps, so they compress as
//! real ones do; its first ROWS rows (default 1000) are held in memory and written each round.

use std::path::{Path, PathBuf};
use std::time::Instant;

use incept_cache::{Cache, CacheWriter, Sample, benchmark_without_checksums, verify};

/// Rows per block when reading a cache back (what training reads at a time).
const READ_BLOCK: usize = 64;
/// Rows per segment write.
const WRITE_BATCH: usize = 32;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let source = args.get(1).map_or_else(
        || incept_core::project_root().join("features/amid5-mixed_7.h5"),
        PathBuf::from,
    );
    let rows: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(1000);
    let rounds: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(3);
    let cache = Cache::open(&source)?;
    let rows = rows.min(cache.len());
    let maps = cache.read_block(0, rows)?;
    let samples: Vec<Sample> = (0..rows)
        .map(|row| Sample {
            source: cache.source_path(row).to_owned(),
            class: cache.classes[cache.labels[row] as usize].clone(),
            variant: cache.variant[row] as u32,
            features: maps.index_axis(ndarray::Axis(0), row).iter().copied().collect(),
        })
        .collect();
    drop(maps);
    let scratch =
        std::env::temp_dir().join(format!("incept-bench-checksum-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    println!(
        "{rows} maps of {} ({} bytes each as float32) from {}, {rounds} rounds",
        cache.shape,
        cache.shape.len() * 4,
        source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    );
    let mut write_ratios = Vec::new();
    let mut read_ratios = Vec::new();
    let mut verify_ratios = Vec::new();
    for round in 1..=rounds.max(1) {
        let with = scratch.join(format!("with-{round}.h5"));
        let without = scratch.join(format!("without-{round}.h5"));
        // Alternate which goes first, so drift on a shared machine favours neither.
        let order = if round % 2 == 1 { [true, false] } else { [false, true] };
        let mut write_seconds = [0.0; 2];
        for checksums in order {
            benchmark_without_checksums(!checksums);
            let path = if checksums { &with } else { &without };
            write_seconds[usize::from(!checksums)] = write(path, &cache, &samples)?;
        }
        benchmark_without_checksums(false);
        let mut read_seconds = [0.0; 2];
        for checksums in order {
            let path = if checksums { &with } else { &without };
            read_seconds[usize::from(!checksums)] = read(path)?;
        }
        let started = Instant::now();
        let report = verify(&with, &|_| {})?;
        let verify_seconds = started.elapsed().as_secs_f64();
        assert!(report.is_clean() && report.unchecked_rows() == 0);
        let per_second = |seconds: f64| rows as f64 / seconds;
        println!(
            "round {round}: write {:.0} samples/s with checksums, {:.0} without (time ratio \
             {:.3}); read {:.0} with, {:.0} without (time ratio {:.3}); verify {:.0} samples/s \
             against a plain read's {:.0} ({:.2}x)",
            per_second(write_seconds[0]),
            per_second(write_seconds[1]),
            write_seconds[0] / write_seconds[1],
            per_second(read_seconds[0]),
            per_second(read_seconds[1]),
            read_seconds[0] / read_seconds[1],
            per_second(verify_seconds),
            per_second(read_seconds[0]),
            read_seconds[0] / verify_seconds,
        );
        write_ratios.push(write_seconds[0] / write_seconds[1]);
        read_ratios.push(read_seconds[0] / read_seconds[1]);
        verify_ratios.push(read_seconds[0] / verify_seconds);
        for path in [&with, &without] {
            remove_cache(path)?;
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    println!(
        "median: writing takes {:.3}x the time with checksums, reading {:.3}x; verify is {:.2}x \
         as fast as a plain read",
        median(write_ratios),
        median(read_ratios),
        median(verify_ratios)
    );
    Ok(())
}

/// Writes `samples` into a new cache at `path` as extraction does (batches into segments, then
/// the index); seconds taken.
fn write(path: &Path, like: &Cache, samples: &[Sample]) -> Result<f64, Error> {
    let started = Instant::now();
    let mut writer = CacheWriter::open(path, like.settings.clone(), false)?;
    for batch in samples.chunks(WRITE_BATCH) {
        writer.append(batch, like.shape)?;
    }
    writer.finish()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Reads every map of the cache at `path` in blocks; seconds taken.
fn read(path: &Path) -> Result<f64, Error> {
    let started = Instant::now();
    let cache = Cache::open(path)?;
    let mut sum = 0.0f64;
    for start in (0..cache.len()).step_by(READ_BLOCK) {
        let block = cache.read_block(start, READ_BLOCK.min(cache.len() - start))?;
        sum += f64::from(block[[0, 0, 0, 0]]);
    }
    std::hint::black_box(sum);
    Ok(started.elapsed().as_secs_f64())
}

fn remove_cache(path: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)?;
    let mut parts = path.as_os_str().to_owned();
    parts.push(".parts");
    std::fs::remove_dir_all(PathBuf::from(parts))?;
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    std::fs::remove_file(PathBuf::from(lock))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}
