//! A plan for sharded extraction, made once by `incept plan` and read by every shard.
//!
//! # `PLAN_DIR/plan.json` (a contract)
//! **docs/FORMATS.md, section 2, is its specification** (every field and its type), checked
//! against a real plan by `crates/incept-cli/tests/formats.rs`. In short: `format`
//! (`"incept-plan/1"`), `plan_id` (a hash of every field but `created`: two plans with the same
//! id describe the same work), the data folder and model as planned, the extraction settings,
//! `shards` (S), `classes`, and `photos` sorted by path: shard `i` covers photos
//! `⌊i·P/S⌋ .. ⌊(i+1)·P/S⌋` of the P photos, a photo's position being its global index.
//!
//! Workers never list the data folder: the plan fixes the photos. A photo deleted after
//! planning is skipped and counted by its shard, as `incept extract` skips unreadable files.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::augment::Augmentation;
use crate::pipeline::{ExtractConfig, settings_from};
use crate::scan::{ImageFile, scan};
use crate::{Error, Result};

pub const PLAN_FILE: &str = "plan.json";
const PLAN_FORMAT: &str = "incept-plan/1";

/// One planned photo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPhoto {
    pub path: String,
    pub class: String,
}

/// The contents of `plan.json`; see the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    pub plan_id: String,
    pub created: String,
    pub data_dir: PathBuf,
    pub model: PathBuf,
    pub model_sha256: String,
    pub layer: String,
    pub shards: usize,
    pub copies: u32,
    pub seed: u64,
    pub dtype: String,
    pub augmentation: Augmentation,
    pub augmentation_version: u32,
    pub classes: Vec<String>,
    pub photos: Vec<PlannedPhoto>,
}

/// What `incept plan` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanOutcome {
    Created,
    /// The same plan was already there: nothing written.
    Unchanged,
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

impl Plan {
    /// Lists the photos of `config.data_dir` and fixes the work of `shards` shards with the
    /// extraction settings of `config` (its `output` is not used).
    pub fn make(config: &ExtractConfig, shards: usize) -> Result<Plan> {
        let found = scan(&config.data_dir)?;
        for warning in &found.warnings {
            eprintln!("warning: {warning}");
        }
        if found.images.is_empty() {
            return Err(Error::NoImages { path: config.data_dir.clone() });
        }
        if shards == 0 || shards > found.images.len() {
            return Err(Error::PlanInvalid {
                path: config.data_dir.clone(),
                reason: format!(
                    "--shards {shards}: choose between 1 and the number of photos ({})",
                    found.images.len()
                ),
            });
        }
        let model_sha256 = crate::pipeline::model_sha256(config)?;
        let mut plan = Plan {
            format: PLAN_FORMAT.to_owned(),
            plan_id: String::new(),
            created: incept_core::now_rfc3339(),
            data_dir: absolute(&config.data_dir)?,
            model: absolute(&config.model)?,
            model_sha256,
            layer: config.layer.name().to_owned(),
            shards,
            copies: config.copies,
            seed: config.seed,
            dtype: config.dtype.as_str().to_owned(),
            augmentation: config.augmentation.clone(),
            augmentation_version: crate::augment::ALGORITHM_VERSION,
            classes: found.classes.clone(),
            photos: found
                .images
                .iter()
                .map(|i| PlannedPhoto { path: i.relative.clone(), class: i.class.clone() })
                .collect(),
        };
        plan.plan_id = plan.compute_id();
        Ok(plan)
    }

    /// The hash of everything but `plan_id` and `created`.
    fn compute_id(&self) -> String {
        let mut copy = self.clone();
        copy.plan_id = String::new();
        copy.created = String::new();
        // Serialising plain data cannot fail; an empty string would still give a stable id.
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        format!("{:016x}", incept_core::stable_hash(&[&bytes]))
    }

