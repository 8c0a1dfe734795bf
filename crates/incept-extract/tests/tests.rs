//! The extraction library's integration tests, one binary for all.

mod reference;
mod resize;
