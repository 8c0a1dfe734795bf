//! What `--resume` may change: nothing of the recipe, except a larger epoch count and the
//! patience.
//!
//! A resumed run must end where the uninterrupted run would have: same recipe, same cache, same
//! backend. The caller passes the configuration it resolved with the run's saved one as the
//! base (so flags that were not repeated keep their saved values); any field that still differs
//! is refused, naming its flag. `--epochs` may grow: the new count is recorded in `config.toml`
//! and what it does to the learning-rate schedule is stated. `--patience` may change (it says
//! when to stop, never how an epoch trains): a run that stopped early continues with a larger
//! one, or 0, as a run with it from the start would have.

use std::path::Path;

use incept_cache::Cache;

use crate::config::TrainConfig;
use crate::rebalance::Rebalance;
use crate::run_folder::{CONFIG_FILE, CacheStamp, RunState, load_config, write_file};
use crate::train::learning_rate;
use crate::{Error, Result};

/// The flag (or `--config` key) that sets configuration field `field` (`head.NAME` for
/// `[head]` fields).
fn flag_for(field: &str) -> String {
    match field {
        "head.se" => "--no-se".into(),
        "head.pooling" => "--pooling".into(),
        "head.ensemble" => "--ensemble".into(),
        "tta" => "--tta/--no-tta".into(),
        "epochs" | "batch_size" | "optimizer" | "learning_rate" | "momentum" | "weight_decay"
        | "seed" | "validation_split" | "validation_cache" | "memory_budget_mib" | "preset"
        | "rebalance" | "select" | "folds" | "patience" => {
            format!("--{}", field.replace('_', "-"))
        }
        other => match other.strip_prefix("head.") {
            Some(name) => format!("`{name}` in the [head] table of --config"),
            None => format!("`{other}` in --config"),
        },
    }
}

/// The configuration to resume with, and when the run is extended or its patience changed, the
/// sentence that says what that does. `wanted` is the configuration resolved on top of the
/// run's saved one. Writes nothing.
pub fn resume_config(
    run_dir: &Path,
    state: &RunState,
    wanted: &TrainConfig,
) -> Result<(TrainConfig, Option<String>)> {
    let saved = load_config(run_dir)?;
    // `auto` was resolved when the run began: asking for it again asks for what it chose.
    let mut wanted = wanted.clone();
    if wanted.rebalance == Rebalance::Auto {
        wanted.rebalance = saved.rebalance;
    }
    let wanted = &wanted;
    let mut changes: Vec<String> = saved
        .differences(wanted)?
        .into_iter()
        .filter(|(field, _, _)| field != "epochs" && field != "patience")
        .map(|(field, have, want)| {
            format!("{} (run has {have}, this asks {want})", flag_for(&field))
        })
        .collect();
    if wanted.epochs < saved.epochs {
        changes.push(format!(
            "--epochs (run has {}, this asks {}; a run can be extended, not shortened)",
            saved.epochs, wanted.epochs
        ));
    }
    if !changes.is_empty() {
        return Err(Error::ResumeChanges {
            path: run_dir.to_path_buf(),
            changes: changes.join(", "),
        });
    }
    let mut resumed = saved.clone();
    let mut notes = Vec::new();
    if wanted.patience != saved.patience {
        resumed.patience = wanted.patience;
        let describe = |patience: usize| match patience {
            0 => "none (every epoch)".to_owned(),
            epochs => format!("{epochs} epochs"),
        };
        notes.push(format!(
            "patience {} → {} (recorded in {CONFIG_FILE})",
            describe(saved.patience),
            describe(wanted.patience)
        ));
    }
    if wanted.epochs != saved.epochs {
        resumed.epochs = wanted.epochs;
        notes.push(extension_note(&saved, &resumed, state.completed_epochs));
        if state.patience_exhausted(resumed.patience) {
            notes.push(format!(
                "but the run stopped early, {} epochs after its best, and trains nothing more \
                 unless --patience grows (or is 0)",
                resumed.patience
            ));
        }
    }
    Ok((resumed, (!notes.is_empty()).then(|| notes.join("; "))))
}

/// What extending `saved` to `extended` does, for the user: the schedule follows the epoch count.
fn extension_note(saved: &TrainConfig, extended: &TrainConfig, completed: usize) -> String {
    let head = format!(
        "extending the run from {} to {} epochs (recorded in {CONFIG_FILE})",
        saved.epochs, extended.epochs
    );
    if saved.final_learning_rate_fraction >= 1.0 {
        return format!(
            "{head}; the learning rate has no schedule and stays {:.2e}",
            saved.learning_rate
        );
    }
    let next = completed.min(extended.epochs.saturating_sub(1));
    format!(
        "{head}: the cosine learning-rate schedule now spans {} epochs, so epoch {} trains at {:.2e} \
         where the {}-epoch schedule would have used {:.2e} (it ends at {:.2e}); the epochs done so \
         far followed the old schedule",
        extended.epochs,
        next + 1,
        learning_rate(extended, next),
        saved.epochs,
        learning_rate(saved, next.min(saved.epochs.saturating_sub(1))),
        learning_rate(extended, extended.epochs - 1),
    )
}

/// Records an extended epoch count or a new patience in the run's `config.toml`.
pub fn record_extension(run_dir: &Path, config: &TrainConfig) -> Result<()> {
    write_file(&run_dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())
}

/// Refuses to resume on another cache, or on the same file after its content changed.
pub fn check_same_cache(state: &RunState, cache: &Cache) -> Result<()> {
    let refuse = |reason: String| Err(Error::CacheChanged { path: cache.path.clone(), reason });
    let path = std::fs::canonicalize(&cache.path)
        .map_err(|source| Error::Io { path: cache.path.clone(), source })?;
    if path != state.cache {
        return refuse(format!("the run was trained on {}", state.cache.display()));
    }
    if cache.settings.model_sha256 != state.cache_model_sha256 {
        return refuse("it was re-extracted with another model since the run started".into());
    }
    match &state.cache_stamp {
        Some(then) if *then != CacheStamp::of(cache) => refuse(format!(
            "it changed since the run started: {} samples created {} then, {} created {} now",
            then.samples,
            then.created.as_deref().unwrap_or("?"),
            cache.len(),
            cache.created.as_deref().unwrap_or("?"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_named_for_fields() {
        assert_eq!(flag_for("learning_rate"), "--learning-rate");
        assert_eq!(flag_for("head.pooling"), "--pooling");
        assert_eq!(flag_for("head.dense"), "`dense` in the [head] table of --config");
        assert_eq!(flag_for("label_smoothing"), "`label_smoothing` in --config");
    }

    #[test]
    fn extending_states_what_happens_to_the_schedule() {
        let saved = TrainConfig::default_preset();
        let mut extended = saved.clone();
        extended.epochs = 60;
        let note = extension_note(&saved, &extended, 30);
        assert!(
            note.contains("from 30 to 60 epochs") && note.contains("epoch 31 trains at"),
            "{note}"
        );
        let blog = TrainConfig::blog_preset();
        let mut longer = blog.clone();
        longer.epochs = 20;
        assert!(extension_note(&blog, &longer, 10).contains("no schedule"));
    }
}
