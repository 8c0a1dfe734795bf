//! Helpers shared by every incept stage.
//!
//! - [`progress`]: the one place progress bars are made (stderr, hidden when not a terminal).
//! - [`stable_hash`]: hashes that never change between runs, machines or versions, used to seed
//!   augmentation and to split train/validation by source image.
//! - [`write_atomically`]: write a file so that readers see the old or the new, never half.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod npy;
pub mod progress;

/// Errors of the shared helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A 64-bit hash of `parts` that is stable across runs and platforms (first 8 bytes of SHA-256;
/// parts are length-prefixed so `("ab", "c")` and `("a", "bc")` differ).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so an
/// interrupted write never leaves a truncated file behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    {
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&partial, path).map_err(io)
}

/// The project root (the workspace folder), from any crate's `CARGO_MANIFEST_DIR`.
pub fn project_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The read-only `shared/` folder beside the checkout (data set and reference tensors);
/// `INCEPT_SHARED` overrides.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("INCEPT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("../shared"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_stable_and_separates_parts() {
        // Pinned value: a change here would reshuffle every user's validation split.
        assert_eq!(stable_hash(&[b"a/b.jpg"]), stable_hash(&[b"a/b.jpg"]));
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hash(&[]), 0x_e3b0_c442_98fc_1c14_u64.swap_bytes());
    }

    #[test]
    fn write_atomically_replaces_whole_file() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let path = dir.path().join("x.txt");
        write_atomically(&path, b"first")?;
        write_atomically(&path, b"second")?;
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"second"[..]));
        assert!(!dir.path().join("x.txt.partial").exists());
        Ok(())
    }
}
