//! Training on skewed collections: how the loss counters classes of very different sizes, and
//! which validation figure picks the best epoch.
//!
//! On all of AMID (15,675 *Aedes albopictus* photos down to 38 *Aedes koreicus*) a head trained
//! with the plain loss calls nearly every rare photo a common class; docs/BENCHMARKS.md
//! ("A real collection") measures the options below.

use serde::{Deserialize, Serialize};

/// How the training loss counters a skewed class distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Rebalance {
    /// [`SKEWED_DEFAULT`] when the largest class has at least [`SKEW_RATIO`] times the training
    /// photos of the smallest, else `none`; resolved when a run starts and saved resolved.
    Auto,
    /// The plain loss: every sample weighs the same.
    None,
    /// Each class weighs the same in the loss: a sample of class c weighs 1 / n_c.
    Balanced,
    /// A softer weighting: a sample of class c weighs 1 / √n_c.
    Sqrt,
    /// Logit adjustment (Menon et al. 2021): the training loss sees the logits plus the log of
    /// each class's share of the training samples; predictions use the logits alone.
    LogitAdjusted,
}

/// Which validation figure picks the best epoch (whose weights `best.bpk` keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Select {
    /// The lowest validation loss (class-weighted as the training loss is, see
    /// [`Rebalance::validation_weights`]).
    Loss,
    /// The highest balanced accuracy (mean recall over the classes); ties go to the lower loss.
    BalancedAccuracy,
    /// The highest macro-F1; ties go to the lower loss.
    MacroF1,
}

/// Largest to smallest class, in training photos, from which `auto` counters the skew: amid5
/// (400:400) stays untouched, all of AMID (15,675:38) does not.
pub const SKEW_RATIO: f64 = 10.0;

/// What `auto` turns on for a skewed collection (chosen by measurement on all of AMID:
/// docs/BENCHMARKS.md, "A real collection").
pub const SKEWED_DEFAULT: Rebalance = Rebalance::Balanced;

impl Select {
    /// The choice as `config.toml` and the flag spell it.
    pub fn name(self) -> &'static str {
        match self {
            Select::Loss => "loss",
            Select::BalancedAccuracy => "balanced-accuracy",
            Select::MacroF1 => "macro-f1",
        }
    }
}

impl Rebalance {
    /// The choice as `config.toml` and the flag spell it.
    pub fn name(self) -> &'static str {
        match self {
            Rebalance::Auto => "auto",
            Rebalance::None => "none",
            Rebalance::Balanced => "balanced",
            Rebalance::Sqrt => "sqrt",
            Rebalance::LogitAdjusted => "logit-adjusted",
        }
    }

    /// `auto` resolved for classes of `counts` training samples (each class has at least one);
    /// any other choice as it is.
    pub fn resolve(self, counts: &[usize]) -> Rebalance {
        match self {
            Rebalance::Auto if skew_ratio(counts) >= SKEW_RATIO => SKEWED_DEFAULT,
            Rebalance::Auto => Rebalance::None,
            chosen => chosen,
        }
    }

    /// The training loss's class weights for classes of `counts` training samples, scaled so
    /// that the mean weight over the samples is 1; `None` where the loss is unweighted.
    pub fn loss_weights(self, counts: &[usize]) -> Option<Vec<f64>> {
        let power = match self {
            Rebalance::Balanced => 1.0,
            Rebalance::Sqrt => 0.5,
            Rebalance::Auto | Rebalance::None | Rebalance::LogitAdjusted => return None,
        };
        Some(normalised(counts, power))
    }

    /// The offsets added to the logits in the training loss: the log of each class's share of
    /// the training samples (logit adjustment); `None` for the other choices.
    ///
    /// # Shapes
    /// [classes]
    pub fn logit_offsets(self, counts: &[usize]) -> Option<Vec<f64>> {
        if self != Rebalance::LogitAdjusted {
            return None;
        }
        let total = counts.iter().sum::<usize>().max(1) as f64;
        Some(counts.iter().map(|&n| (n.max(1) as f64 / total).ln()).collect())
    }

    /// How each validation photo's loss weighs in the validation loss, by class: as the
    /// training loss weighs its samples (logit adjustment aims at the balanced error, so it
    /// weighs each class the same); `None` for the plain mean.
    pub fn validation_weights(self, counts: &[usize]) -> Option<Vec<f64>> {
        match self {
            Rebalance::LogitAdjusted => Some(normalised(counts, 1.0)),
            other => other.loss_weights(counts),
        }
    }
}

