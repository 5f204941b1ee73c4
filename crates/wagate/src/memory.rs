//! Giving memory back. glibc's malloc keeps what was freed for reuse, in one
//! arena per thread that ever allocated, so a burst (a thousand orgs linking,
//! a history sync) leaves the process larger than its live data for good. At
//! start-up the arenas are capped at two; then, once a minute, free pages are
//! returned to the system (`malloc_trim`). Measured on 1,000 idle linked orgs
//! (release build): see BENCHMARKS.md. Only with glibc on Linux; elsewhere
//! both do nothing.

use std::time::Duration;

/// Cap malloc's arenas; call before other threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called at start-up.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Return free heap pages to the system now; whether any were.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe.
    unsafe {
        return libc::malloc_trim(0) == 1;
    }
    #[allow(unreachable_code)]
    false
}

/// Trim every `every` until `stop`.
pub async fn run(every: Duration, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}
