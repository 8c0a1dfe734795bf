//! Helpers shared by every incept stage.
//!
//! - [`progress`]: the one place progress bars are made (stderr, hidden when not a terminal).
//! - [`stable_hash`]: hashes that never change between runs, machines or versions, used to seed
//!   augmentation and to split train/validation by source image.
//! - [`atomic`]: the one helper that writes files users rely on (whole or not at all).
//! - [`lock`]: one writer at a time, with the other process named when refused.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod allocator;
pub mod atomic;
pub mod limits;
pub mod lock;
pub mod progress;

pub use atomic::{write_atomically, write_atomically_with};

/// Errors of the shared helpers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{target} is being written by another incept process ({owner}); wait for it to finish \
         or stop it, then run again"
    )]
    Locked { target: PathBuf, owner: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// ENOSPC: no space left on the device being written.
const NO_SPACE: i32 = 28;

/// Whether an I/O error says the disk (or quota) is full.
pub fn is_disk_full(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(NO_SPACE) || error.kind() == std::io::ErrorKind::StorageFull
}

/// Whether an error's text says the disk is full: for libraries (HDF5) whose errors carry the
/// system error only in their message.
pub fn mentions_disk_full(text: &str) -> bool {
    text.contains("No space left on device") || text.contains("errno = 28,")
}

/// Largest width or height of a photo incept decodes (extraction, report thumbnails): bigger
/// ones are refused from their header, before any pixel is allocated.
pub const MAX_IMAGE_DIMENSION: u32 = 16_384;

/// Photos a class needs before its figures mean much: below it, one validation photo moves the
/// class's recall by 25 points or more, and `extract` and `train-head` warn, naming the class.
pub const FEW_PHOTOS: usize = 20;

/// Whether `value` is 0: for serde's `skip_serializing_if` on options that are off at 0, so
/// files written before the option existed keep matching.
pub fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

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
    Ok(lowercase_hex(&hasher.finalize()))
}

/// SHA-256 of bytes in memory, as lowercase hex (as [`sha256_file`] gives for a file of them).
pub fn sha256_hex(bytes: &[u8]) -> String {
    lowercase_hex(&Sha256::digest(bytes))
}

fn lowercase_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current UTC time as RFC 3339 with seconds, e.g. `2026-11-29T02:40:00Z`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The project root (the workspace folder), from any crate's `CARGO_MANIFEST_DIR`.
pub fn project_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_values_are_pinned_and_parts_are_length_prefixed() {
        // Pinned: a change here would reshuffle every user's validation split and augmentations.
        assert_eq!(stable_hash(&[b"a/b.jpg"]), PINNED_PHOTO);
        assert_eq!(stable_hash(&[b"incept validation split", b"ant/1.png"]), PINNED_SPLIT);
        // The length prefixes keep the boundaries: ("ab", "c"), ("a", "bc"), ("abc") all differ.
        assert_eq!(stable_hash(&[b"ab", b"c"]), PINNED_AB_C);
        assert_ne!(stable_hash(&[b"a", b"bc"]), PINNED_AB_C);
        assert_ne!(stable_hash(&[b"abc"]), PINNED_AB_C);
    }

    // Computed outside Rust: the first 8 bytes, little-endian, of Python's
    // hashlib.sha256(b"".join(struct.pack('<Q', len(p)) + p for p in parts)).
    const PINNED_PHOTO: u64 = 0xa313_bcee_218e_091f;
    const PINNED_SPLIT: u64 = 0x7e2b_60d3_f415_495d;
    const PINNED_AB_C: u64 = 0xca01_de79_5565_ee43;

    #[test]
    fn sha256_of_bytes_is_the_standard_digest_in_lowercase_hex() {
        // FIPS 180-2's example: run.json's checkpoint checksums must match `sha256sum`.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn now_is_rfc3339_utc_and_now() {
        let now = now_rfc3339();
        let parsed = chrono::DateTime::parse_from_rfc3339(&now).map(|t| t.timestamp());
        let seconds = chrono::Utc::now().timestamp();
        assert!(parsed.is_ok_and(|t| (seconds - t).abs() <= 5), "{now}");
        assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    }
}
