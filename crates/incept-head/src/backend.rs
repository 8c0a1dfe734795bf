//! Which of Burn's CPU backends trains and runs a head.

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Burn's CPU backends, chosen at run time (Burn 0.22 dispatches by device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// burn-ndarray, only in a build with the `ndarray` cargo feature (with OpenBLAS when built
    /// with `blas`); deprecated upstream, kept for `just bench-train`.
    Ndarray,
    /// Burn's pure-Rust `flex` backend: the fastest here (see `just bench-train`).
    #[default]
    Flex,
}

impl Backend {
    /// The device to train or predict on; a backend this build lacks is an error that says how
    /// to get it (a run trained on ndarray records it, and is resumed on it).
    pub fn device(self) -> Result<Device> {
        match self {
            Backend::Flex => Ok(Device::flex()),
            Backend::Ndarray => ndarray_device(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Ndarray if cfg!(feature = "blas") => "ndarray+openblas",
            Backend::Ndarray => "ndarray",
            Backend::Flex => "flex",
        }
    }
}

// burn-ndarray is deprecated upstream in favour of flex; `just bench-train` still compares them.
#[cfg(feature = "ndarray")]
#[allow(deprecated)]
fn ndarray_device() -> Result<Device> {
    Ok(Device::ndarray())
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_device() -> Result<Device> {
    Err(crate::Error::Config(
        "this incept was built without Burn's ndarray backend, which --backend ndarray (or the \
         run being resumed) asks for: build incept with `cargo build --release --locked -p \
         incept-cli --features ndarray`, or train a new run with --backend flex"
            .into(),
    ))
}
