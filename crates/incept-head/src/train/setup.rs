//! Setting a training run up: its recipe, backend and data are checked before anything is
//! written (a refused run leaves its folder as it was), then the run folder is started or the
//! run resumed from its last finished epoch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use burn::prelude::*;
use incept_cache::Cache;

use super::loss::TrainingLoss;
use super::{OptimizerImplementation, TrainRequest};
use crate::backend::Backend;
use crate::config::Pooling;
use crate::config::{OptimizerKind, TrainConfig};
use crate::data::{
    Kept, Split, Store, class_photo_counts, class_sample_counts, empty_classes, split_all,
    split_by_fold, split_by_source, validation_samples,
};
use crate::model::{Head, InputShape};
use crate::optim::{Fused, Rule};
use crate::rebalance::{Rebalance, SKEW_RATIO, skew_ratio};
use crate::run_folder::{self, RunState, io, load_state};
use crate::{Error, Result};

/// A training run, set up: what stays fixed while it trains, and its `run.json` state.
pub(super) struct Run {
    pub run_dir: PathBuf,
    /// The recipe: the request's, or the resumed run's own (with a larger epoch count when
    /// extended, and the patience asked for).
    pub config: TrainConfig,
    pub backend: Backend,
    /// The training cache's classes, in label order.
    pub classes: Vec<String>,
    pub shape: InputShape,
    pub split: Split,
    /// The training cache's samples (and its validation samples without a validation cache).
    pub store: Store,
    validation_store: Option<Store>,
    pub state: RunState,
    /// The training device: the backend's, with automatic differentiation.
    pub device: Device,
    /// The training loss, as `label_smoothing` and `rebalance` say.
    pub loss: TrainingLoss,
    /// How each validation photo's loss weighs, by class (`None`: the plain mean).
    pub validation_weights: Option<Vec<f64>>,
}

impl Run {
    /// Where the validation samples are: the validation cache's store, else the training one.
    pub fn validation_store(&self) -> &Store {
        self.validation_store.as_ref().unwrap_or(&self.store)
    }

    /// The backend's device without automatic differentiation, for inference.
    pub fn validation_device(&self) -> Device {
        self.device.clone().inner()
    }
}

/// The caches, the split of their samples, and the state a new run on them would start from.
struct Data {
    split: Split,
    cache: Cache,
    validation_cache: Option<Cache>,
    new_run: RunState,
}

/// Sets the run of `request` up: checks its recipe, backend and caches, then starts its run
/// folder, or loads its last finished epoch when resuming. Returns the run with the model and
/// optimizer to train on.
pub(super) fn open(
    request: &TrainRequest,
    implementation: OptimizerImplementation,
) -> Result<(Run, Head, ModuleOptimizer)> {
    let run_dir = &request.run_dir;
    let previous = if request.resume { Some(load_state(run_dir)?) } else { None };
    if previous.is_none() && run_folder::holds_a_run(run_dir) {
        return Err(Error::RunExists { path: run_dir.clone() });
    }
    let (mut config, extension) = match &previous {
        Some(state) => crate::resume::resume_config(run_dir, state, &request.config)?,
        None => (request.config.clone(), None),
    };
    config.validate()?;
    let backend = choose_backend(run_dir, previous.as_ref(), request.backend)?;
    // A backend this build lacks is refused before any cache is read.
    let device = backend.device()?.autodiff();
    let data = open_data(&request.cache, &config, previous.as_ref(), backend)?;
    let classes = data.new_run.classes.clone();
    // A new run's `auto` is resolved from its training photos and saved resolved, so a resume
    // trains as the run began; the loss weighs by training samples per class.
    if config.rebalance == Rebalance::Auto {
        let photos = class_photo_counts(&data.cache, &data.split.train, classes.len());
        config.rebalance = config.rebalance.resolve(&photos);
        announce_skew(&data.cache.classes, &photos, config.rebalance);
    }
    let train_counts = class_sample_counts(&data.cache, &data.split.train, classes.len());
    let [height, width, channels] = data.new_run.input_shape;
    let shape = InputShape { height, width, channels };

    let resuming = previous.is_some();
    let mut state = previous.unwrap_or_else(|| data.new_run.clone());
    if state.classes != classes || state.input_shape != data.new_run.input_shape {
        return Err(Error::NotARun {
            path: run_dir.clone(),
            reason: "it was trained on a cache with other classes or shapes".into(),
        });
    }
    let dimensions = config.head.bilinear_dimensions;
    if config.head.pooling == Pooling::Bilinear && dimensions > channels {
        return Err(Error::Config(format!(
            "{}: bilinear_dimensions {dimensions} is more than the maps' {channels} channels; set a smaller one in the [head] table of --config",
            request.cache.display()
        )));
    }
    device.seed(config.seed);
    let mut model = Head::new(&config.head, shape, classes.len(), &device);
    let mut optimizer = optimizer(&config, implementation);
    if resuming {
        (model, optimizer) =
            run_folder::load_last_checkpoint(model, optimizer, run_dir, &mut state)?;
    }
    // What can refuse the run (a damaged cache, a projection that cannot be fitted) comes before
    // its folder is written. A run killed before its first epoch has no weights yet: its
    // projection is fitted again (the same one: the same photos and seed).
    let kept = kept_for(&config, &mut model, &data, run_dir, state.completed_epochs > 0)?;
    let budget = config.memory_budget_mib.saturating_mul(1 << 20);
    let (spill, validation_spill) = run_folder::spill_paths(run_dir)?;
    let mut spilled = vec![(&data.cache, spill.as_path())];
    if let Some(other) = &data.validation_cache {
        spilled.push((other, validation_spill.as_path()));
    }
    Store::ensure_spill_space(&spilled, budget, &kept)?;
    let store = Store::open(data.cache, budget, kept.clone(), Some(&spill))?;
    let validation_store = match data.validation_cache {
        Some(other) => Some(Store::open(other, budget, kept, Some(&validation_spill))?),
        None => None,
    };
    if resuming {
        if let Some(extension) = &extension {
            crate::resume::record_extension(run_dir, &config)?;
            run_folder::reopen(run_dir, &mut state)?;
            eprintln!("{extension}");
        }
        run_folder::recover(run_dir, &state)?;
        eprintln!("resuming {} after epoch {}", run_dir.display(), state.completed_epochs);
    } else {
        run_folder::start(run_dir, &config, &state)?;
    }
    if store.is_streaming() {
        eprintln!(
            "cache larger than the memory budget ({} MiB): streaming it from disk",
            config.memory_budget_mib
        );
        if let Some(spill) = store.spill_path() {
            eprintln!(
                "the head's pooled features are read from {} (scratch, removed when training ends)",
                spill.display()
            );
        }
    }

    let loss = TrainingLoss::new(config.label_smoothing, config.rebalance, &train_counts, &device);
    let validation_weights = config.rebalance.validation_weights(&train_counts);
    let run = Run {
        run_dir: run_dir.clone(),
        config,
        backend,
        classes,
        shape,
        split: data.split,
        store,
        validation_store,
        state,
        device,
        loss,
        validation_weights,
    };
    Ok((run, model, optimizer))
}

