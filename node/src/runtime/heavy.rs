//! Bulk homomorphic work (a holder answering an encrypted alert or query
//! over its whole gallery) runs on a rayon pool of low-priority threads of
//! its own, not on tokio's blocking pool nor on rayon's global pool:
//! however large the backlog, it never takes the cores from the event
//! loops, so gossip, acknowledgements and issuers' decryptions keep moving
//! while it drains. The kernels' own parallel loops (`par_chunks` inside
//! `respond`, `respond_row`) run on this pool too, because a job runs on
//! one of its threads: before, they went to the global pool at normal
//! priority and only the waiting thread was niced.

use std::sync::OnceLock;

/// The workers' niceness: the lowest priority, so event loops always come first.
const NICE: i32 = 19;

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| low_priority_pool("vigil-heavy").expect("cannot start the bulk work pool"))
}

/// A rayon pool of one worker per core, named `{name}-{i}`, at the lowest
/// priority: the bulk pool, a drill attacker's pool, the drill harness's.
pub fn low_priority_pool(name: &'static str) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(cores)
        .thread_name(move |i| format!("{name}-{i}"))
        .start_handler(|_| lowest_priority())
        .build()
}

/// Gives the calling thread the lowest scheduling priority (Linux: per
/// thread; threads it starts inherit it).
#[allow(unsafe_code)]
pub(super) fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers; PRIO_PROCESS with 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICE);
    }
}

/// Queues `f` for the bulk pool (first in, first out).
pub(super) fn spawn_heavy<F: FnOnce() + Send + 'static>(f: F) {
    pool().spawn_fifo(f);
}
