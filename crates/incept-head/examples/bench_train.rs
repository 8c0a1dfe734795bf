//! `just bench-train`: training samples/s of the default head and the blog preset on each
//! Burn CPU backend, on one synthetic 5×5×2048 cache, measured in one run; and, when PyTorch is
//! importable, PyTorch's rate for the same heads right after incept's
//! (`scripts/bench_train_torch.py`, with the interpreter in `INCEPT_TORCH_PYTHON`, default
//! `python3`). PyTorch is no dependency: without it only incept's figures print, and a line says
//! how to get it.

use std::path::Path;
use std::process::Command;

use burn::module::Module;
use incept_cache::{CacheWriter, Dtype, MapShape, Sample, Settings};
use incept_head::{
    Backend, OptimizerImplementation, OptimizerKind, Pooling, TrainConfig, TrainRequest,
};
use incept_head::{Head, InputShape};

const CLASSES: usize = 5;
const PER_CLASS: usize = 160;
/// The PyTorch side: the same heads, optimizers, batches and synthetic maps.
const TORCH_SCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench_train_torch.py");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    incept_core::allocator::keep_freed_memory();
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
    let variants = [
        (Backend::Flex, OptimizerImplementation::Fused),
        (Backend::Flex, OptimizerImplementation::Burn),
        (Backend::Ndarray, OptimizerImplementation::Fused),
    ];
    let torch = Torch::find();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Torch::Found { python, version } = &torch {
        println!("PyTorch {version} ({python}), {threads} threads, after incept for each head");
    }
    println!("{:40} {:>32} {:>10}", "head", "backend, optimizer", "samples/s");
    for (head_index, (name, config, steps)) in
        heads.into_iter().enumerate().filter(|(_, (name, ..))| name.contains(&only))
    {
        let mut rates = Vec::new();
        let mut flex_fused = None;
        let chosen = variants
            .iter()
            .filter(|(backend, _)| only_backend.as_deref().is_none_or(|o| o == backend.name()));
        for (index, &(backend, implementation)) in chosen.enumerate() {
            let request = TrainRequest {
                cache: cache.clone(),
                run_dir: dir.join(format!("head{head_index}-{index}")),
                config: config.clone(),
                resume: false,
                backend: Some(backend),
                verbose: false,
            };
            let rate = incept_head::training_rate(&request, steps, implementation)?.steps;
            let optimizer = match implementation {
                OptimizerImplementation::Fused => "fused",
                OptimizerImplementation::Burn => "Burn's",
            };
            let label = format!("{}, {optimizer}", backend.name());
            println!("{name:40} {label:>32} {rate:>10.1}");
            rates.push(rate);
            if backend == Backend::Flex && implementation == OptimizerImplementation::Fused {
                flex_fused = Some(rate);
            }
        }
        if let [fused, burns, ndarray] = rates[..] {
            println!("{:40} {:>32} {:>10.2}", "", "fused / Burn's optimizer", fused / burns);
            println!("{:40} {:>32} {:>10.2}", "", "flex / ndarray (fused)", fused / ndarray);
        }
        let Torch::Found { python, .. } = &torch else { continue };
        let json = dir.join(format!("head{head_index}-torch.json"));
        match torch_rate(python, &json, name, &config, steps, threads) {
            Ok((rate, torch_parameters)) => {
                println!("{name:40} {:>32} {rate:>10.1}", "PyTorch (same cores, same head)");
                if let Some(fused) = flex_fused {
                    println!(
                        "{:40} {:>32} {:>10.2}",
                        "",
                        "incept flex fused / PyTorch",
                        fused / rate
                    );
                }
                let parameters = parameter_count(&config)?;
                if parameters == torch_parameters {
                    println!("{:40} {:>32} {parameters:>10}", "", "parameters (incept = PyTorch)");
                } else {
                    println!(
                        "{:40} parameters differ: incept {parameters}, PyTorch {torch_parameters}",
                        ""
                    );
                }
            }
            Err(error) => println!("{name:40} PyTorch failed: {error}"),
        }
    }
    if let Torch::Missing(reason) = &torch {
        println!(
            "PyTorch not found ({reason}), so no side-by-side figures. To get them without adding \
             it to the project, use a throwaway virtual environment: `python3 -m venv \
             /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch`, then \
             `INCEPT_TORCH_PYTHON=/tmp/torchvenv/bin/python just bench-train`."
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Whether the interpreter in `INCEPT_TORCH_PYTHON` (default `python3`) can import torch.
enum Torch {
    Found {
        python: String,
        version: String,
    },
    /// Why not, in a few words.
    Missing(String),
}

impl Torch {
    fn find() -> Self {
        let python = std::env::var("INCEPT_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
        let probe =
            Command::new(&python).args(["-c", "import torch; print(torch.__version__)"]).output();
        match probe {
            Ok(out) if out.status.success() => Torch::Found {
                version: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                python,
            },
            Ok(_) => Torch::Missing(format!("`{python}` cannot import torch")),
            Err(error) => Torch::Missing(format!("cannot run `{python}`: {error}")),
        }
    }
}

/// PyTorch's samples/s and parameter count for `config`'s head, trained as incept trains it:
/// the script gets the config as JSON and times `steps` steps after a few warm-up ones.
fn torch_rate(
    python: &str,
    json: &Path,
    name: &str,
    config: &TrainConfig,
    steps: usize,
    threads: usize,
) -> Result<(f64, usize), String> {
    let text = serde_json::to_string(config).map_err(|e| format!("config to JSON: {e}"))?;
    std::fs::write(json, text).map_err(|e| format!("{}: {e}", json.display()))?;
    let out = Command::new(python)
        .arg(TORCH_SCRIPT)
        .args(["--steps", &steps.to_string(), "--threads", &threads.to_string(), "--config"])
        .arg(json)
        .arg(name)
        .output()
        .map_err(|e| format!("cannot run `{python}`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(format!(
            "scripts/bench_train_torch.py exited with {}: {}",
            out.status,
            last.trim()
        ));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("torch\t"))
        .ok_or_else(|| "scripts/bench_train_torch.py printed no `torch` line".to_owned())?;
    let fields: Vec<&str> = line.split('\t').collect();
    match fields[..] {
        [_, rate, parameters] => Ok((
            rate.parse().map_err(|_| format!("unreadable rate {rate:?}"))?,
            parameters.parse().map_err(|_| format!("unreadable parameter count {parameters:?}"))?,
        )),
        _ => Err(format!("unreadable line from scripts/bench_train_torch.py: {line:?}")),
    }
}

/// Parameters of incept's head for `config` on the bench's 5×5×2048 maps (weights drawn lazily:
/// counting allocates nothing).
fn parameter_count(config: &TrainConfig) -> Result<usize, incept_head::Error> {
    let input = InputShape { height: 5, width: 5, channels: 2048 };
    Ok(Head::new(&config.head, input, CLASSES, &Backend::Flex.device()?).num_params())
}