/// The backend to train on: the one asked for (flex by default) for a new run; a resumed run
/// keeps its own, and asking for another is refused.
fn choose_backend(
    run_dir: &Path,
    previous: Option<&RunState>,
    wanted: Option<Backend>,
) -> Result<Backend> {
    match (previous, wanted) {
        (Some(state), Some(wanted)) if wanted != state.backend => Err(Error::ResumeChanges {
            path: run_dir.to_path_buf(),
            changes: format!(
                "--backend (run has {}, this asks {})",
                state.backend.name(),
                wanted.name()
            ),
        }),
        (Some(state), _) => Ok(state.backend),
        (None, wanted) => Ok(wanted.unwrap_or_default()),
    }
}

/// Opens the training cache (the resumed run's own, unchanged) and the validation cache if the
/// recipe names one, splits the samples and checks that every class can train and validate.
fn open_data(
    cache_path: &Path,
    config: &TrainConfig,
    previous: Option<&RunState>,
    backend: Backend,
) -> Result<Data> {
    let cache = Cache::open(cache_path)?;
    if let Some(state) = previous {
        crate::resume::check_same_cache(state, &cache)?;
    }
    let (split, validation_cache) = match &config.validation_cache {
        Some(path) => {
            let other = Cache::open(path)?;
            classes_must_match(&cache, &other)?;
            let split = Split {
                train: (0..cache.len()).collect(),
                validation: validation_samples(&other, config.tta),
            };
            (split, Some(other))
        }
        // A refit trains on every photo; a fold of a cross-validation validates on its K-th.
        None if config.refit_epochs > 0 => (split_all(&cache), None),
        None if config.fold > 0 => {
            (split_by_fold(&cache, config.folds, config.fold, config.tta), None)
        }
        None => (
            split_by_source(&cache, config.validation_split, config.tta, config.stratified_split),
            None,
        ),
    };
    let classes = &cache.classes;
    // Once per collection: a cross-validation's first fold warns, its other folds and refit
    // would only repeat it.
    if config.fold <= 1 && config.refit_epochs == 0 {
        warn_small_classes(&cache, &split);
    }
    if let Some(&class) = empty_classes(&cache, &split.train, classes.len()).first() {
        return Err(Error::EmptyClass { path: cache.path.clone(), class: classes[class].clone() });
    }
    let validation_source = validation_cache.as_ref().unwrap_or(&cache);
    // A refit validates on nothing, on purpose.
    let refit = config.refit_epochs > 0;
    let unvalidated = if refit {
        Vec::new()
    } else {
        empty_classes(validation_source, &split.validation, classes.len())
    };
    for class in unvalidated {
        eprintln!(
            "warning: {}: no validation photo of class {:?}; its recall will read 0 (raise --validation-split or add photos)",
            validation_source.path.display(),
            classes[class]
        );
    }
    if split.validation.is_empty() && !refit {
        return Err(Error::Config(
            "the validation split holds no photo; raise --validation-split".into(),
        ));
    }
    let canonical = std::fs::canonicalize(&cache.path).map_err(io(&cache.path))?;
    let new_run = RunState::new(&cache, canonical, backend);
    Ok(Data { split, cache, validation_cache, new_run })
}