/// Largest over smallest of `counts` (infinite when a class has none).
pub fn skew_ratio(counts: &[usize]) -> f64 {
    let largest = counts.iter().copied().max().unwrap_or(0) as f64;
    let smallest = counts.iter().copied().min().unwrap_or(0) as f64;
    largest / smallest
}

/// Weights n_c^(−power), scaled so that Σ n_c·w_c = Σ n_c.
fn normalised(counts: &[usize], power: f64) -> Vec<f64> {
    let raw: Vec<f64> = counts.iter().map(|&n| (n.max(1) as f64).powf(-power)).collect();
    let total: f64 = counts.iter().sum::<usize>() as f64;
    let weighted: f64 = counts.iter().zip(&raw).map(|(&n, w)| n as f64 * w).sum();
    let scale = if weighted > 0.0 { total / weighted } else { 1.0 };
    raw.iter().map(|w| w * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_turns_on_from_ten_to_one() {
        assert_eq!(Rebalance::Auto.resolve(&[400, 400, 400]), Rebalance::None);
        assert_eq!(Rebalance::Auto.resolve(&[399, 40]), Rebalance::None);
        assert_eq!(Rebalance::Auto.resolve(&[400, 40]), SKEWED_DEFAULT);
        assert_eq!(Rebalance::Sqrt.resolve(&[400, 400]), Rebalance::Sqrt);
        assert_eq!(Rebalance::None.resolve(&[15_675, 38]), Rebalance::None);
    }

    #[test]
    fn names_are_the_config_spelling() -> Result<(), toml::ser::Error> {
        for choice in [
            Rebalance::Auto,
            Rebalance::None,
            Rebalance::Balanced,
            Rebalance::Sqrt,
            Rebalance::LogitAdjusted,
        ] {
            assert_eq!(toml::Value::try_from(choice)?.as_str(), Some(choice.name()));
        }
        for choice in [Select::Loss, Select::BalancedAccuracy, Select::MacroF1] {
            assert_eq!(toml::Value::try_from(choice)?.as_str(), Some(choice.name()));
        }
        Ok(())
    }

    #[test]
    fn balanced_weights_make_every_class_weigh_the_same() {
        let counts = [900, 90, 10];
        let weights = Rebalance::Balanced.loss_weights(&counts).expect("weighted");
        let class_mass: Vec<f64> =
            counts.iter().zip(&weights).map(|(&n, w)| n as f64 * w).collect();
        for mass in &class_mass {
            assert!((mass - 1000.0 / 3.0).abs() < 1e-9, "{class_mass:?}");
        }
        let sqrt = Rebalance::Sqrt.loss_weights(&counts).expect("weighted");
        // 1/√n: the rare class weighs √(900/10) = 9.49 times the common one, not 90.
        assert!((sqrt[2] / sqrt[0] - 90f64.sqrt()).abs() < 1e-9);
        let mean: f64 = counts.iter().zip(&sqrt).map(|(&n, w)| n as f64 * w).sum::<f64>() / 1000.0;
        assert!((mean - 1.0).abs() < 1e-12);
        assert_eq!(Rebalance::None.loss_weights(&counts), None);
        assert_eq!(Rebalance::LogitAdjusted.loss_weights(&counts), None);
    }

    #[test]
    fn logit_offsets_are_the_log_priors() {
        let offsets = Rebalance::LogitAdjusted.logit_offsets(&[750, 250]).expect("offsets");
        assert!((offsets[0] - 0.75f64.ln()).abs() < 1e-12);
        assert!((offsets[1] - 0.25f64.ln()).abs() < 1e-12);
        assert_eq!(Rebalance::Balanced.logit_offsets(&[750, 250]), None);
        // Validation under logit adjustment weighs each class the same.
        assert_eq!(
            Rebalance::LogitAdjusted.validation_weights(&[750, 250]),
            Rebalance::Balanced.loss_weights(&[750, 250])
        );
    }
}
