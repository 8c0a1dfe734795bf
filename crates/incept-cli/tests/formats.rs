//! docs/FORMATS.md is the contract of incept's files and outputs; this test reads its marked
//! tables (`<!-- contract: NAME -->` before a Markdown table) and checks each against real
//! artefacts made here with the tiny fixture model: a cache, a plan with its shards and merges,
//! a trained run, and the outputs of `confusion`, `predict` and `export`. Both ways: what the
//! document lists must be there (unless marked *optional* or *transient*), and what is there must
//! be listed. A marked table that is missing or empty fails the test; so does a marked table no
//! check here reads.

mod cache;
mod checks;
mod compare;
mod folds;
mod plan;
mod run;
mod tables;

const DOC: &str = "docs/FORMATS.md";

type Error = Box<dyn std::error::Error>;
