//! The configuration's presets, TOML round trips and checks.

use super::*;

#[test]
fn toml_overrides_merge_into_the_preset() -> Result<()> {
    let config =
        TrainConfig::from_toml("preset = \"blog\"\nepochs = 3\n[head]\npooling = \"gap\"\n")?;
    assert_eq!(config.optimizer, OptimizerKind::Sgd);
    assert_eq!(config.epochs, 3);
    assert_eq!(config.head.pooling, Pooling::Gap);
    assert_eq!(config.head.dense, [1024, 1024, 1024]);
    let round_trip = TrainConfig::from_toml(&config.to_toml()?)?;
    assert_eq!(round_trip, config);
    // Mixup is written only when on, and read back.
    assert!(!config.to_toml()?.contains("mixup_alpha"));
    let mixed = TrainConfig { mixup_alpha: 0.4, ..config };
    assert_eq!(TrainConfig::from_toml(&mixed.to_toml()?)?, mixed);
    // A preset chosen by flag replaces the file's, even when the file ends in a table.
    let flagged = TrainConfig::from_toml_with_preset("[head]\npooling = \"gap\"\n", Some("blog"))?;
    assert_eq!((flagged.preset.as_str(), flagged.head.pooling), ("blog", Pooling::Gap));
    Ok(())
}

#[test]
fn differences_name_each_changed_field() -> Result<()> {
    let saved = TrainConfig::blog_preset();
    let mut wanted = saved.clone();
    assert!(saved.differences(&wanted)?.is_empty());
    wanted.learning_rate = 1e-3;
    wanted.head.pooling = Pooling::Gap;
    wanted.validation_cache = Some("v.h5".into());
    let names: Vec<String> =
        saved.differences(&wanted)?.into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, ["head.pooling", "learning_rate", "validation_cache"]);
    Ok(())
}

#[test]
fn a_bilinear_head_with_se_is_refused() {
    let mut config = TrainConfig::bilinear_preset();
    assert!(config.validate().is_ok());
    config.head.se = true;
    let message = config.validate().expect_err("SE with bilinear").to_string();
    assert!(message.contains("--no-se"), "{message}");
    config.head.se = false;
    config.head.bilinear_dimensions = 0;
    assert!(config.validate().is_err());
    assert_eq!(TrainConfig::preset("bilinear").expect("preset"), TrainConfig::bilinear_preset());
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    assert!(TrainConfig::from_toml("epochz = 3").is_err());
    let mut config = TrainConfig::default_preset();
    config.validation_split = 1.5;
    assert!(config.validate().is_err());
    for alpha in [-0.5, f64::NAN, f64::INFINITY] {
        let config = TrainConfig { mixup_alpha: alpha, ..TrainConfig::default_preset() };
        let message = config.validate().expect_err("alpha out of range").to_string();
        assert!(message.contains("mixup_alpha"), "{message}");
    }
    assert!(TrainConfig::preset("fancy").is_err());
}

#[test]
fn a_saved_config_without_the_skew_keys_reads_as_it_trained() -> Result<()> {
    let dir = tempfile::tempdir().map_err(|e| Error::Config(e.to_string()))?;
    let path = dir.path().join("config.toml");
    // A run of an earlier version: none of the keys it lacks may take today's preset's value.
    let mut old = TrainConfig::bilinear_preset().to_toml()?;
    for key in ["stratified_split", "rebalance", "select"] {
        old = old.lines().filter(|line| !line.starts_with(key)).collect::<Vec<_>>().join("\n");
    }
    std::fs::write(&path, &old).map_err(|e| Error::Config(e.to_string()))?;
    let saved = TrainConfig::from_saved_toml_file(&path)?;
    assert_eq!(
        (saved.stratified_split, saved.rebalance, saved.select),
        (false, Rebalance::None, Select::Loss)
    );
    // A new run's file keeps what it says; the preset's defaults are the new behaviour.
    let new = TrainConfig { rebalance: Rebalance::Sqrt, ..TrainConfig::bilinear_preset() };
    std::fs::write(&path, new.to_toml()?).map_err(|e| Error::Config(e.to_string()))?;
    assert_eq!(TrainConfig::from_saved_toml_file(&path)?, new);
    let preset = TrainConfig::default_preset();
    assert_eq!((preset.stratified_split, preset.rebalance), (true, Rebalance::Auto));
    Ok(())
}
