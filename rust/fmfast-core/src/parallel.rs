//! Thread pools sized by the caller, and the hook called between chunks of long work.

use crate::error::{Error, Result};

/// Environment variable that caps the default thread count.
pub const THREADS_ENV: &str = "FMFAST_NUM_THREADS";

/// The thread count used for `n_threads = 0`: all cores, capped by `FMFAST_NUM_THREADS` when set.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .map_or(cores, |cap| cap.min(cores))
}

/// Runs `work` inside a rayon pool of `n_threads` threads (`0`: [`default_threads`]).
pub fn with_threads<T: Send>(n_threads: usize, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    thread_pool(n_threads)?.install(work)
}

/// A rayon pool of `n_threads` threads (`0`: [`default_threads`]), for callers that do more
/// than wait while it works.
pub fn thread_pool(n_threads: usize) -> Result<rayon::ThreadPool> {
    let threads = if n_threads == 0 { default_threads() } else { n_threads };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("cannot start {threads} threads: {e}")))
}

/// Called on the caller's thread between chunks of work with the number of units (rows, records,
/// lines) done so far. Returning an error (for example [`Error::Interrupted`]) stops the work.
pub trait Monitor: Sync {
    /// Reports progress; an `Err` aborts the work in progress.
    fn progress(&self, done: u64) -> Result<()>;

    /// Whether the work must stop now ([`Error::Interrupted`]). Unlike [`Monitor::progress`] it
    /// reports nothing and must be cheap, so that loops whose reports lie far apart in time (wide
    /// rows, many factors, many items) can ask between much shorter steps. Never, by default.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// A [`Monitor`] that never stops anything.
pub struct Unmonitored;

impl Monitor for Unmonitored {
    fn progress(&self, _done: u64) -> Result<()> {
        Ok(())
    }
}
