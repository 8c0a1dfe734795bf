//! docs/FORMATS.md is the contract of incept's files and outputs; this test reads its marked
//! tables (`<!-- contract: NAME -->` before a Markdown table) and checks each against real
//! artefacts made here with the tiny fixture model: a cache, a plan with its shards and merges,
//! a trained run, and the outputs of `confusion`, `predict` and `export`. Both ways: what the
//! document lists must be there (unless marked *optional* or *transient*), and what is there must
//! be listed. A marked table that is missing or empty fails the test; so does a marked table no
//! check here reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::*;
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};

const DOC: &str = "docs/FORMATS.md";

/// Every contract table of the document, and only those: each is checked below.
const CONTRACT_TABLES: [&str; 26] = [
    "cache-index-datasets",
    "cache-index-attributes",
    "cache-piece-datasets",
    "cache-piece-attributes",
    "plan-folder",
    "plan-json",
    "plan-json-augmentation",
    "plan-json-photo",
    "shard-marker",
    "shard-marker-settings",
    "status-json",
    "run-files",
    "config-toml",
    "config-toml-head",
    "run-json",
    "run-json-cache-stamp",
    "run-json-epoch",
    "metrics-csv",
    "predictions-csv",
    "confusion-json",
    "confusion-json-per-class",
    "confusion-csv",
    "predict-json",
    "predict-json-top",
    "export-graph",
    "export-metadata",
];

type Error = Box<dyn std::error::Error>;

/// One row of a contract table: its cells, the first naming the item.
#[derive(Clone, Debug)]
struct Row {
    cells: Vec<String>,
}

impl Row {
    /// The item: the first cell's text between backticks (or the whole cell without them).
    fn name(&self) -> String {
        let cell = self.cells.first().map(String::as_str).unwrap_or_default();
        match cell.split('`').nth(1) {
            Some(inside) if cell.contains('`') => inside.to_owned(),
            _ => cell.trim().to_owned(),
        }
    }

    /// Whether the item must be there: rows marked *optional* or *transient* may be absent.
    fn required(&self) -> bool {
        !self.cells.iter().any(|c| c.contains("*optional*") || c.contains("*transient*"))
    }

    /// The second cell (the type), if any.
    fn kind(&self) -> &str {
        self.cells.get(1).map(String::as_str).unwrap_or_default()
    }

    /// The type's alternatives, first word of each: `float32 or float16 [N, H, W, C']` →
    /// [float32, float16]; `array of strings` → [array]; `object or null` → [object, null].
    fn type_words(&self) -> Vec<String> {
        let text = self.kind().replace('`', "");
        let end = text.find(['[', '(', ':', ';']).unwrap_or(text.len());
        text[..end]
            .split(" or ")
            .filter_map(|alternative| alternative.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Dimensions the type gives (`[N, H, W, C]` → 4), if it gives a shape.
    fn dimensions(&self) -> Option<usize> {
        let text = self.kind();
        let start = text.find('[')?;
        let end = text[start..].find(']')? + start;
        Some(text[start + 1..end].split(',').count())
    }
}

/// A contract table of the document.
#[derive(Clone, Debug)]
struct Table {
    name: String,
    rows: Vec<Row>,
}

impl Table {
    fn names(&self) -> Vec<String> {
        self.rows.iter().map(Row::name).collect()
    }

    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.name() == name)
    }
}

/// Cells of a Markdown table line; `\|` is a `|` inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut escaped = false;
    for character in inner.chars() {
        match character {
            '|' if !escaped => out.push(String::new()),
            _ => {
                if let Some(last) = out.last_mut() {
                    last.push(character);
                }
            }
        }
        escaped = character == '\\';
    }
    out.iter().map(|cell| cell.trim().replace("\\|", "|")).collect()
}

