//! Output into a pipe that closed (`incept confusion RUN | head -3`).

/// Ends the process quietly when stdout's reader has gone, as Unix tools do, instead of the
/// panic Rust's `println!` raises on a broken pipe. Rust ignores SIGPIPE by default; this puts
/// back the default action. incept writes its files, never pipes, so only stdout is concerned.
pub fn end_quietly_on_broken_pipe() {
    #[cfg(unix)]
    #[allow(unsafe_code)]
    // SAFETY: resetting a signal's disposition to its default has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
