//! `just bench-stream CACHE [BUDGET_MIB]`: training from a cache streamed from disk against the
//! same head held in memory, side by side in one run: the recommended head (`--preset
//! bilinear`), the default (averages) and the flatten head (`--preset blog`; see `HEADS`), in
//! samples/s over the training pass's wall time (reading included; opening the cache, which
//! loads it or pools it once, apart), with
//! the peak resident memory of each (every measurement is a child process of its own, so peaks
//! do not mix).
//!
//! The streamed runs get `--memory-budget-mib BUDGET_MIB` (default 256). The in-memory runs get
//! an unlimited budget; when a head's features would not fit in a quarter of the machine's available
//! memory (a flatten head on a large cache), its in-memory run trains on an evenly strided
//! subset of the cache's samples written to a temporary cache instead: samples/s in memory do
//! not depend on how many samples there are, and the line says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use incept_cache::{Cache, CacheWriter, Sample};
use incept_head::{OptimizerImplementation, Pooling, TrainConfig, TrainRequest};

/// Budget of the streamed runs, MiB, when none is given.
const DEFAULT_BUDGET_MIB: usize = 256;
/// The in-memory runs' budget: more than any machine has.
const UNLIMITED_MIB: usize = 1 << 30;
/// The heads measured: the recommended one (`--preset bilinear`), the default (averages) and
/// the flatten head (`--preset blog`), with the steps each takes (`usize::MAX`: one epoch). The
/// flatten head trains at under 100 samples/s on 2 cores: a few hundred steps give a steady
/// figure, as a whole epoch of a large cache would take a quarter of an hour.
const HEADS: [(&str, usize); 3] =
    [("bilinear", usize::MAX), ("default", usize::MAX), ("blog", FLATTEN_STEPS)];
