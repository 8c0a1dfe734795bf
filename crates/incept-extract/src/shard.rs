//! One shard of a plan, run by any batch engine; the plan's status; the merge of its shards.
//!
//! # `PLAN_DIR/shards/` (a contract)
//! **docs/FORMATS.md, section 2, is its specification** (file names, the marker's fields, the
//! JSON of `incept status`), checked by `crates/incept-cli/tests/formats.rs`. In short:
//! `shard-IIIII-of-SSSSS.h5` (+ `.h5.parts/`, `.h5.lock`) is the shard's cache, a complete cache
//! written like any `incept extract` output; `shard-IIIII-of-SSSSS.done.json` ([`Marker`]) is
//! the completion marker, written last, atomically; `shard-IIIII-of-SSSSS.lock` is held while a
//! process works on the shard, and a second process on the same index (a scheduler retry, a
//! duplicate pod) waits for it, then finds the marker.
//!
//! A finished shard run again exits at once and touches nothing; a killed one resumes from its
//! segments; exit status 2 ([`Error::is_permanent`]) means retrying cannot help.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use incept_cache::{Cache, CacheWriter, MergeSummary};
use serde::{Deserialize, Serialize};

use crate::pipeline::{ExtractConfig, ExtractReport, extract_listed};
use crate::plan::{Plan, array_syntax};
use crate::{Error, Result};

pub const SHARDS_DIR: &str = "shards";
/// Environment variables that carry an array task's index, in the order they are looked at:
/// Slurm job arrays, Kubernetes Indexed Jobs, AWS Batch array jobs.
pub const INDEX_VARIABLES: [&str; 3] =
    ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// Which shard to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardIndex {
    Given(usize),
    /// From the engine's environment ([`INDEX_VARIABLES`]) plus an offset.
    Auto {
        offset: usize,
    },
}

impl ShardIndex {
    /// The index this process should run.
    pub fn resolve(self) -> Result<usize> {
        match self {
            ShardIndex::Given(index) => Ok(index),
            ShardIndex::Auto { offset } => {
                for name in INDEX_VARIABLES {
                    if let Ok(value) = std::env::var(name) {
                        let index = value.trim().parse::<usize>().map_err(|_| {
                            Error::ShardIndex(format!("{name}={value:?} is not a shard index"))
                        })?;
                        return Ok(index + offset);
                    }
                }
                Err(Error::ShardIndex(format!(
                    "--shard auto: none of {} is set; run under a job array or pass --shard I",
                    INDEX_VARIABLES.join(", ")
                )))
            }
        }
    }
}

/// The completion marker of a shard; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub plan_id: String,
    pub shard: usize,
    pub shards: usize,
    pub rows: usize,
    pub skipped: usize,
    pub settings: MarkerSettings,
    pub finished: String,
    pub host: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarkerSettings {
    pub layer: String,
    pub copies: u32,
    pub seed: u64,
    pub dtype: String,
    pub model_sha256: String,
}

/// The files of shard `index` of `plan`.
#[derive(Clone, Debug)]
pub struct ShardFiles {
    pub cache: PathBuf,
    pub marker: PathBuf,
    pub lock: PathBuf,
}

pub fn shard_files(plan_dir: &Path, index: usize, shards: usize) -> ShardFiles {
    let stem = plan_dir.join(SHARDS_DIR).join(format!("shard-{index:05}-of-{shards:05}"));
    let with = |suffix: &str| {
        let mut name = stem.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    ShardFiles { cache: with(".h5"), marker: with(".done.json"), lock: with(".lock") }
}

/// Reads a marker and checks that it belongs to `plan` and its file is there.
fn read_marker(plan: &Plan, files: &ShardFiles) -> Result<Option<Marker>> {
    let text = match std::fs::read_to_string(&files.marker) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::Io { path: files.marker.clone(), source }),
    };
    let foreign = |reason: String| Error::ForeignMarker { path: files.marker.clone(), reason };
    let marker: Marker = serde_json::from_str(&text)
        .map_err(|e| foreign(format!("not a marker written by incept ({e})")))?;
    if marker.plan_id != plan.plan_id || marker.shards != plan.shards {
        return Err(foreign(format!(
            "written for plan {} ({} shards), this plan is {} ({} shards)",
            marker.plan_id, marker.shards, plan.plan_id, plan.shards
        )));
    }
    if marker.settings.model_sha256 != plan.model_sha256 {
        return Err(foreign("written with another model".into()));
    }
    if marker.rows > 0 && !files.cache.exists() {
        return Err(Error::MarkerWithoutShard {
            marker: files.marker.clone(),
            shard: files.cache.clone(),
        });
    }
    Ok(Some(marker))
}

