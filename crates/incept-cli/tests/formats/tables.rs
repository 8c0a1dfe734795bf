//! Reading the contract tables of docs/FORMATS.md, and checking that each is there and read.

use std::collections::{BTreeMap, BTreeSet};

use super::checks::Problems;
use super::{DOC, Error};
use crate::common::*;

/// Every contract table of the document, and only those: each is checked by a sibling module.
const CONTRACT_TABLES: [&str; 41] = [
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
    "run-json-sha256",
    "run-json-epoch",
    "run-json-cross-validation",
    "run-json-fold-result",
    "cross-validation-files",
    "metrics-csv",
    "predictions-csv",
    "calibration-json",
    "calibration-json-fit",
    "confusion-json",
    "confusion-json-per-class",
    "confusion-json-worst-class",
    "confusion-csv",
    "compare-json",
    "suspects-json",
    "suspects-json-suspect",
    "compare-json-run",
    "compare-json-accuracy",
    "compare-json-pair",
    "predict-json",
    "predict-json-top",
    "export-graph",
    "export-metadata",
    "web-page-files",
    "classifier-json",
];

/// One row of a contract table: its cells, the first naming the item.
#[derive(Clone, Debug)]
pub(super) struct Row {
    pub(super) cells: Vec<String>,
}

impl Row {
    /// The item: the first cell's text between backticks (or the whole cell without them).
    pub(super) fn name(&self) -> String {
        let cell = self.cells.first().map(String::as_str).unwrap_or_default();
        match cell.split('`').nth(1) {
            Some(inside) if cell.contains('`') => inside.to_owned(),
            _ => cell.trim().to_owned(),
        }
    }

    /// Whether the item must be there: rows marked *optional* or *transient* may be absent.
    pub(super) fn required(&self) -> bool {
        !self.cells.iter().any(|c| c.contains("*optional*") || c.contains("*transient*"))
    }

    /// The second cell (the type), if any.
    pub(super) fn kind(&self) -> &str {
        self.cells.get(1).map(String::as_str).unwrap_or_default()
    }

    /// The type's alternatives, first word of each: `float32 or float16 [N, H, W, C']` →
    /// [float32, float16]; `array of strings` → [array]; `object or null` → [object, null].
    pub(super) fn type_words(&self) -> Vec<String> {
        let text = self.kind().replace('`', "");
        let end = text.find(['[', '(', ':', ';']).unwrap_or(text.len());
        text[..end]
            .split(" or ")
            .filter_map(|alternative| alternative.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Dimensions the type gives (`[N, H, W, C]` → 4), if it gives a shape.
    pub(super) fn dimensions(&self) -> Option<usize> {
        let text = self.kind();
        let start = text.find('[')?;
        let end = text[start..].find(']')? + start;
        Some(text[start + 1..end].split(',').count())
    }
}

/// A contract table of the document.
#[derive(Clone, Debug)]
pub(super) struct Table {
    pub(super) name: String,
    pub(super) rows: Vec<Row>,
}

impl Table {
    pub(super) fn names(&self) -> Vec<String> {
        self.rows.iter().map(Row::name).collect()
    }

    pub(super) fn row(&self, name: &str) -> Option<&Row> {
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
pub(super) fn contract_tables() -> Result<BTreeMap<String, Table>, Error> {
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

pub(super) fn table<'a>(
    tables: &'a BTreeMap<String, Table>,
    name: &str,
) -> Result<&'a Table, Error> {
    tables.get(name).ok_or_else(|| {
        format!("{DOC} has no contract table `{name}` (`<!-- contract: {name} -->`)").into()
    })
}

#[test]
fn every_contract_table_is_present_filled_and_checked() -> TestResult {
    let tables = contract_tables()?;
    let checked: BTreeSet<&str> = CONTRACT_TABLES.into_iter().collect();
    let mut problems = Problems::default();
    for name in &checked {
        problems.check(tables.contains_key(*name), || {
            format!("{DOC} has no contract table `{name}`, which tests/formats/ checks")
        });
    }
    for name in tables.keys() {
        problems.check(checked.contains(name.as_str()), || {
            format!(
                "{DOC} marks table `{name}` as a contract, but tests/formats/ checks no such table"
            )
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
