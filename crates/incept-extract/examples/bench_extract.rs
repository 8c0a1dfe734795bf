//! `just bench-extract`: `incept extract` end to end against bare ONNX Runtime inference of the
//! same model on ready-made tensors, same threads and batch size, measured in one run.
//!
//! Usage: bench_extract DATA_DIR [PHOTOS] [BATCH_SIZE] [COPIES]

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use incept_extract::DEFAULT_MODEL;
use incept_extract::{Augmentation, Backbone, Device, ExtractConfig};
use ndarray::Array4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(
        args.get(1).ok_or("usage: bench_extract DATA_DIR [PHOTOS] [BATCH_SIZE] [COPIES]")?,
    );
    let photos: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(200);
    let batch_size: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(16);
    let model = incept_core::project_root().join(DEFAULT_MODEL);

    // A fixed set: every k-th photo of the sorted list, linked into a scratch folder.
    let found = incept_extract::scan(&data)?;
    let step = (found.images.len() / photos.max(1)).max(1);
    let scratch = std::env::temp_dir().join(format!("incept-bench-{}", std::process::id()));
    for image in found.images.iter().step_by(step).take(photos) {
        let link = scratch.join(&image.relative);
        std::fs::create_dir_all(link.parent().ok_or("bad path")?)?;
        std::os::unix::fs::symlink(std::fs::canonicalize(&image.path)?, &link)?;
    }
    let copies: usize = args.get(4).and_then(|v| v.parse().ok()).unwrap_or(1);
    let samples = photos * (copies + 1);

    // Bare inference: ready-made tensors, same batch size, all cores.
    let mut backbone = Backbone::load(&model, Device::Cpu, 0)?;
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
    let bare = done as f64 / started.elapsed().as_secs_f64();
    drop(backbone);

    // incept extract, end to end: decode, augment, infer, write, merge.
    let config = ExtractConfig {
        data_dir: scratch.clone(),
        output: scratch.join("bench.h5"),
        model,
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
        segment_samples: 256,
        compression: incept_cache::Compression::default(),
    };
    let report = incept_extract::extract(&config, &AtomicBool::new(false))?;
    let end_to_end = report.samples_per_second();
    std::fs::remove_dir_all(&scratch)?;

    println!(
        "photos {photos}, copies {copies}, samples {samples}, batch {batch_size}, {} cores",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("bare ONNX Runtime inference : {bare:8.1} samples/s");
    println!("incept extract end to end   : {end_to_end:8.1} samples/s");
    println!("ratio                       : {:8.3}", end_to_end / bare);
    println!(
        "time split: decode+augment {:.1} s (worker time), inference {:.1} s, writing {:.1} s, wall {:.1} s",
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
    Ok(())
}
