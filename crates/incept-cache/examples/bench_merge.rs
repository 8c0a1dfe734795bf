//! `just bench-merge`: merging 1,000 small shards into one cache, as an index (virtual dataset)
//! and as one self-contained copy, and reading every map back through each, side by side in one
//! run.
//!
//! cargo run --release -p incept-cache --example bench_merge -- [SHARDS] [ROWS_PER_SHARD]

use std::path::{Path, PathBuf};
use std::time::Instant;

use incept_cache::{Cache, CacheWriter, Dtype, MapShape, Sample, Settings};

/// The maps of the demo's cache (mixed_9 at 224×224).
const SHAPE: MapShape = MapShape { height: 5, width: 5, channels: 2048 };
/// Rows read per block when reading a whole cache back.
const READ_BLOCK: usize = 256;

fn settings() -> Settings {
    Settings {
        model_sha256: "bench".into(),
        input_size: 224,
        preprocessing: "bench".into(),
        augmentation: "{}".into(),
        seed: 0,
        copies: 0,
        dtype: Dtype::F32,
        augmentation_version: 1,
        layer: "mixed_9".into(),
    }
}

/// Feature-like values: about a third exact zeros (as after a ReLU), the rest small and varied,
/// so they compress about as real maps do.
fn features(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..SHAPE.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(3) { 0.0 } else { (state >> 40) as f32 / 65536.0 / 64.0 }
        })
        .collect()
}

fn seconds_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Reads every row of `dataset` (a virtual or stored `features`) in blocks; returns a checksum.
fn read_dataset(path: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    let file = hdf5::File::open(path)?;
    let dataset = file.dataset("features")?;
    let rows = dataset.shape()[0];
    let mut sum = 0.0f64;
    for start in (0..rows).step_by(READ_BLOCK) {
        let end = (start + READ_BLOCK).min(rows);
        let block: ndarray::Array4<f32> =
            dataset.read_slice(ndarray::s![start..end, .., .., ..])?;
        sum += block.iter().map(|&v| v as f64).sum::<f64>();
    }
    Ok(sum)
}

/// Reads every row through incept's reader; returns a checksum.
fn read_cache(cache: &Cache) -> Result<f64, Box<dyn std::error::Error>> {
    let mut sum = 0.0f64;
    for start in (0..cache.len()).step_by(READ_BLOCK) {
        let block = cache.read_block(start, READ_BLOCK.min(cache.len() - start))?;
        sum += block.iter().map(|&v| v as f64).sum::<f64>();
    }
    Ok(sum)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let shards = arguments.first().copied().unwrap_or(1000);
    let rows = arguments.get(1).copied().unwrap_or(8);
    let limit = incept_core::limits::raise_open_file_limit();
    let root = tempfile::tempdir_in(
        std::env::var_os("BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
    )?;
    eprintln!(
        "bench-merge: {shards} shards × {rows} maps of {SHAPE} float32 in {} (open-file limit {limit})",
        root.path().display()
    );

    let start = Instant::now();
    let mut paths = Vec::with_capacity(shards);
    for shard in 0..shards {
        let path = root.path().join(format!("shards/shard-{shard:05}-of-{shards:05}.h5"));
        let mut writer = CacheWriter::open(&path, settings(), false)?;
        let samples: Vec<Sample> = (0..rows)
            .map(|row| Sample {
                source: format!("class{}/photo-{shard:05}-{row:03}.jpg", row % 5),
                class: format!("class{}", row % 5),
                variant: 0,
                features: features((shard * rows + row) as u64),
            })
            .collect();
        writer.write_segment(&samples, SHAPE)?;
        writer.finish()?;
        paths.push(path);
    }
    let make = seconds_since(start);
    let caches = paths.iter().map(|p| Cache::open(p)).collect::<Result<Vec<_>, _>>()?;
    let stored: u64 = caches.iter().map(Cache::stored_feature_bytes).sum();
    let total = shards * rows;
    eprintln!(
        "made the shards in {make:.1} s: {total} maps, {:.0} bytes/map stored",
        stored as f64 / total as f64
    );

    let index_path = root.path().join("merged.h5");
    let start = Instant::now();
    incept_cache::index_over(&index_path, &caches)?;
    let merge_index = seconds_since(start);
    let copy_path = root.path().join("copy.h5");
    let start = Instant::now();
    incept_cache::copy_into_one_file(&copy_path, &caches)?;
    let merge_copy = seconds_since(start);
    drop(caches);
    let index_bytes = std::fs::metadata(&index_path)?.len();
    let copy_bytes = std::fs::metadata(&copy_path)?.len();

    // Reads: warm (the shards were just written), each file read once before timing.
    read_dataset(&index_path)?;
    read_dataset(&copy_path)?;
    let start = Instant::now();
    let through_vds = read_dataset(&index_path)?;
    let read_vds = seconds_since(start);
    let start = Instant::now();
    let through_copy = read_dataset(&copy_path)?;
    let read_copy = seconds_since(start);
    let start = Instant::now();
    let index = Cache::open(&index_path)?;
    let through_incept = read_cache(&index)?;
    let read_incept = seconds_since(start);
    if through_vds != through_copy || through_incept != through_copy {
        return Err(
            format!("checksums differ: {through_vds} {through_copy} {through_incept}").into()
        );
    }

    println!("merge of {shards} shards ({total} maps):");
    println!("  index (virtual dataset): {merge_index:8.2} s, {index_bytes} bytes");
    println!(
        "  --copy (one file):       {merge_copy:8.2} s, {copy_bytes} bytes: {:.1}× the index's time",
        merge_copy / merge_index
    );
    println!("full read of every map ({READ_BLOCK} a block):");
    println!(
        "  copied file, h5py-style:      {read_copy:6.2} s ({:.0} maps/s)",
        total as f64 / read_copy
    );
    println!(
        "  index, through the virtual dataset: {read_vds:6.2} s: {:.2}× the copied file's time",
        read_vds / read_copy
    );
    println!(
        "  index, through incept's reader:     {read_incept:6.2} s: {:.2}× the copied file's time",
        read_incept / read_copy
    );
    Ok(())
}
