//! The one way incept writes a file that users rely on: whole or not at all.
//!
//! A file is written under a temporary name unique to this process and call, in the same folder
//! (so the rename cannot cross file systems), flushed to disk, renamed over the final name, and
//! the folder is flushed so the rename itself survives a power cut. Readers see the old file or
//! the new one, never half of either; two writers never share a temporary file.
//!
//! Temporary names are hidden (`.NAME.tmp-PID-N@HOST`) so folder scans pass over them; one left
//! by a killed process is removed by [`remove_stale_temporaries`] once that process is gone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Marks a temporary file: `.NAME{TEMPORARY_MARK}PID-N@HOST`.
const TEMPORARY_MARK: &str = ".tmp-";

/// Distinguishes the temporary files of concurrent writes within one process.
static NEXT_TEMPORARY: AtomicU64 = AtomicU64::new(0);

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// This machine's name, as processes on a shared file system tell each other apart.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Whether process `pid` of this machine is still running.
pub fn process_is_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// A fresh temporary path beside `path`, unique to this process and call.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let counter = NEXT_TEMPORARY.fetch_add(1, Ordering::Relaxed);
    let temporary =
        format!(".{name}{TEMPORARY_MARK}{}-{counter}@{}", std::process::id(), host_name());
    path.with_file_name(temporary)
}

/// The writer (pid, host) of a temporary file name made by [`temporary_path`], if it is one.
fn temporary_owner(file_name: &str) -> Option<(u32, &str)> {
    let (rest, host) = file_name.rsplit_once('@')?;
    let (rest, _counter) = rest.rsplit_once('-')?;
    let (rest, pid) = rest.rsplit_once(TEMPORARY_MARK)?;
    (rest.starts_with('.') && rest.len() > 1).then_some(())?;
    Some((pid.parse().ok()?, host))
}

/// Flushes a folder's entries (a rename into it, a new file) to disk.
pub fn sync_folder(folder: &Path) -> Result<()> {
    let folder = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
    std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(io_error(folder))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes `path` atomically with `write`, which creates the file at the temporary path it is
/// given (an HDF5 file, a weights file, …) and closes it before returning.
///
/// On error the temporary file is removed and `path` is left as it was.
pub fn write_atomically_with<E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let temporary = Temporary::beside(path);
    write(temporary.path())?;
    Ok(temporary.commit()?)
}

/// A file being written in steps under a temporary name (the form of
/// [`write_atomically_with`] for a file filled over many calls, e.g. a cache segment that takes
/// feature maps batch by batch): [`Temporary::commit`] makes it `path` whole; dropped without a
/// commit (an error, a stopped run), the temporary file is removed and `path` is untouched.
#[derive(Debug)]
pub struct Temporary {
    /// `None` once committed.
    temporary: Option<PathBuf>,
    path: PathBuf,
}

impl Temporary {
    /// A fresh temporary name for `path` (nothing is created: the caller creates the file).
    pub fn beside(path: &Path) -> Self {
        Temporary { temporary: Some(temporary_path(path)), path: path.to_path_buf() }
    }

    /// Where to write the file until it is committed.
    pub fn path(&self) -> &Path {
        self.temporary.as_deref().unwrap_or(&self.path)
    }

    /// The name the file gets on commit.
    pub fn final_path(&self) -> &Path {
        &self.path
    }

    /// Flushes the closed temporary file to disk, renames it over the final name and flushes
    /// the folder. On an error before the rename the temporary file is removed and the final
    /// name left as it was; if only the folder flush fails, the file is whole under its final
    /// name but the rename may not survive a power cut.
    pub fn commit(mut self) -> Result<()> {
        let Some(temporary) = self.temporary.take() else { return Ok(()) };
        let committed = std::fs::File::open(&temporary)
            .and_then(|f| f.sync_all())
            .map_err(io_error(&temporary))
            .and_then(|()| std::fs::rename(&temporary, &self.path).map_err(io_error(&self.path)))
            .and_then(|()| sync_folder(parent_of(&self.path)));
        if committed.is_err() {
            // The error that matters is the commit's; a leftover is removed once this process
            // is gone.
            let _ = std::fs::remove_file(&temporary);
        }
        committed
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(temporary) = self.temporary.take() {
            // Not committed: nothing of it may be taken for a finished file.
            let _ = std::fs::remove_file(temporary);
        }
    }
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |temporary| {
        let mut file = std::fs::File::create_new(temporary).map_err(io_error(temporary))?;
        file.write_all(bytes).map_err(io_error(temporary))
    })
}

/// Renames `from` over `to` and flushes the folder: the second half of a two-step commit whose
/// first half wrote `from` with [`write_atomically`].
pub fn rename_durably(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(io_error(to))?;
    sync_folder(parent_of(to))
}

/// Removes the temporary files in `folder` left by processes of this machine that are gone;
/// returns how many. Those of live processes, or of other machines, are left alone.
pub fn remove_stale_temporaries(folder: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(Error::Io { path: folder.to_path_buf(), source: error }),
    };
    let host = host_name();
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io_error(folder))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, owner_host)) = temporary_owner(&name) else { continue };
        if owner_host == host && !process_is_alive(pid) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                // Another process cleaning up at the same moment took it first.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(Error::Io { path: entry.path(), source: error }),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temporary folder")
    }

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() -> Result<()> {
        let dir = tempdir();
        let path = dir.path().join("x.txt");
        write_atomically(&path, b"first")?;
        write_atomically(&path, b"second")?;
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"second"[..]));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(io_error(dir.path()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, ["x.txt"]);
        Ok(())
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() -> Result<()> {
        let dir = tempdir();
        let path = dir.path().join("x.txt");
        write_atomically(&path, b"old")?;
        let failed: Result<()> = write_atomically_with(&path, |temporary| {
            std::fs::write(temporary, b"half").map_err(io_error(temporary))?;
            Err(Error::Io { path: temporary.to_path_buf(), source: std::io::Error::other("full") })
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).ok().as_deref(), Some(&b"old"[..]));
        assert_eq!(std::fs::read_dir(dir.path()).map_err(io_error(dir.path()))?.count(), 1);
        Ok(())
    }

    #[test]
    fn temporary_names_are_unique_hidden_and_parse_back() {
        let path = Path::new("/runs/a/last.bpk");
        let (first, second) = (temporary_path(path), temporary_path(path));
        assert_ne!(first, second);
        assert_eq!(first.parent(), path.parent());
        let name = first.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        assert!(name.starts_with(".last.bpk.tmp-"), "{name}");
        assert_eq!(temporary_owner(&name), Some((std::process::id(), host_name().as_str())));
        assert_eq!(temporary_owner("last.bpk"), None);
        assert_eq!(temporary_owner("photo-1@2x.jpg"), None);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_live_ones_kept() -> Result<()> {
        let dir = tempdir();
        let host = host_name();
        // Far above any pid_max: no such process.
        let dead = dir.path().join(format!(".c.h5.tmp-999999999-0@{host}"));
        let live = temporary_path(&dir.path().join("c.h5"));
        let elsewhere = dir.path().join(".c.h5.tmp-999999999-0@another-machine");
        for path in [&dead, &live, &elsewhere] {
            std::fs::write(path, b"x").map_err(io_error(path))?;
        }
        assert_eq!(remove_stale_temporaries(dir.path())?, 1);
        assert!(!dead.exists() && live.exists() && elsewhere.exists());
        Ok(())
    }
}
