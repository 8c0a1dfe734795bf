//! What the benches share.

/// The allocator policy `incept train-head` sets in its `main` (see `keep_freed_memory` in
/// crates/incept-cli/src/main.rs), so the bench measures the steps as the command runs them.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes malloc's tuning parameters; both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