const FLATTEN_STEPS: usize = 300;
/// Samples copied per read when writing the strided subset.
const COPY_BLOCK: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        return child(&args[1..]);
    }
    let Some(cache_path) = args.first().map(PathBuf::from) else {
        return Err("usage: bench_stream CACHE [BUDGET_MIB]".into());
    };
    let budget_mib: usize = match args.get(1) {
        Some(text) => text.parse().map_err(|_| format!("BUDGET_MIB {text:?} is not a number"))?,
        None => DEFAULT_BUDGET_MIB,
    };
    let cache = Cache::open(&cache_path)?;
    let dir = std::env::temp_dir().join(format!("incept-bench-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let available = available_memory_bytes()?;
    println!(
        "{}: {} samples of {}×{}×{} maps, {:.1} GB on disk; streamed runs: --memory-budget-mib {budget_mib}; {:.1} GB available",
        cache_path.display(),
        cache.len(),
        cache.shape.height,
        cache.shape.width,
        cache.shape.channels,
        cache.stored_feature_bytes() as f64 / 1e9,
        available as f64 / 1e9,
    );
    println!(
        "{:28} {:>9} {:>9} {:>12} {:>10} {:>10} {:>9}",
        "head", "samples", "data", "samples/s", "steps only", "open (s)", "peak MiB"
    );
    for (preset, steps) in HEADS {
        let config = TrainConfig::preset(preset)?;
        let kept_bytes = kept_values(&config, &cache) * std::mem::size_of::<f32>();
        let fits = (available / 4) / kept_bytes.max(1);
        let (memory_cache, memory_samples, memory_note) = if fits >= cache.len() {
            (cache_path.clone(), cache.len(), String::new())
        } else {
            let subset = dir.join(format!("subset-{preset}.h5"));
            let written = write_strided_subset(&cache, &subset, fits)?;
            let note = format!(
                "; in memory: a strided subset of {written} samples (all of them need more memory)"
            );
            (subset, written, note)
        };
        let name = format!("{preset} ({})", pooling_name(&config));
        let memory = measure(&dir, preset, &memory_cache, UNLIMITED_MIB, steps, "memory")?;
        memory.print(&name, "memory");
        let streamed = measure(&dir, preset, &cache_path, budget_mib, steps, "streamed")?;
        streamed.print(&name, "disk");
        if !streamed.streaming {
            println!("  the features fit the budget: nothing was streamed; give a smaller one");
        }
        // What each run holds beyond its data (the budget, or the features in memory): the
        // head's weights, optimizer state and graph, the same whichever way the data come.
        let features_mib = (memory_samples * kept_bytes) as f64 / (1 << 20) as f64;
        println!(
            "  streamed / in memory: {:.2}× samples/s. Peak memory beyond the data: {} MiB streamed (over the {budget_mib} MiB budget), {:.0} MiB in memory (over {features_mib:.0} MiB of features){memory_note}",
            streamed.wall / memory.wall,
            streamed.peak_mib as i64 - budget_mib as i64,
            memory.peak_mib as f64 - features_mib,
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// What one child measured.
struct Measured {
    samples: usize,
    wall: f64,
    steps: f64,
    open_seconds: f64,
    streaming: bool,
    peak_mib: u64,
}

impl Measured {
    fn print(&self, name: &str, data: &str) {
        println!(
            "{name:28} {:>9} {data:>9} {:>12.1} {:>10.1} {:>10.1} {:>9}",
            self.samples, self.wall, self.steps, self.open_seconds, self.peak_mib
        );
    }
}

/// Runs one measurement in a child process (this program with `--child`) and reads its line.
fn measure(
    dir: &Path,
    preset: &str,
    cache: &Path,
    budget_mib: usize,
    steps: usize,
    label: &str,
) -> Result<Measured, Box<dyn std::error::Error>> {
    let run_dir = dir.join(format!("{preset}-{label}"));
    let out = Command::new(std::env::current_exe()?)
        .arg("--child")
        .arg(preset)
        .arg(cache)
        .arg(budget_mib.to_string())
        .arg(steps.to_string())
        .arg(&run_dir)
        .output()?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!("the {preset} {label} run failed: {}", stderr.trim()).into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = stdout
        .lines()
        .find_map(|line| line.strip_prefix("measured\t"))
        .ok_or("the child printed no measurement")?
        .split('\t')
        .collect();
    let [samples, wall, steps, open_seconds, streaming, peak_mib] = fields[..] else {
        return Err(format!("unreadable measurement {fields:?}").into());
    };
    Ok(Measured {
        samples: samples.parse()?,
        wall: wall.parse()?,
        steps: steps.parse()?,
        open_seconds: open_seconds.parse()?,
        streaming: streaming == "true",
        peak_mib: peak_mib.parse()?,
    })
}

/// The child: one epoch of `preset` on `cache` with `budget_mib`, no validation; prints one
/// `measured` line with its peak resident memory.
fn child(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [preset, cache, budget_mib, steps, run_dir] = args else {
        return Err("usage: bench_stream --child PRESET CACHE BUDGET_MIB STEPS RUN_DIR".into());
    };
    incept_core::allocator::keep_freed_memory();
    let mut config = TrainConfig::preset(preset)?;
    config.epochs = 1;
    config.memory_budget_mib = budget_mib.parse()?;
    let request = TrainRequest {
        cache: PathBuf::from(cache),
        run_dir: PathBuf::from(run_dir),
        config,
        resume: false,
        backend: None,
        verbose: false,
    };
    let rate =
        incept_head::training_rate(&request, steps.parse()?, OptimizerImplementation::Fused)?;
    println!(
        "measured\t{}\t{}\t{}\t{}\t{}\t{}",
        rate.samples,
        rate.wall,
        rate.steps,
        rate.open_seconds,
        rate.streaming,
        peak_resident_mib()?
    );
    Ok(())
}

/// Values a head keeps of each sample (what the store holds): maps, averages or pooled.
fn kept_values(config: &TrainConfig, cache: &Cache) -> usize {
    match config.head.pooling {
        Pooling::Bilinear => {
            let dimensions = config.head.bilinear_dimensions;
            dimensions * (dimensions + 1) / 2
        }
        Pooling::Flatten | Pooling::Avgmax => cache.shape.len(),
        Pooling::Gap => cache.shape.channels,
    }
}

fn pooling_name(config: &TrainConfig) -> String {
    format!("{:?}", config.head.pooling).to_lowercase()
}

/// Writes every k-th sample of `cache` (k chosen so that at most `wanted` are written, all
/// classes kept) to a new cache at `path`; returns how many.
fn write_strided_subset(
    cache: &Cache,
    path: &Path,
    wanted: usize,
) -> Result<usize, Box<dyn std::error::Error>> {
    let stride = cache.len().div_ceil(wanted.max(1));
    let mut writer = CacheWriter::open(path, cache.settings.clone(), true)?;
    let map_len = cache.shape.len();
    let mut written = 0;
    let mut start = 0;
    while start < cache.len() {
        let count = COPY_BLOCK.min(cache.len() - start);
        let block = cache.read_block(start, count)?;
        let values = block.as_slice().ok_or("non-contiguous block")?;
        let samples = (start..start + count)
            .filter(|index| index % stride == 0)
            .map(|index| -> Result<Sample, Box<dyn std::error::Error>> {
                Ok(Sample {
                    source: cache.source_path(index).to_owned(),
                    class: cache.classes[cache.labels[index] as usize].clone(),
                    variant: u32::try_from(cache.variant[index])?,
                    features: values[(index - start) * map_len..(index - start + 1) * map_len]
                        .to_vec(),
                })
            })
            .collect::<Result<Vec<Sample>, _>>()?;
        written += samples.len();
        if !samples.is_empty() {
            writer.write_segment(&samples, cache.shape)?;
        }
        start += count;
    }
    writer.finish()?;
    Ok(written)
}

/// `MemAvailable` of /proc/meminfo, bytes.
fn available_memory_bytes() -> Result<usize, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    kibibytes_field(&text, "MemAvailable:").map(|kib| kib * 1024)
}

/// This process's peak resident memory (`VmHWM`), MiB.
fn peak_resident_mib() -> Result<u64, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string("/proc/self/status")?;
    Ok(kibibytes_field(&text, "VmHWM:")? as u64 / 1024)
}

fn kibibytes_field(text: &str, name: &str) -> Result<usize, Box<dyn std::error::Error>> {
    let line = text.lines().find(|l| l.starts_with(name)).ok_or(format!("no {name} line"))?;
    let number = line[name.len()..].trim().trim_end_matches("kB").trim();
    Ok(number.parse()?)
}
