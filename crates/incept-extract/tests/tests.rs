//! The extraction library's integration tests, one binary for all.

mod npy;
mod reference;
mod resize;

use std::path::PathBuf;

/// The read-only `shared/` folder beside the checkout (data set and reference tensors);
/// `INCEPT_SHARED` overrides.
fn shared_dir() -> PathBuf {
    std::env::var_os("INCEPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| incept_core::project_root().join("../shared"))
}
