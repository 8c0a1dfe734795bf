//! `just bench-train`: training samples/s of the default head and the blog preset on each
//! Burn CPU backend, on one synthetic 5×5×2048 cache, measured in one run.

use std::sync::atomic::AtomicBool;

use incept_cache::{CacheWriter, Dtype, MapShape, Sample, Settings};
use incept_head::{Backend, OptimizerKind, Pooling, TrainConfig, TrainRequest};

const CLASSES: usize = 5;
const PER_CLASS: usize = 160;

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let heads = [
        ("default preset", default, 12),
        ("blog: flatten, SGD+momentum, batch 32", blog, 12),
        ("gap, Adam, batch 32", gap_adam, 18),
    ];
    println!("{:40} {:>18} {:>14}", "head", "backend", "samples/s");
    for (name, config, steps) in heads {
        let mut rates = Vec::new();
        for backend in [Backend::Flex, Backend::Ndarray] {
            let run_dir = dir.join(format!("{}-{}", backend.name(), rates.len() + name.len()));
            let request = TrainRequest {
                cache: cache.clone(),
                run_dir,
                config: config.clone(),
                resume: false,
                backend,
                max_steps: Some(steps),
                verbose: false,
            };
            let report = incept_head::train(&request, &AtomicBool::new(false))?;
            println!("{name:40} {:>18} {:>14.1}", backend.name(), report.samples_per_second);
            rates.push(report.samples_per_second);
        }
        println!("{:40} {:>18} {:>14.2}", "", "flex / ndarray", rates[0] / rates[1]);
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