/// Every marked table of the document, by name; a marker not followed by a table with a header,
/// a separator and at least one row is an error.
fn contract_tables() -> Result<BTreeMap<String, Table>, Error> {
    let path = incept_core::project_root().join(DOC);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut tables = BTreeMap::new();
    for (number, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("<!-- contract:") else { continue };
        let name = rest.trim_end_matches("-->").trim().to_owned();
        let mut following = lines[number + 1..].iter().skip_while(|l| l.trim().is_empty());
        let header = following.next().filter(|l| l.trim_start().starts_with('|'));
        let separator = following.next().filter(|l| l.contains("---"));
        if header.is_none() || separator.is_none() {
            return Err(format!(
                "{DOC} line {}: contract table `{name}` is not followed by a Markdown table",
                number + 1
            )
            .into());
        }
        let rows: Vec<Row> = following
            .take_while(|l| l.trim_start().starts_with('|'))
            .map(|l| Row { cells: cells(l) })
            .collect();
        if rows.is_empty() {
            return Err(format!("{DOC}: contract table `{name}` has no rows").into());
        }
        if tables.insert(name.clone(), Table { name: name.clone(), rows }).is_some() {
            return Err(format!("{DOC}: contract table `{name}` appears twice").into());
        }
    }
    Ok(tables)
}

fn table<'a>(tables: &'a BTreeMap<String, Table>, name: &str) -> Result<&'a Table, Error> {
    tables.get(name).ok_or_else(|| {
        format!("{DOC} has no contract table `{name}` (`<!-- contract: {name} -->`)").into()
    })
}

/// Mismatches found so far, reported together at the end of a test.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// `actual` (the names `what` holds) against the table, both ways.
    fn names(&mut self, table: &Table, actual: &[String], what: &str) {
        let listed: BTreeSet<String> = table.names().into_iter().collect();
        let present: BTreeSet<&String> = actual.iter().collect();
        for row in &table.rows {
            let name = row.name();
            if row.required() && !present.contains(&name) {
                self.0.push(format!(
                    "{DOC} table `{}` lists `{name}`, but {what} has no `{name}`",
                    table.name
                ));
            }
        }
        for name in present {
            if !listed.contains(name) {
                self.0.push(format!(
                    "{what} has `{name}`, which {DOC} table `{}` does not list",
                    table.name
                ));
            }
        }
    }

    /// The exact sequence of CSV columns.
    fn columns(&mut self, table: &Table, expected: &[String], header: &str, what: &str) {
        let found: Vec<String> = header.split(',').map(str::to_owned).collect();
        if found != expected {
            self.0.push(format!(
                "{what} has the columns {found:?}; {DOC} table `{}` documents {expected:?}",
                table.name
            ));
        }
    }

    /// The type `actual` of item `name` must be one the table's row gives.
    fn kind(&mut self, table: &Table, name: &str, actual: &str, what: &str) {
        let Some(row) = table.row(name) else { return };
        let words = row.type_words();
        let fits = words.iter().any(|w| w == actual)
            || (actual == "integer" && words.contains(&"number".to_owned()));
        if !fits {
            self.0.push(format!(
                "{what}: `{name}` is {actual}; {DOC} table `{}` says {:?}",
                table.name,
                row.kind()
            ));
        }
    }

    fn dimensions(&mut self, table: &Table, name: &str, actual: usize, what: &str) {
        let Some(expected) = table.row(name).and_then(Row::dimensions) else { return };
        if expected != actual {
            self.0.push(format!(
                "{what}: `{name}` has {actual} dimensions; {DOC} table `{}` gives {expected}",
                table.name
            ));
        }
    }

    fn check(&mut self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.0.push(message());
        }
    }

    /// Fails with every mismatch, one a line.
    fn finish(mut self) -> TestResult {
        // One line per mismatch, however many objects showed it.
        let mut seen = BTreeSet::new();
        self.0.retain(|problem| seen.insert(problem.clone()));
        assert!(
            self.0.is_empty(),
            "{} mismatch(es) with {DOC}:\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
        Ok(())
    }
}

/// The name of an HDF5 type as the document writes it.
fn hdf5_type(descriptor: &TypeDescriptor) -> String {
    match descriptor {
        TypeDescriptor::Integer(IntSize::U4) => "int32".into(),
        TypeDescriptor::Integer(IntSize::U8) => "int64".into(),
        TypeDescriptor::Unsigned(IntSize::U4) => "uint32".into(),
        TypeDescriptor::Unsigned(IntSize::U8) => "uint64".into(),
        TypeDescriptor::Float(FloatSize::U2) => "float16".into(),
        TypeDescriptor::Float(FloatSize::U4) => "float32".into(),
        TypeDescriptor::Float(FloatSize::U8) => "float64".into(),
        TypeDescriptor::VarLenUnicode => "string".into(),
        other => format!("{other:?}"),
    }
}

