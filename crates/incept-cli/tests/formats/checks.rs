//! Checking artefacts against contract tables: names both ways, types, shapes and CSV columns.

use std::collections::BTreeSet;
use std::path::Path;

use super::tables::{Row, Table};
use super::{DOC, Error};
use crate::common::*;
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};

/// Mismatches found so far, reported together at the end of a test.
#[derive(Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    /// `actual` (the names `what` holds) against the table, both ways.
    pub(super) fn names(&mut self, table: &Table, actual: &[String], what: &str) {
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
    pub(super) fn columns(&mut self, table: &Table, expected: &[String], header: &str, what: &str) {
        let found: Vec<String> = header.split(',').map(str::to_owned).collect();
        if found != expected {
            self.0.push(format!(
                "{what} has the columns {found:?}; {DOC} table `{}` documents {expected:?}",
                table.name
            ));
        }
    }

    /// The type `actual` of item `name` must be one the table's row gives.
    pub(super) fn kind(&mut self, table: &Table, name: &str, actual: &str, what: &str) {
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

    pub(super) fn dimensions(&mut self, table: &Table, name: &str, actual: usize, what: &str) {
        let Some(expected) = table.row(name).and_then(Row::dimensions) else { return };
        if expected != actual {
            self.0.push(format!(
                "{what}: `{name}` has {actual} dimensions; {DOC} table `{}` gives {expected}",
                table.name
            ));
        }
    }

    pub(super) fn check(&mut self, condition: bool, message: impl FnOnce() -> String) {
        if !condition {
            self.0.push(message());
        }
    }

    /// A mismatch found by hand.
    pub(super) fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// Fails with every mismatch, one a line.
    pub(super) fn finish(mut self) -> TestResult {
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
pub(super) fn check_object(
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
pub(super) fn check_hdf5(
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

pub(super) fn read_json(path: &Path) -> Result<serde_json::Value, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

pub(super) fn file_names(folder: &Path) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = std::fs::read_dir(folder)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    Ok(names)
}
