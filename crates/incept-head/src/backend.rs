//! Which of Burn's CPU backends trains and runs a head.

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

/// Burn's CPU backends, chosen at run time (Burn 0.22 dispatches by device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Backend {
    /// burn-ndarray (with OpenBLAS when built with the `blas` feature).
    Ndarray,
    /// Burn's pure-Rust `flex` backend: the fastest here (see `just bench-train`).
    #[default]
    Flex,
}

impl Backend {
    // burn-ndarray is deprecated upstream in favour of flex; it stays selectable because the
    // user named it, and `just bench-train` compares the two.
    #[allow(deprecated)]
    pub fn device(self) -> Device {
        match self {
            Backend::Ndarray => Device::ndarray(),
            Backend::Flex => Device::flex(),
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
