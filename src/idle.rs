//! Background threads that take only the CPU the answers leave idle: the shadow worker
//! (`predict`) and the prediction log's writer (`observe`).

/// Puts the calling thread (and the threads it starts later) at the lowest CPU priority.
/// On Linux `SCHED_IDLE`: measured, nice 19 alone let a shadow sharing the server's core
/// raise its p50 from 0.23 to 0.68 ms (BENCHMARKS.md, "Shadow traffic"), because a woken
/// thread does not preempt a niced one at once under the EEVDF scheduler; an idle-policy
/// thread it does.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lowest_priority() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the call reads `param` during the call only; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
fn lowest_priority() -> std::io::Result<()> {
    rustix::process::nice(19).map(drop).map_err(std::io::Error::from)
}

/// For a background worker's own thread: lowers its priority (inherited by the threads it
/// starts, such as the runtime's blocking pool) and builds its single-threaded runtime.
/// `None` (logged, naming `worker`) when no runtime could be made.
pub fn worker_runtime(worker: &str) -> Option<tokio::runtime::Runtime> {
    if let Err(e) = lowest_priority() {
        tracing::warn!("{worker}: cannot lower its CPU priority: {e}");
    }
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => Some(runtime),
        Err(e) => {
            tracing::error!("{worker}: cannot start its runtime: {e}; its work is dropped");
            None
        }
    }
}
