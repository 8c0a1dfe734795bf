//! `just bench-extract`: `incept extract` end to end against bare ONNX Runtime inference of the
//! same model on ready-made tensors, same threads and batch size, measured in one run.
//!
//! Usage: bench_extract DATA_DIR [PHOTOS] [BATCH_SIZE] [COPIES] [ROUNDS]
//!
//! The two alternate, ROUNDS times: on a shared machine one pass of either moves by a few
//! percent, so each round's ratio is printed and the median is the figure to quote.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use incept_extract::DEFAULT_MODEL;
use incept_extract::{Augmentation, Backbone, Device, ExtractConfig, ExtractReport};
use ndarray::Array4;

const USAGE: &str = "usage: bench_extract DATA_DIR [PHOTOS] [BATCH_SIZE] [COPIES] [ROUNDS]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(args.get(1).ok_or(USAGE)?);
    let number = |index: usize, default: usize| -> usize {
        args.get(index).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let (photos, batch_size, copies, rounds) =
        (number(2, 200), number(3, 16), number(4, 1), number(5, 3));
    let model = incept_core::project_root().join(DEFAULT_MODEL);
    let samples = photos * (copies + 1);

    // A fixed set: every k-th photo of the sorted list, linked into a scratch folder beside (not
    // in) the cache, whose pieces folder a later round would otherwise scan as a class.
    let found = incept_extract::scan(&data)?;
    let step = (found.images.len() / photos.max(1)).max(1);
    let scratch = std::env::temp_dir().join(format!("incept-bench-{}", std::process::id()));
    let photos_dir = scratch.join("photos");
    for image in found.images.iter().step_by(step).take(photos) {
        let link = photos_dir.join(&image.relative);
        std::fs::create_dir_all(link.parent().ok_or("bad path")?)?;
        std::os::unix::fs::symlink(std::fs::canonicalize(&image.path)?, &link)?;
    }
    let config = ExtractConfig {
        data_dir: photos_dir,
        output: scratch.join("bench.h5"),
        model: model.clone(),
        layer: incept_extract::Layer::Mixed10,
        copies: copies as u32,
        augmentation: Augmentation::default(),
        seed: 0,
        batch_size,
        device: Device::Cpu,
        dtype: incept_cache::Dtype::F32,
        overwrite: true,
        decode: incept_extract::DecodeOptions::default(),
        threads: 0,
        segment_samples: incept_cache::DEFAULT_SEGMENT_SAMPLES,
        compression: incept_cache::Compression::default(),
    };

    println!(
        "photos {photos}, copies {copies}, samples {samples}, batch {batch_size}, {} cores, {rounds} rounds",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let mut ratios = Vec::new();
    let mut checksum_ratios = Vec::new();
    let mut last = None;
    for round in 1..=rounds.max(1) {
        let bare = bare_inference(&model, batch_size, samples)?;
        // The same extraction with checksums and without (as incept wrote before them), in
        // alternating order so that drift on a shared machine favours neither.
        let timed = |without: bool| {
            incept_cache::benchmark_without_checksums(without);
            let report = incept_extract::extract(&config, &AtomicBool::new(false));
            incept_cache::benchmark_without_checksums(false);
            report
        };
        let (report, plain) = if round % 2 == 1 {
            let plain = timed(true)?;
            (timed(false)?, plain)
        } else {
            let report = timed(false)?;
            (report, timed(true)?)
        };
        let end_to_end = report.samples_per_second();
        println!(
            "round {round}: bare ONNX Runtime {bare:6.1} samples/s, incept extract end to end \
             {end_to_end:6.1} samples/s, ratio {:.3}; without checksums {:6.1} samples/s \
             (with/without {:.3})",
            end_to_end / bare,
            plain.samples_per_second(),
            end_to_end / plain.samples_per_second()
        );
        ratios.push(end_to_end / bare);
        checksum_ratios.push(end_to_end / plain.samples_per_second());
        last = Some(report);
    }
    std::fs::remove_dir_all(&scratch)?;
    println!("ratio (median of {} rounds)   : {:.3}", ratios.len(), median(ratios));
    println!(
        "speed with checksums / without (median of {} rounds): {:.3}",
        checksum_ratios.len(),
        median(checksum_ratios)
    );
    if let Some(report) = last {
        describe(&report, &config);
    }
    Ok(())
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

/// Samples a second of the model alone on ready-made tensors: the same batch size, all cores,
/// after one warm-up batch.
fn bare_inference(
    model: &Path,
    batch_size: usize,
    samples: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut backbone = Backbone::load(model, Device::Cpu, 0)?;
    let batch = Array4::<f32>::from_shape_fn((batch_size, 3, 224, 224), |(n, c, y, x)| {
        ((n * 31 + c * 17 + y * 7 + x) % 255) as f32 / 127.5 - 1.0
    });
    backbone.run(batch.view())?; // warm-up
    let started = Instant::now();
    let mut done = 0;
    while done < samples {
        backbone.run(batch.view())?;
        done += batch_size;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// Where the last round's time went and what it stored.
fn describe(report: &ExtractReport, config: &ExtractConfig) {
    println!(
        "last round: decode+augment {:.1} s (worker time), inference {:.1} s, writing {:.1} s, wall {:.1} s",
        report.decode.as_secs_f64(),
        report.inference.as_secs_f64(),
        report.write.as_secs_f64(),
        report.wall.as_secs_f64()
    );
    println!(
        "cache: {:.0} bytes/sample ({}; raw float32 is 204800)",
        report.bytes_per_sample,
        config.compression.as_str()
    );
}
