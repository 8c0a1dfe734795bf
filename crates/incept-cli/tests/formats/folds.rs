//! A cross-validation's run folder and its `run.json` record against their tables.

use super::checks::{Problems, check_object, file_names, read_json};
use super::tables::{contract_tables, table};
use crate::common::*;

#[test]
fn a_cross_validation_is_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 6)?;
    let config = small_config_with(dir.path(), 2, "")?;
    let cv = dir.path().join("cv");
    ok(train(&cache, &cv, &config, &["--folds", "2", "--refit"])?);
    let mut problems = Problems::default();

    // Sub-folders as the table names them.
    let present: Vec<String> = file_names(&cv)?
        .into_iter()
        .map(|name| match name.as_str() {
            "folds" => "folds/fold-k/".to_owned(),
            "refit" => "refit/".to_owned(),
            _ => name,
        })
        .collect();
    problems.names(table(&tables, "cross-validation-files")?, &present, "a cross-validation");
    let folds = file_names(&cv.join("folds"))?;
    problems.check(folds == [".fold-1.lock", ".fold-2.lock", "fold-1", "fold-2"], || {
        format!("folds/ holds {folds:?}")
    });

    let state = read_json(&cv.join("run.json"))?;
    check_object(
        &mut problems,
        table(&tables, "run-json")?,
        &state,
        "a cross-validation's run.json",
    )?;
    let record = &state["cross_validation"];
    check_object(
        &mut problems,
        table(&tables, "run-json-cross-validation")?,
        record,
        "cross_validation",
    )?;
    for result in record["fold_results"].as_array().ok_or("no fold_results")? {
        check_object(
            &mut problems,
            table(&tables, "run-json-fold-result")?,
            result,
            "a fold result",
        )?;
    }
    // Each fold's and the refit's config.toml names its role.
    let fold = std::fs::read_to_string(cv.join("folds/fold-2/config.toml"))?;
    problems.check(fold.contains("folds = 2") && fold.contains("fold = 2"), || {
        format!("fold 2's config.toml: {fold}")
    });
    let refit = std::fs::read_to_string(cv.join("refit/config.toml"))?;
    let epochs = record["refit_epochs"].as_u64().unwrap_or(0);
    problems.check(
        refit.contains(&format!("refit_epochs = {epochs}")) && !refit.contains("folds ="),
        || format!("the refit's config.toml: {refit}"),
    );
    // A refit's epochs have no validation figures: null, read back by every reader.
    let refit_state = read_json(&cv.join("refit/run.json"))?;
    for epoch in refit_state["epochs"].as_array().ok_or("no epochs")? {
        problems.check(epoch["validation_loss"].is_null(), || format!("a refit epoch: {epoch}"));
    }
    ok(run(&["runs", path_str(dir.path())])?);

    // `incept suspects --format json` of it.
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&ok(run(&["suspects", path_str(&cv), "--format", "json"])?)))?;
    check_object(&mut problems, table(&tables, "suspects-json")?, &json, "suspects --format json")?;
    for suspect in json["suspects"].as_array().ok_or("no suspects")? {
        check_object(
            &mut problems,
            table(&tables, "suspects-json-suspect")?,
            suspect,
            "a suspect",
        )?;
    }
    problems.finish()
}
