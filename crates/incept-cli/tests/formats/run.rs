//! A trained run folder and the JSON, CSV and ONNX outputs of its commands against their tables.

use std::collections::BTreeMap;
use std::path::Path;

use super::Error;
use super::checks::{Problems, check_object, file_names, read_json};
use super::tables::{contract_tables, table};
use crate::common::*;

/// The top-level keys of each table of a `config.toml` as `toml` writes it (`key = value` at the
/// start of a line; `[name]` opens a table).
fn toml_keys(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once(" = ")
            && !line.starts_with(' ')
            && !key.is_empty()
        {
            keys.entry(section.clone()).or_default().push(key.to_owned());
        }
    }
    keys
}

/// Names of the inputs and outputs of an ONNX file's graph (with element type and rank), and its
/// metadata keys.
type GraphEnds = Vec<(String, i64, usize)>;

fn onnx_interface(path: &Path) -> Result<(GraphEnds, Vec<String>), Error> {
    use incept_export::onnx::{self, field};
    let bytes = std::fs::read(path)?;
    let mut ends = Vec::new();
    let mut metadata = Vec::new();
    for model_field in incept_export::wire::fields(&bytes)? {
        match model_field.number {
            field::model::GRAPH => {
                for graph_field in incept_export::wire::fields(model_field.bytes()?)? {
                    if matches!(graph_field.number, field::graph::INPUT | field::graph::OUTPUT) {
                        let info = onnx::read_value_info(graph_field.bytes()?)?;
                        ends.push((info.name, info.elem_type, info.dims.len()));
                    }
                }
            }
            field::model::METADATA_PROPS => {
                if let Some(key) = onnx::string_field(model_field.bytes()?, field::entry::KEY)? {
                    metadata.push(key);
                }
            }
            _ => {}
        }
    }
    Ok((ends, metadata))
}

/// `balanced_accuracy` and `worst_class` as the document defines them from `per_class`: the mean
/// and the lowest (first of equals) recall over the classes with photos.
fn check_balanced_figures(problems: &mut Problems, value: &serde_json::Value, what: &str) {
    let sampled: Vec<(&str, f64)> = value["per_class"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|class| class["support"].as_u64().unwrap_or(0) > 0)
        .map(|class| {
            (class["class"].as_str().unwrap_or_default(), class["recall"].as_f64().unwrap_or(-1.0))
        })
        .collect();
    let mean = sampled.iter().map(|(_, recall)| recall).sum::<f64>() / sampled.len().max(1) as f64;
    let balanced = value["balanced_accuracy"].as_f64().unwrap_or(-1.0);
    problems.check((balanced - mean).abs() < 1e-9, || {
        format!("{what}: balanced_accuracy is {balanced}, the mean recall of its classes {mean}")
    });
    let worst = sampled
        .iter()
        .copied()
        .reduce(|worst, class| if class.1 < worst.1 { class } else { worst });
    let found = (value["worst_class"]["class"].as_str(), value["worst_class"]["recall"].as_f64());
    problems.check(worst.map(|(class, recall)| (Some(class), Some(recall))) == Some(found), || {
        format!("{what}: worst_class is {found:?}, per_class gives {worst:?}")
    });
}