/// What running a shard did.
#[derive(Debug)]
pub enum ShardOutcome {
    /// Finished earlier (by this or another process): nothing touched.
    AlreadyDone(Marker),
    Done {
        marker: Marker,
        report: ExtractReport,
    },
    Interrupted(ExtractReport),
}

/// Runs shard `index` of the plan in `plan_dir`; `worker` gives the machine options (batch
/// size, device, threads, decoding, segment size), the plan everything that decides the values.
pub fn run_shard(
    plan_dir: &Path,
    index: ShardIndex,
    worker: &ExtractConfig,
    interrupted: &AtomicBool,
) -> Result<ShardOutcome> {
    let started = Instant::now();
    let plan = Plan::load(plan_dir)?;
    let index = index.resolve()?;
    if index >= plan.shards {
        return Err(Error::ShardIndex(format!(
            "shard {index} is out of range: {} has {} shards (0..={})",
            plan_dir.join(crate::plan::PLAN_FILE).display(),
            plan.shards,
            plan.shards - 1
        )));
    }
    let files = shard_files(plan_dir, index, plan.shards);
    if let Some(marker) = read_marker(&plan, &files)? {
        return Ok(ShardOutcome::AlreadyDone(marker));
    }
    let folder = plan_dir.join(SHARDS_DIR);
    std::fs::create_dir_all(&folder)
        .map_err(|source| Error::Io { path: folder.clone(), source })?;
    let _lock = incept_core::lock::WriterLock::acquire_waiting(&files.lock, &files.cache)?;
    // Another process may have finished it while this one waited.
    if let Some(marker) = read_marker(&plan, &files)? {
        return Ok(ShardOutcome::AlreadyDone(marker));
    }
    let config = plan.extract_config(worker, files.cache.clone())?;
    let model = crate::pipeline::ModelLoad::start(&config);
    let model_sha256 = crate::pipeline::model_sha256(&config)?;
    if model_sha256 != plan.model_sha256 {
        return Err(Error::PlanInvalid {
            path: config.model.clone(),
            reason: format!(
                "this model (sha256 {model_sha256}) is not the one planned ({}); restore it or \
                 make a new plan",
                plan.model_sha256
            ),
        });
    }
    let settings = plan.settings()?;
    let mut writer = CacheWriter::open(&files.cache, settings, false)?;
    writer.set_compression(config.compression);
    writer.set_data_folder(&config.data_dir)?;
    let images = plan.shard_images(index);
    // What is on disk must be this shard's work (left by another plan, it is not).
    let planned: std::collections::HashSet<&str> =
        images.iter().map(|i| i.relative.as_str()).collect();
    if let Some(stray) = writer.done_sources().find(|source| !planned.contains(source)) {
        return Err(Error::ForeignMarker {
            path: files.cache.clone(),
            reason: format!("holds {stray}, which is not a photo of shard {index} of this plan"),
        });
    }
    eprintln!(
        "shard {index} of {} (plan {}): photos {:?} of {}",
        plan.shards,
        plan.plan_id,
        plan.shard_range(index),
        plan.photos.len()
    );
    let report = match extract_listed(&config, writer, &images, started, interrupted, model) {
        // Every photo of the shard was deleted or unreadable: done, with no rows.
        Err(Error::NothingExtracted { skipped, .. }) if skipped == images.len() => {
            eprintln!("shard {index}: none of its {skipped} photos could be read; done, empty");
            let skipped = vec![String::new(); skipped];
            ExtractReport { images: images.len(), skipped, ..Default::default() }
        }
        other => other?,
    };
    if report.interrupted {
        return Ok(ShardOutcome::Interrupted(report));
    }
    let marker = Marker {
        plan_id: plan.plan_id.clone(),
        shard: index,
        shards: plan.shards,
        rows: report.samples_total,
        skipped: report.skipped.len(),
        settings: MarkerSettings {
            layer: plan.layer.clone(),
            copies: plan.copies,
            seed: plan.seed,
            dtype: plan.dtype.clone(),
            model_sha256: plan.model_sha256.clone(),
        },
        finished: incept_core::now_rfc3339(),
        host: incept_core::atomic::host_name(),
    };
    let mut text = serde_json::to_string_pretty(&marker)
        .map_err(|e| Error::Pipeline(format!("marker: {e}")))?;
    text.push('\n');
    incept_core::write_atomically(&files.marker, text.as_bytes())?;
    Ok(ShardOutcome::Done { marker, report })
}