/// The name of a JSON value's type as the document writes it.
fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The keys (and their types) of a JSON object against a table.
fn check_object(
    problems: &mut Problems,
    table: &Table,
    value: &serde_json::Value,
    what: &str,
) -> Result<(), Error> {
    let object = value.as_object().ok_or_else(|| format!("{what} is not a JSON object"))?;
    problems.names(table, &object.keys().cloned().collect::<Vec<_>>(), what);
    for (key, item) in object {
        problems.kind(table, key, json_type(item), what);
    }
    Ok(())
}

/// The datasets and root attributes of an HDF5 file against two tables, with types and shapes.
fn check_hdf5(
    problems: &mut Problems,
    path: &Path,
    datasets: &Table,
    attributes: &Table,
    leave_out: &[&str],
) -> Result<(), Error> {
    let what = path.display().to_string();
    let file = hdf5::File::open(path)?;
    // A table with some rows left out: what a self-contained file is documented to lack.
    let without = |table: &Table| Table {
        name: table.name.clone(),
        rows: table
            .rows
            .iter()
            .filter(|r| !leave_out.contains(&r.name().as_str()))
            .cloned()
            .collect(),
    };
    let (datasets, attributes) = (without(datasets), without(attributes));
    let members = file.member_names()?;
    problems.names(&datasets, &members, &what);
    for name in &members {
        let dataset = file.dataset(name)?;
        problems.kind(&datasets, name, &hdf5_type(&dataset.dtype()?.to_descriptor()?), &what);
        problems.dimensions(&datasets, name, dataset.ndim(), &what);
    }
    let names = file.attr_names()?;
    problems.names(&attributes, &names, &what);
    for name in &names {
        let attribute = file.attr(name)?;
        problems
            .check(attribute.ndim() == 0, || format!("{what}: attribute `{name}` is not a scalar"));
        problems.kind(&attributes, name, &hdf5_type(&attribute.dtype()?.to_descriptor()?), &what);
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn file_names(folder: &Path) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = std::fs::read_dir(folder)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn every_contract_table_is_present_filled_and_checked() -> TestResult {
    let tables = contract_tables()?;
    let checked: BTreeSet<&str> = CONTRACT_TABLES.into_iter().collect();
    let mut problems = Problems::default();
    for name in &checked {
        problems.check(tables.contains_key(*name), || {
            format!("{DOC} has no contract table `{name}`, which tests/formats.rs checks")
        });
    }
    for name in tables.keys() {
        problems.check(checked.contains(name.as_str()), || {
            format!("{DOC} marks table `{name}` as a contract, but tests/formats.rs checks no such table")
        });
    }
    eprintln!(
        "{DOC}: {} contract tables, {} rows",
        tables.len(),
        tables.values().map(|t| t.rows.len()).sum::<usize>()
    );
    problems.finish()
}

#[test]
fn a_fresh_cache_and_its_pieces_are_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    make_dataset(&data, &["ant", "bee", "cricket"], 3)?;
    let cache_path = dir.path().join("c.h5");
    let output = ok(extract(&data, &cache_path, &["--copies", "1", "--threads", "1"])?);
    let mut problems = Problems::default();
    problems.check(stdout(&output).trim() == path_str(&cache_path), || {
        format!("incept extract printed {:?}, not the cache's path", stdout(&output))
    });

    let (index_datasets, index_attributes) =
        (table(&tables, "cache-index-datasets")?, table(&tables, "cache-index-attributes")?);
    check_hdf5(&mut problems, &cache_path, index_datasets, index_attributes, &[])?;
    let file = hdf5::File::open(&cache_path)?;
    let features = file.dataset("features")?;
    problems.check(features.layout() == hdf5::dataset::Layout::Virtual, || {
        format!("{}: `features` of an index is not a virtual dataset", cache_path.display())
    });
    let fill = features.fill_value()?.map(|v| v.cast::<f32>());
    problems.check(matches!(fill, Some(Ok(value)) if value.is_nan()), || {
        format!("{}: the virtual `features` does not have the fill value NaN", cache_path.display())
    });
    let format_version: u32 = file.attr("format_version")?.read_scalar()?;
    problems.check(format_version == 2, || format!("format_version is {format_version}, not 2"));
    let compression: hdf5::types::VarLenUnicode = file.attr("compression")?.read_scalar()?;
    problems.check(compression.as_str() == "shuffle+lzf", || {
        format!("the default compression attribute is {compression:?}, not shuffle+lzf")
    });
    let pieces: Vec<hdf5::types::VarLenUnicode> = file.dataset("pieces")?.read_raw()?;
    drop((features, file));

    let (piece_datasets, piece_attributes) =
        (table(&tables, "cache-piece-datasets")?, table(&tables, "cache-piece-attributes")?);
    problems.check(!pieces.is_empty(), || "the fresh index names no piece".into());
    for piece in &pieces {
        problems.check(piece.as_str().starts_with("c.h5.parts/segment-"), || {
            format!("piece {piece:?} is not named c.h5.parts/segment-NNNNNNNN.h5")
        });
        let path = dir.path().join(piece.as_str());
        check_hdf5(&mut problems, &path, piece_datasets, piece_attributes, &[])?;
        let file = hdf5::File::open(&path)?;
        let features = file.dataset("features")?;
        problems.check(features.chunk() == Some(vec![1, 5, 5, 2048]), || {
            format!("{piece}: `features` is chunked {:?}, not one chunk a sample", features.chunk())
        });
        let filters = features.filters();
        problems
            .check(filters == [hdf5::filters::Filter::Shuffle, hdf5::filters::Filter::LZF], || {
                format!("{piece}: filters {filters:?}, not byte shuffle then LZF")
            });
    }
    // Beside the cache: the index, its pieces' folder and the writer lock; nothing else is left.
    let beside = file_names(dir.path())?;
    let expected = ["c.h5", "c.h5.lock", "c.h5.parts", "data"];
    problems.check(beside == expected, || {
        format!("beside the cache: {beside:?}, expected {expected:?}")
    });
    problems.finish()
}

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

#[test]
fn a_trained_run_and_its_outputs_are_as_documented() -> TestResult {
    let tables = contract_tables()?;
    let dir = tempfile::tempdir()?;
    let (data, cache) = tiny_cache(dir.path(), 10)?;
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
            other => vec![other.to_owned()],
        })
        .collect();
    let header = std::fs::read_to_string(run_dir.join("predictions.csv"))?;
    let header = header.lines().next().unwrap_or_default().to_owned();
    problems.columns(predictions_csv, &expected, &header, "predictions.csv");

    // metrics.json and `confusion --format json` share one shape.
    let (confusion, per_class) =
        (table(&tables, "confusion-json")?, table(&tables, "confusion-json-per-class")?);
    let json_output = ok(run(&["confusion", path_str(&run_dir), "--format", "json"])?);
    for (what, value) in [
        ("metrics.json", read_json(&run_dir.join("metrics.json"))?),
        ("incept confusion --format json", serde_json::from_str(&stdout(&json_output))?),
    ] {
        check_object(&mut problems, confusion, &value, what)?;
        for class in value["per_class"].as_array().ok_or("no per_class")? {
            check_object(
                &mut problems,
                per_class,
                class,
                &format!("an entry of {what}'s per_class"),
            )?;
        }
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
    problems.finish()
}

#[test]
fn the_table_parser_reads_names_types_and_markers() {
    let row = Row { cells: cells("| `features` | float32 or float16 [N, H, W, C'] | a \\| b |") };
    assert_eq!(row.name(), "features");
    assert_eq!(row.type_words(), ["float32", "float16"]);
    assert_eq!(row.dimensions(), Some(4));
    assert_eq!(row.cells[2], "a | b");
    assert!(row.required());
    let optional = Row { cells: cells("| `x` | object or null | *optional*: sometimes |") };
    assert_eq!(optional.type_words(), ["object", "null"]);
    assert!(!optional.required());
}