    /// Writes the plan as `plan_dir/plan.json`, or does nothing if the same plan is there;
    /// refuses, naming what differs, if another plan is.
    pub fn save(&self, plan_dir: &Path) -> Result<PlanOutcome> {
        let path = plan_dir.join(PLAN_FILE);
        if path.exists() {
            let existing = Plan::load(plan_dir)?;
            if existing.plan_id == self.plan_id {
                return Ok(PlanOutcome::Unchanged);
            }
            return Err(Error::PlanDiffers { path, differences: existing.differences(self) });
        }
        std::fs::create_dir_all(plan_dir)
            .map_err(|source| Error::Io { path: plan_dir.to_path_buf(), source })?;
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::PlanInvalid { path: path.clone(), reason: e.to_string() })?;
        text.push('\n');
        incept_core::write_atomically(&path, text.as_bytes())?;
        Ok(PlanOutcome::Created)
    }

    /// Reads and checks `plan_dir/plan.json`.
    pub fn load(plan_dir: &Path) -> Result<Plan> {
        let path = plan_dir.join(PLAN_FILE);
        let invalid = |reason: String| Error::PlanInvalid { path: path.clone(), reason };
        let text = std::fs::read_to_string(&path).map_err(|error| {
            invalid(format!(
                "{error}; make one with `incept plan DATA_DIR -o {}`",
                plan_dir.display()
            ))
        })?;
        let plan: Plan = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("not a plan made by incept ({e})")))?;
        if plan.format != PLAN_FORMAT {
            return Err(invalid(format!(
                "format {:?}, this incept reads {PLAN_FORMAT:?}",
                plan.format
            )));
        }
        if plan.compute_id() != plan.plan_id {
            return Err(invalid(
                "edited after planning (its plan_id does not match); make a new plan".into(),
            ));
        }
        if let Err(reason) = plan.augmentation.check() {
            return Err(invalid(format!("augmentation: {reason}; make a new plan")));
        }
        if plan.shards == 0 || plan.shards > plan.photos.len() {
            return Err(invalid(format!(
                "{} shards for {} photos",
                plan.shards,
                plan.photos.len()
            )));
        }
        Ok(plan)
    }

    /// Names the fields in which `wanted` differs from `self` (the plan on disk).
    pub fn differences(&self, wanted: &Plan) -> String {
        let mut out = Vec::new();
        let mut check = |name: &str, have: String, want: String| {
            if have != want {
                out.push(format!("{name}: plan has {have}, this run wants {want}"));
            }
        };
        check("shards", self.shards.to_string(), wanted.shards.to_string());
        check(
            "data_dir",
            self.data_dir.display().to_string(),
            wanted.data_dir.display().to_string(),
        );
        check("model_sha256", self.model_sha256.clone(), wanted.model_sha256.clone());
        check("layer", self.layer.clone(), wanted.layer.clone());
        check("copies", self.copies.to_string(), wanted.copies.to_string());
        check("seed", self.seed.to_string(), wanted.seed.to_string());
        check("dtype", self.dtype.clone(), wanted.dtype.clone());
        check(
            "augmentation",
            format!("{:?}", self.augmentation),
            format!("{:?}", wanted.augmentation),
        );
        if self.photos != wanted.photos {
            out.push(format!(
                "photos: plan lists {}, the data folder now holds {} (plan the new photos into \
                 another folder, or extract them into the merged cache with `incept extract`)",
                self.photos.len(),
                wanted.photos.len()
            ));
        }
        if out.is_empty() {
            out.push("model path or version of incept".into());
        }
        format!("{}; choose another plan folder, or remove this one to replan", out.join("; "))
    }

    /// The photo range of shard `index`.
    pub fn shard_range(&self, index: usize) -> std::ops::Range<usize> {
        let photos = self.photos.len();
        index * photos / self.shards..(index + 1) * photos / self.shards
    }

    /// The photos of shard `index`, as extraction takes them.
    pub fn shard_images(&self, index: usize) -> Vec<ImageFile> {
        self.photos[self.shard_range(index)]
            .iter()
            .map(|photo| ImageFile {
                path: self.data_dir.join(&photo.path),
                relative: photo.path.clone(),
                class: photo.class.clone(),
            })
            .collect()
    }

    fn layer(&self) -> Result<crate::Layer> {
        crate::Layer::parse(&self.layer).ok_or_else(|| Error::PlanInvalid {
            path: PathBuf::from(PLAN_FILE),
            reason: format!("unknown layer {:?}", self.layer),
        })
    }

    fn dtype(&self) -> Result<incept_cache::Dtype> {
        incept_cache::Dtype::parse(&self.dtype).ok_or_else(|| Error::PlanInvalid {
            path: PathBuf::from(PLAN_FILE),
            reason: format!("unknown dtype {:?}", self.dtype),
        })
    }

    /// Extraction settings for a shard: the plan's, with the worker's own machine options.
    pub fn extract_config(&self, worker: &ExtractConfig, output: PathBuf) -> Result<ExtractConfig> {
        Ok(ExtractConfig {
            data_dir: self.data_dir.clone(),
            output,
            model: self.model.clone(),
            layer: self.layer()?,
            copies: self.copies,
            augmentation: self.augmentation.clone(),
            seed: self.seed,
            dtype: self.dtype()?,
            overwrite: false,
            ..worker.clone()
        })
    }

    /// The cache settings every shard of this plan has.
    pub fn settings(&self) -> Result<incept_cache::Settings> {
        Ok(settings_from(
            self.copies,
            &self.augmentation,
            self.seed,
            self.dtype()?,
            self.layer()?,
            self.model_sha256.clone(),
        ))
    }
}

/// Compresses sorted indices into the array syntax of Slurm, Kubernetes and AWS Batch users:
/// `3,17,203-205`.
pub fn array_syntax(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_syntax_joins_runs() {
        assert_eq!(array_syntax(&[3, 17, 203, 204, 205]), "3,17,203-205");
        assert_eq!(array_syntax(&[0, 1]), "0-1");
        assert_eq!(array_syntax(&[]), "");
    }
}
