//! One writer at a time: an exclusive lock on a file beside what is written.
//!
//! The lock is the kernel's (`flock`), so it goes away with its process however that process
//! ends — a lock of a process that was killed is simply free again, nothing to take over by
//! hand. Over NFS, Linux maps it onto the server's byte-range locks, so processes on several
//! machines exclude each other as well. The lock file stays in place between runs (deleting it
//! could let two writers lock two different files); it holds the owner's pid, host, start time
//! and command, for the message the next writer sees.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Held while alive; the lock is released when it is dropped (or the process ends).
#[derive(Debug)]
pub struct WriterLock {
    path: PathBuf,
    _file: File,
}

impl WriterLock {
    /// Takes the lock at `lock_path` for writing `target`, or fails at once with
    /// [`Error::Locked`] naming the process that holds it.
    pub fn acquire(lock_path: &Path, target: &Path) -> Result<Self> {
        Self::take(lock_path, target, false)
    }

    /// Takes the lock at `lock_path`, waiting (and saying so on stderr, with the owner) while
    /// another process holds it: for work that the holder may finish for us, such as one shard
    /// started twice by a scheduler.
    pub fn acquire_waiting(lock_path: &Path, target: &Path) -> Result<Self> {
        match Self::take(lock_path, target, false) {
            Err(Error::Locked { owner, .. }) => {
                eprintln!("{}: waiting for the process holding it ({owner})", target.display());
                Self::take(lock_path, target, true)
            }
            other => other,
        }
    }

    fn take(lock_path: &Path, target: &Path, wait: bool) -> Result<Self> {
        let io = |source| Error::Io { path: lock_path.to_path_buf(), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
            .map_err(io)?;
        let attempt = if wait { file.lock().map_err(TryLockError::Error) } else { file.try_lock() };
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                // The owner writes this right after locking: it may still be empty.
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                return Err(Error::Locked {
                    target: target.to_path_buf(),
                    owner: if owner.is_empty() {
                        "owner not yet recorded".into()
                    } else {
                        owner.into()
                    },
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let command: Vec<String> = std::env::args().collect();
        let owner = format!(
            "pid {} on {} since {}: {}",
            std::process::id(),
            crate::atomic::host_name(),
            crate::now_rfc3339(),
            command.join(" ")
        );
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(owner.as_bytes()).map_err(io)?;
        Ok(WriterLock { path: lock_path.to_path_buf(), _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_naming_the_first_until_it_lets_go() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|source| Error::Io { path: "tmp".into(), source })?;
        let lock = dir.path().join("c.h5.lock");
        let target = dir.path().join("c.h5");
        let first = WriterLock::acquire(&lock, &target)?;
        let refused = WriterLock::acquire(&lock, &target).map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        assert!(refused.contains("c.h5"), "{refused}");
        drop(first);
        let again = WriterLock::acquire(&lock, &target)?;
        assert_eq!(again.path(), lock);
        Ok(())
    }
}