/// One shard's state in [`status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    Done,
    /// Started (files on disk) but without its marker: killed, failed or still running.
    Partial,
    Missing,
}

/// What `incept status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct PlanStatus {
    pub plan_id: String,
    pub shards: usize,
    pub done: usize,
    pub partial: usize,
    pub missing: usize,
    /// Rows of finished shards plus rows in the segments of partial ones.
    pub rows: usize,
    /// Indices not done, in array syntax (`3,17,203-205`): what to resubmit.
    pub missing_array: String,
    pub states: Vec<ShardState>,
    /// Problems found (a foreign marker, a marker without its file): one line each.
    pub problems: Vec<String>,
}

/// Reads the state of every shard of the plan in `plan_dir`.
pub fn status(plan_dir: &Path) -> Result<PlanStatus> {
    let plan = Plan::load(plan_dir)?;
    let mut states = Vec::with_capacity(plan.shards);
    let mut rows = 0;
    let mut problems = Vec::new();
    for index in 0..plan.shards {
        let files = shard_files(plan_dir, index, plan.shards);
        let state = match read_marker(&plan, &files) {
            Ok(Some(marker)) => {
                rows += marker.rows;
                ShardState::Done
            }
            Ok(None) => {
                let pending = incept_cache::rows_on_disk(&files.cache);
                rows += pending;
                if files.cache.exists() || pending > 0 {
                    ShardState::Partial
                } else {
                    ShardState::Missing
                }
            }
            Err(error) => {
                problems.push(error.to_string());
                ShardState::Partial
            }
        };
        states.push(state);
    }
    let not_done: Vec<usize> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != ShardState::Done)
        .map(|(i, _)| i)
        .collect();
    Ok(PlanStatus {
        plan_id: plan.plan_id,
        shards: plan.shards,
        done: states.iter().filter(|s| **s == ShardState::Done).count(),
        partial: states.iter().filter(|s| **s == ShardState::Partial).count(),
        missing: states.iter().filter(|s| **s == ShardState::Missing).count(),
        rows,
        missing_array: array_syntax(&not_done),
        states,
        problems,
    })
}

/// Merges the finished shards of the plan in `plan_dir` into one cache at `output`: an index over
/// their pieces, or (`copy`) one self-contained file. Refuses, listing them, if any shard is not
/// done, or if a shard's cache does not hold what its marker says.
pub fn merge(plan_dir: &Path, output: &Path, copy: bool) -> Result<MergeSummary> {
    let plan = Plan::load(plan_dir)?;
    let settings = plan.settings()?;
    let mut caches = Vec::with_capacity(plan.shards);
    let mut not_done = Vec::new();
    let mut problems = Vec::new();
    for index in 0..plan.shards {
        let files = shard_files(plan_dir, index, plan.shards);
        match read_marker(&plan, &files) {
            Ok(Some(marker)) if marker.rows == 0 => {}
            Ok(Some(marker)) => match Cache::open(&files.cache) {
                Ok(cache) if cache.len() == marker.rows && cache.settings == settings => {
                    caches.push(cache)
                }
                Ok(cache) => problems.push(format!(
                    "{}: holds {} rows, its marker says {} (or other settings); remove the marker, \
                     the .h5 and its .h5.parts/, and run the shard again",
                    files.cache.display(),
                    cache.len(),
                    marker.rows
                )),
                Err(error) => problems.push(format!(
                    "{error}; remove {} and run the shard again",
                    files.marker.display()
                )),
            },
            Ok(None) => not_done.push(index),
            Err(error) => problems.push(error.to_string()),
        }
    }
    if !not_done.is_empty() || !problems.is_empty() {
        return Err(Error::ShardsIncomplete {
            plan: plan_dir.to_path_buf(),
            missing: array_syntax(&not_done),
            problems: problems.join("\n  "),
        });
    }
    let summary = if copy {
        incept_cache::copy_into_one_file(output, &caches)?
    } else {
        incept_cache::index_over(output, &caches)?
    };
    Ok(summary)
}