/// A warning for each class with fewer than [`incept_core::FEW_PHOTOS`] photos, naming it.
fn warn_small_classes(cache: &Cache, split: &Split) {
    let classes = cache.classes.len();
    let trained = class_photo_counts(cache, &split.train, classes);
    let validated = class_photo_counts(cache, &split.validation, classes);
    for (class, name) in cache.classes.iter().enumerate() {
        let photos = trained[class] + validated[class];
        if photos < incept_core::FEW_PHOTOS {
            eprintln!(
                "warning: {}: class {name:?} has only {photos} photos ({} train, {} validate): its figures are unreliable; add photos of it",
                cache.path.display(),
                trained[class],
                validated[class]
            );
        }
    }
}

/// One line when `auto` turned the rebalancing on for classes of `photos` training photos:
/// the two classes behind it and what it chose.
fn announce_skew(classes: &[String], photos: &[usize], chosen: Rebalance) {
    let largest = photos.iter().enumerate().max_by_key(|(_, n)| **n);
    let smallest = photos.iter().enumerate().min_by_key(|(_, n)| **n);
    let (Some((largest, most)), Some((smallest, fewest)), false) =
        (largest, smallest, chosen == Rebalance::None)
    else {
        return;
    };
    eprintln!(
        "skewed classes: {} has {most} training photos, {} {fewest} ({:.0}:1, at least {SKEW_RATIO}:1): training with rebalance = \"{}\" (pass --rebalance none, or set rebalance = \"none\" in --config, to turn it off)",
        classes[largest],
        classes[smallest],
        skew_ratio(photos),
        chosen.name(),
    );
}

/// What the stores keep of each map: global-average heads train from the averaged maps,
/// bilinear heads from the pooled vectors (the projection fitted now for a new run, the saved
/// one when resuming), the others from the maps.
fn kept_for(
    config: &TrainConfig,
    model: &mut Head,
    data: &Data,
    run_dir: &Path,
    has_weights: bool,
) -> Result<Kept> {
    Ok(match config.head.pooling {
        Pooling::Gap => Kept::Averages,
        Pooling::Bilinear => {
            let projection = if has_weights {
                model.projection()?.ok_or_else(|| Error::NotARun {
                    path: run_dir.to_path_buf(),
                    reason: "a bilinear run whose weights hold no projection; train it again in a new --run-dir".into(),
                })?
            } else {
                let projection = crate::bilinear::fit_on_cache(
                    &data.cache,
                    &data.split.train,
                    config.head.bilinear_dimensions,
                    config.seed,
                )?;
                model.set_projection(&projection)?;
                projection
            };
            Kept::Bilinear(Arc::new(projection))
        }
        Pooling::Flatten | Pooling::Avgmax => Kept::Maps,
    })
}

fn classes_must_match(training: &Cache, other: &Cache) -> Result<()> {
    if training.classes == other.classes {
        return Ok(());
    }
    let missing: Vec<&String> =
        training.classes.iter().filter(|c| !other.classes.contains(c)).collect();
    let extra: Vec<&String> =
        other.classes.iter().filter(|c| !training.classes.contains(c)).collect();
    Err(Error::ClassesDiffer {
        path: other.path.clone(),
        differences: format!("missing {missing:?}, extra {extra:?}"),
    })
}

/// The optimizer of the recipe: incept's fused one or Burn's, the same rules.
fn optimizer(config: &TrainConfig, implementation: OptimizerImplementation) -> ModuleOptimizer {
    if implementation == OptimizerImplementation::Fused {
        let rule = match config.optimizer {
            OptimizerKind::Sgd => Rule::Sgd { momentum: config.momentum as f32 },
            OptimizerKind::Adam => Rule::Adam,
            OptimizerKind::Adamw => Rule::AdamW,
        };
        return Fused::new(rule, config.weight_decay as f32).into();
    }
    let decay = (config.weight_decay > 0.0)
        .then_some(WeightDecayConfig { penalty: config.weight_decay as f32 });
    match config.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_momentum((config.momentum > 0.0).then(|| {
                // No dampening: the momentum of Keras and PyTorch.
                MomentumConfig::new().with_momentum(config.momentum).with_dampening(0.0)
            }))
            .with_weight_decay(decay)
            .init(),
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Adamw => {
            AdamWConfig::new().with_weight_decay(config.weight_decay as f32).init()
        }
    }
}
