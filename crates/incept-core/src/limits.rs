//! Process-wide resource policy, set by the binaries (as the allocator policy is).

/// Raises the soft limit on open files to the hard limit.
///
/// A cache is an index over piece files that stay open while it is read (so a piece deleted by a
/// concurrent `--overwrite` stays readable): a merged plan of 1,000 shards holds 1,000 of them,
/// past the usual soft limit of 1,024 descriptors. The hard limit (often 524,288) is what the
/// administrator allows; nothing is raised beyond it. Returns the limit now in force.
pub fn raise_open_file_limit() -> libc::rlim_t {
    #[cfg(unix)]
    #[allow(unsafe_code)]
    // SAFETY: getrlimit and setrlimit read and write one plain struct owned by this frame.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        limit.rlim_cur
    }
    #[cfg(not(unix))]
    0
}

/// Bytes free to an unprivileged writer on the file system holding `dir` (`statvfs`'s
/// `f_bavail`), or `None` where that cannot be told (not Unix, or the call fails): a caller about
/// to write a large scratch file checks it first, so a full disk is refused with the sizes named
/// instead of failing hours in.
pub fn available_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        #[allow(unsafe_code)]
        // SAFETY: statvfs reads a NUL-terminated path and fills one plain struct owned by this
        // frame; zeroed is a valid value of that struct.
        unsafe {
            let mut stats: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(path.as_ptr(), &mut stats) != 0 {
                return None;
            }
            Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_has_some_space_free_and_a_missing_one_none() {
        let dir = std::env::temp_dir();
        let free = available_disk_bytes(&dir);
        assert!(free.is_some_and(|bytes| bytes > 0), "{dir:?}: {free:?}");
        assert_eq!(available_disk_bytes(&dir.join("no such folder, surely")), None);
    }
}