#[test]
fn a_trained_run_and_its_outputs_are_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    // Labels that contradict each other for some photos: a temperature is fitted (on photos all
    // classified right the fit is degenerate and calibration.json's fits are null).
    let (data, cache) = ambiguous_cache(dir.path())?;
    let config = small_config_with(dir.path(), 2, "")?;
    let run_dir = dir.path().join("runs/first");
    let output = ok(train(&cache, &run_dir, &config, &[])?);
    let mut problems = Problems::default();
    problems.check(stdout(&output).trim() == path_str(&run_dir), || {
        format!("incept train-head printed {:?}, not the run folder", stdout(&output))
    });

    // Files: every one listed is there, every one there is listed. A `../` row is beside the
    // folder, RUN standing for the folder's name.
    let files = table(&tables, "run-files")?;
    let mut present = file_names(&run_dir)?;
    for name in files.names() {
        if let Some(beside) = name.strip_prefix("../")
            && run_dir.join("..").join(beside.replace("RUN", "first")).exists()
        {
            present.push(name);
        }
    }
    problems.names(files, &present, &run_dir.display().to_string());

    let state = read_json(&run_dir.join("run.json"))?;
    check_object(&mut problems, table(&tables, "run-json")?, &state, "run.json")?;
    check_object(
        &mut problems,
        table(&tables, "run-json-cache-stamp")?,
        &state["cache_stamp"],
        "run.json's cache_stamp",
    )?;
    check_object(
        &mut problems,
        table(&tables, "run-json-sha256")?,
        &state["sha256"],
        "run.json's sha256",
    )?;
    for (name, digest) in state["sha256"].as_object().into_iter().flatten() {
        let actual = incept_core::sha256_file(&run_dir.join(name))?;
        problems.check(digest.as_str() == Some(actual.as_str()), || {
            format!("run.json's sha256 of {name} is {digest}, the file's is {actual}")
        });
    }
    let epochs = state["epochs"].as_array().ok_or("run.json: no epochs")?;
    problems
        .check(epochs.len() == 2, || format!("run.json records {} epochs, not 2", epochs.len()));
    for epoch in epochs {
        check_object(
            &mut problems,
            table(&tables, "run-json-epoch")?,
            epoch,
            "an epoch of run.json",
        )?;
    }
    let classes: Vec<String> = state["classes"]
        .as_array()
        .ok_or("run.json: no classes")?
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();

    let toml = toml_keys(&std::fs::read_to_string(run_dir.join("config.toml"))?);
    let top = toml.get("").cloned().unwrap_or_default();
    problems.names(table(&tables, "config-toml")?, &top, "config.toml");
    let head = toml.get("head").cloned().unwrap_or_default();
    problems.names(table(&tables, "config-toml-head")?, &head, "config.toml's [head]");
    let other: Vec<&String> = toml.keys().filter(|k| !k.is_empty() && *k != "head").collect();
    problems
        .check(other.is_empty(), || format!("config.toml has the undocumented tables {other:?}"));

    // CSV headers, in order.
    let metrics_csv = table(&tables, "metrics-csv")?;
    let header = std::fs::read_to_string(run_dir.join("metrics.csv"))?;
    let header = header.lines().next().unwrap_or_default().to_owned();
    problems.columns(metrics_csv, &metrics_csv.names(), &header, "metrics.csv");
    let predictions_csv = table(&tables, "predictions-csv")?;
    let expected: Vec<String> = predictions_csv
        .names()
        .iter()
        .flat_map(|name| match name.as_str() {
            "p_CLASS" => classes.iter().map(|c| format!("p_{c}")).collect(),
            "single_view_p_CLASS" => classes.iter().map(|c| format!("single_view_p_{c}")).collect(),
            other => vec![other.to_owned()],
        })
        .collect();
    let header = std::fs::read_to_string(run_dir.join("predictions.csv"))?;
    let header = header.lines().next().unwrap_or_default().to_owned();
    problems.columns(predictions_csv, &expected, &header, "predictions.csv");

    // metrics.json and `confusion --format json` share one shape.
    let (confusion, per_class, worst_class) = (
        table(&tables, "confusion-json")?,
        table(&tables, "confusion-json-per-class")?,
        table(&tables, "confusion-json-worst-class")?,
    );
    let json_output = ok(run(&["confusion", path_str(&run_dir), "--format", "json"])?);
    for (what, value) in [
        ("metrics.json", read_json(&run_dir.join("metrics.json"))?),
        ("incept confusion --format json", serde_json::from_str(&stdout(&json_output))?),
    ] {
        check_object(&mut problems, confusion, &value, what)?;
        let classes = value["per_class"].as_array().ok_or("no per_class")?;
        for class in classes {
            check_object(
                &mut problems,
                per_class,
                class,
                &format!("an entry of {what}'s per_class"),
            )?;
        }
        // Every class of the tiny run has validation photos: a worst class exists.
        check_object(
            &mut problems,
            worst_class,
            &value["worst_class"],
            &format!("{what}'s worst_class"),
        )?;
        check_balanced_figures(&mut problems, &value, what);
    }
    let csv_table = table(&tables, "confusion-csv")?;
    let expected: Vec<String> = csv_table
        .names()
        .iter()
        .flat_map(|name| match name.as_str() {
            "CLASS" => classes.clone(),
            other => vec![other.to_owned()],
        })
        .collect();
    let csv = stdout(&ok(run(&["confusion", path_str(&run_dir), "--format", "csv"])?));
    let header = csv.lines().next().unwrap_or_default().to_owned();
    problems.columns(csv_table, &expected, &header, "incept confusion --format csv");
    // Its last column is each row's recall as `per_class` gives it; empty for a class without
    // photos.
    let confusion_json: serde_json::Value = serde_json::from_str(&stdout(&json_output))?;
    let recalls = confusion_json["per_class"].as_array().ok_or("no per_class")?;
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    problems.check(rows.len() == classes.len(), || {
        format!(
            "incept confusion --format csv has {} rows for {} classes",
            rows.len(),
            classes.len()
        )
    });
    for (row, class) in rows.iter().zip(recalls) {
        // The last three columns: recall, recall_low, recall_high.
        let last: Vec<&str> = row.rsplit(',').take(3).collect();
        let expected: Vec<String> = match class["support"].as_u64() {
            Some(0) => vec![String::new(); 3],
            _ => {
                let interval = class["recall_interval"].as_array().cloned().unwrap_or_default();
                let at = |i: usize| interval.get(i).and_then(|v| v.as_f64()).unwrap_or(-1.0);
                vec![
                    format!("{:.6}", at(1)),
                    format!("{:.6}", at(0)),
                    format!("{:.6}", class["recall"].as_f64().unwrap_or(-1.0)),
                ]
            }
        };
        problems.check(last == expected, || {
            format!("incept confusion --format csv row {row:?}: recall and interval {last:?} (last first), per_class says {expected:?}")
        });
    }

    // predict --format json: one object a line.
    let model = tiny_model();
    let photos = [data.join("ant/img000.png"), data.join("bee/img001.png")];
    let predicted = ok(run(&[
        "predict",
        path_str(&run_dir),
        path_str(&photos[0]),
        path_str(&photos[1]),
        "--model",
        path_str(&model),
        "--format",
        "json",
    ])?);
    let printed = stdout(&predicted);
    let lines: Vec<&str> = printed.lines().collect();
    problems.check(lines.len() == 2, || {
        format!("incept predict printed {} lines for 2 photos", lines.len())
    });
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line)?;
        check_object(
            &mut problems,
            table(&tables, "predict-json")?,
            &value,
            "a line of incept predict --format json",
        )?;
        for entry in value["top"].as_array().ok_or("predict: no top")? {
            check_object(
                &mut problems,
                table(&tables, "predict-json-top")?,
                entry,
                "an entry of predict's top",
            )?;
        }
    }

    // The exported classifier: its graph's input and output, and its metadata keys.
    let exported = dir.path().join("classifier.onnx");
    ok(run(&[
        "export",
        path_str(&run_dir),
        "-o",
        path_str(&exported),
        "--model",
        path_str(&model),
    ])?);
    let (ends, metadata) = onnx_interface(&exported)?;
    let graph = table(&tables, "export-graph")?;
    let what = "the exported classifier's graph";
    problems.names(graph, &ends.iter().map(|e| e.0.clone()).collect::<Vec<_>>(), what);
    for (name, elem_type, rank) in &ends {
        let kind = match elem_type {
            1 => "float32".to_owned(),
            2 => "uint8".to_owned(),
            other => format!("ONNX element type {other}"),
        };
        problems.kind(graph, name, &kind, what);
        problems.dimensions(graph, name, *rank, what);
    }
    problems.names(
        table(&tables, "export-metadata")?,
        &metadata,
        "the exported classifier's metadata",
    );

    // calibration.json: both fits of a TTA run.
    let calibration = read_json(&run_dir.join("calibration.json"))?;
    check_object(
        &mut problems,
        table(&tables, "calibration-json")?,
        &calibration,
        "calibration.json",
    )?;
    for fit in ["single_view", "tta"] {
        check_object(
            &mut problems,
            table(&tables, "calibration-json-fit")?,
            &calibration[fit],
            &format!("calibration.json's {fit}"),
        )?;
    }

    // The field page, with stand-ins for onnxruntime-web's files (`just test-web` uses the real
    // ones in a browser).
    let ort = dir.path().join("ort-dist");
    std::fs::create_dir_all(&ort)?;
    for name in incept_export::web::ORT_FILES {
        std::fs::write(ort.join(name), format!("stand-in for {name}"))?;
    }
    let page = dir.path().join("page");
    ok(run(&[
        "export",
        path_str(&run_dir),
        "--web",
        path_str(&page),
        "--model",
        path_str(&model),
        "--onnxruntime-web",
        path_str(&ort),
        "--min-confidence",
        "0.6",
    ])?);
    let mut page_files = file_names(&page)?;
    page_files.retain(|name| name != "ort");
    page_files.push("ort/".to_owned());
    problems.names(table(&tables, "web-page-files")?, &page_files, "the page's folder");
    let info = read_json(&page.join("classifier.json"))?;
    check_object(&mut problems, table(&tables, "classifier-json")?, &info, "classifier.json")?;
    let listed: Vec<&str> =
        info["files"].as_array().ok_or("files")?.iter().filter_map(|f| f.as_str()).collect();
    for name in &listed {
        if !page.join(name).is_file() {
            problems.push(format!("classifier.json lists {name}, which the page lacks"));
        }
    }
    // Every file of the folder is listed, so that the service worker stores the whole page.
    let on_disk =
        std::fs::read_dir(&page)?.count() - 1 + std::fs::read_dir(page.join("ort"))?.count();
    if info["min_confidence"].as_f64() != Some(0.6) || listed.len() != on_disk {
        problems.push(format!("classifier.json: {info}"));
    }
    problems.finish()
}
