//! `incept compare --format json|csv` and the `single_view_predicted` column of a TTA run
//! against their tables.

use super::checks::{Problems, check_object};
use super::tables::{contract_tables, table};
use crate::common::*;

#[test]
fn a_comparison_is_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    let (_, cache) = tiny_cache(dir.path(), 10)?;
    let config = small_config_with(dir.path(), 2, "")?;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(train(&cache, &a, &config, &["--tta"])?);
    ok(train(&cache, &b, &config, &["--tta", "--seed", "3"])?);
    let mut problems = Problems::default();

    // A TTA run's predictions.csv ends with each photo's single-view prediction and probabilities.
    let header = std::fs::read_to_string(a.join("predictions.csv"))?;
    let header = header.lines().next().unwrap_or_default().to_owned();
    let ending = ",single_view_predicted,single_view_p_ant,single_view_p_bee,single_view_p_cricket";
    problems.check(header.ends_with(ending), || {
        format!("a TTA run's predictions.csv has the columns {header}, not ending with {ending}")
    });

    let json = stdout(&ok(run(&["compare", path_str(&a), path_str(&b), "--format", "json"])?));
    let json: serde_json::Value = serde_json::from_str(&json)?;
    check_object(&mut problems, table(&tables, "compare-json")?, &json, "compare --format json")?;
    for run in json["runs"].as_array().ok_or("no runs")? {
        check_object(&mut problems, table(&tables, "compare-json-run")?, run, "a run of compare")?;
        for view in ["tta", "single_view"] {
            check_object(
                &mut problems,
                table(&tables, "compare-json-accuracy")?,
                &run[view],
                &format!("a run's {view} accuracy of compare"),
            )?;
        }
    }
    let pairs = json["pairs"].as_array().ok_or("no pairs")?;
    problems.check(pairs.len() == 2, || format!("{} pairs, not one per view", pairs.len()));
    for pair in pairs {
        check_object(
            &mut problems,
            table(&tables, "compare-json-pair")?,
            pair,
            "a pair of compare",
        )?;
    }
    let csv = stdout(&ok(run(&["compare", path_str(&a), path_str(&b), "--format", "csv"])?));
    let documented = "view,a,b,photos,a_correct,b_correct,a_only,b_only,difference,difference_low,difference_high,p_value,p_value_adjusted,verdict";
    problems.check(csv.lines().next() == Some(documented), || {
        format!(
            "compare --format csv's header is {:?}, docs/FORMATS.md says {documented:?}",
            csv.lines().next()
        )
    });
    problems.finish()
}
