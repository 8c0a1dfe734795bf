//! `just bench-train`: training samples/s of the default head and the blog preset on each
//! Burn CPU backend, on one synthetic 5×5×2048 cache, measured in one run.

use std::sync::atomic::AtomicBool;

use incept_cache::{CacheWriter, Dtype, MapShape, Sample, Settings};
use incept_head::{Backend, OptimizerKind, Pooling, TrainConfig, TrainRequest};

const CLASSES: usize = 5;
const PER_CLASS: usize = 160;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    incept_head::allocator::keep_freed_memory();
    // Optional argument: only heads whose name contains it (e.g. `blog`), for profiling one.
    let only = std::env::args().nth(1).unwrap_or_default();
    let only_backend = std::env::args().nth(2);
    let dir = std::env::temp_dir().join(format!("incept-bench-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cache = dir.join("synthetic.h5");
    let shape = MapShape { height: 5, width: 5, channels: 2048 };
    let settings = Settings {
        model_sha256: "synthetic".into(),
        input_size: 224,
        preprocessing: "synthetic".into(),
        augmentation: "{}".into(),
        seed: 0,
        copies: 0,
        dtype: Dtype::F32,
        augmentation_version: 1,
        layer: "mixed_10".into(),
    };
    let mut writer = CacheWriter::open(&cache, settings, true)?;
    for class in 0..CLASSES {
        let samples: Vec<Sample> = (0..PER_CLASS)
            .map(|i| Sample {
                source: format!("c{class}/{i}.jpg"),
                class: format!("c{class}"),
                variant: 0,
                // ReLU-like maps: about half zeros, as InceptionV3's.
                features: (0..shape.len())
                    .map(|k| ((k * 2654435761 + i * 97 + class) % 1000) as f32 / 500.0 - 1.0)
                    .map(|v: f32| v.max(0.0))
                    .collect(),
            })
            .collect();
        writer.write_segment(&samples, shape)?;
    }
    writer.finish()?;

    let blog = TrainConfig::blog_preset();
    let mut gap_adam = TrainConfig::blog_preset();
    gap_adam.optimizer = OptimizerKind::Adam;
    gap_adam.head.pooling = Pooling::Gap;
    let default = TrainConfig::default_preset();
    // GAP steps are short: more of them for a steady figure.
    let heads = [
        ("default preset", default, 60),
        ("blog: flatten, SGD+momentum, batch 32", blog, 12),
        ("gap, Adam, batch 32", gap_adam, 60),
    ];
    // (backend, incept's fused optimizer?)
    let variants = [(Backend::Flex, true), (Backend::Flex, false), (Backend::Ndarray, true)];
    println!("{:40} {:>26} {:>10}", "head", "backend, optimizer", "samples/s");
    for (head_index, (name, config, steps)) in
        heads.into_iter().enumerate().filter(|(_, (name, ..))| name.contains(&only))
    {
        let mut rates = Vec::new();
        let chosen = variants
            .iter()
            .filter(|(backend, _)| only_backend.as_deref().is_none_or(|o| o == backend.name()));
        for (index, &(backend, fused_optimizer)) in chosen.enumerate() {
            let request = TrainRequest {
                cache: cache.clone(),
                run_dir: dir.join(format!("head{head_index}-{index}")),
                config: config.clone(),
                resume: false,
                backend: Some(backend),
                max_steps: Some(steps),
                fused_optimizer,
                verbose: false,
            };
            let report = incept_head::train(&request, &AtomicBool::new(false))?;
            let optimizer = if fused_optimizer { "fused" } else { "Burn's" };
            let label = format!("{}, {optimizer}", backend.name());
            println!("{name:40} {label:>26} {:>10.1}", report.samples_per_second);
            rates.push(report.samples_per_second);
        }
        if let [fused, burns, ndarray] = rates[..] {
            println!("{:40} {:>26} {:>10.2}", "", "fused / Burn's optimizer", fused / burns);
            println!("{:40} {:>26} {:>10.2}", "", "flex / ndarray (fused)", fused / ndarray);
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
