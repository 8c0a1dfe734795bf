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
