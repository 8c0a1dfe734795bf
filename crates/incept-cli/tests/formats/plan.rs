//! A plan folder, its shard markers, `status` and the merged caches against their contract tables.

use std::collections::BTreeSet;
use std::path::Path;

use super::checks::{Problems, check_hdf5, check_object, file_names, read_json};
use super::tables::{Row, Table, contract_tables, table};
use crate::common::*;

/// `incept plan` with the tiny model; the test's shards run on one thread.
fn plan_and_run_shards(data: &Path, plan: &Path, shards: usize) -> TestResult {
    let model = tiny_model();
    let count = shards.to_string();
    ok(run(&[
        "plan",
        path_str(data),
        "-o",
        path_str(plan),
        "--shards",
        &count,
        "--model",
        path_str(&model),
        "--copies",
        "1",
    ])?);
    for index in 0..shards {
        let index = index.to_string();
        let mut command = incept();
        command.args(["extract", "--plan", path_str(plan), "--shard", &index, "--threads", "1"]);
        for name in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"] {
            command.env_remove(name);
        }
        ok(command.output()?);
    }
    Ok(())
}

#[test]
fn a_plan_its_shards_and_their_merges_are_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee"], 2)?;
    let plan = dir.path().join("plan");
    let shards = 2;
    plan_and_run_shards(&data, &plan, shards)?;
    let mut problems = Problems::default();

    // The plan folder's files, IIIII and SSSSS written out for every shard.
    let folder = table(&tables, "plan-folder")?;
    let mut expanded = Table { name: folder.name.clone(), rows: Vec::new() };
    for row in &folder.rows {
        let names: BTreeSet<String> = (0..shards)
            .map(|i| {
                let name = row.name().replace("IIIII", &format!("{i:05}"));
                name.replace("SSSSS", &format!("{shards:05}"))
            })
            .collect();
        for name in names {
            let mut cells = row.cells.clone();
            cells[0] = format!("`{name}`");
            expanded.rows.push(Row { cells });
        }
    }
    let mut present: Vec<String> =
        file_names(&plan)?.into_iter().filter(|name| name != "shards").collect();
    present.extend(file_names(&plan.join("shards"))?.into_iter().map(|n| format!("shards/{n}")));
    problems.names(&expanded, &present, &plan.display().to_string());

    let plan_json = read_json(&plan.join("plan.json"))?;
    check_object(&mut problems, table(&tables, "plan-json")?, &plan_json, "plan.json")?;
    check_object(
        &mut problems,
        table(&tables, "plan-json-augmentation")?,
        &plan_json["augmentation"],
        "plan.json's augmentation",
    )?;
    let photos = plan_json["photos"].as_array().ok_or("plan.json: no photos")?;
    for photo in photos {
        check_object(
            &mut problems,
            table(&tables, "plan-json-photo")?,
            photo,
            "a photo of plan.json",
        )?;
    }
    for index in 0..shards {
        let path = plan.join(format!("shards/shard-{index:05}-of-{shards:05}.done.json"));
        let marker = read_json(&path)?;
        let what = path.display().to_string();
        check_object(&mut problems, table(&tables, "shard-marker")?, &marker, &what)?;
        let settings = format!("{what}'s settings");
        check_object(
            &mut problems,
            table(&tables, "shard-marker-settings")?,
            &marker["settings"],
            &settings,
        )?;
    }
    let status = ok(run(&["status", path_str(&plan), "--format", "json"])?);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status))?;
    check_object(
        &mut problems,
        table(&tables, "status-json")?,
        &status,
        "incept status --format json",
    )?;

    // The merged index is a cache like an extracted one; `--copy` is self-contained: no
    // `format_version`, `pieces` or `piece_rows`.
    let (datasets, attributes) =
        (table(&tables, "cache-index-datasets")?, table(&tables, "cache-index-attributes")?);
    let merged = dir.path().join("merged.h5");
    let output = ok(run(&["merge", path_str(&plan), "-o", path_str(&merged)])?);
    problems.check(stdout(&output).trim() == path_str(&merged), || {
        format!("incept merge printed {:?}, not the cache's path", stdout(&output))
    });
    check_hdf5(&mut problems, &merged, datasets, attributes, &[])?;
    let copied = dir.path().join("copied.h5");
    ok(run(&["merge", path_str(&plan), "-o", path_str(&copied), "--copy"])?);
    check_hdf5(
        &mut problems,
        &copied,
        datasets,
        attributes,
        &["format_version", "pieces", "piece_rows"],
    )?;
    let file = hdf5::File::open(&copied)?;
    problems.check(file.dataset("features")?.layout() == hdf5::dataset::Layout::Chunked, || {
        format!("{}: `features` of a self-contained file is not stored in it", copied.display())
    });
    problems.finish()
}
