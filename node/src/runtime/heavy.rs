//! Bulk homomorphic work (a holder answering an encrypted alert or query
//! over its whole gallery) runs on a small pool of low-priority threads of
//! its own, not on tokio's blocking pool: however large the backlog, it
//! never takes the cores from the event loops, so gossip, acknowledgements
//! and issuers' decryptions keep moving while it drains.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// The workers' niceness: the lowest priority, so event loops always come first.
const NICE: i32 = 19;

fn pool() -> &'static Sender<Job> {
    static POOL: OnceLock<Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        // One worker per core.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..cores {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("vigil-heavy-{i}"))
                .spawn(move || worker(&rx, NICE))
                .expect("cannot start a worker thread");
        }
        tx
    })
}

fn worker(rx: &Mutex<Receiver<Job>>, nice: i32) {
    lower_priority(nice);
    loop {
        let job = match rx.lock().expect("job queue lock").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job();
    }
}

/// Lowers the calling thread's scheduling priority (Linux: per thread).
#[allow(unsafe_code)]
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers; PRIO_PROCESS with 0 is the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, nice);
    }
}

/// Queues `f` for the bulk pool (FIFO).
pub(super) fn spawn_heavy<F: FnOnce() + Send + 'static>(f: F) {
    let _ = pool().send(Box::new(f));
}
