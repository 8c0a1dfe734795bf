//! Process-wide allocator policy. Programs choose it in `main` (as ripgrep chooses its
//! allocator): `incept`, and the benches that time training as `incept train-head` runs it.
//! Libraries never call it.

/// Makes glibc keep freed memory for reuse instead of handing it back to the kernel.
///
/// Training allocates and frees the same large buffers every step (the flatten head's weight
/// gradient alone is 210 MB). glibc serves blocks over 32 MB with a fresh `mmap` and unmaps them
/// on free, so every step page-faults and zeroes hundreds of megabytes again. With `mmap` off and
/// trimming off, freed blocks go back to malloc's free lists and the next step reuses them.
/// The process's resident size stays at its peak instead of shrinking between steps.
///
/// Call once, at the start of a program, before threads allocate. Does nothing outside glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes malloc's tuning parameters; both values are in range.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
