//! Running core work without the interpreter lock, with Ctrl-C and progress between chunks.
//!
//! CPython runs signal handlers only on the main thread, when it holds the interpreter, so a
//! rayon worker cannot notice Ctrl-C by calling `check_signals()`: that returns at once, and the
//! `KeyboardInterrupt` arrives after the work has ended. Here the calling thread hands the work to
//! the pool as a job and, while it waits, re-attaches every [`SIGNAL_POLL`] to call
//! `check_signals()`. That runs Python's own SIGINT handler, so whatever
//! the user installed decides (the default raises `KeyboardInterrupt`, `SIG_IGN` ignores it, a
//! handler of their own runs); an exception it raises sets the [`PyMonitor`]'s stop flag, which the
//! core's next progress report turns into [`Error::Interrupted`].
//!
//! Why not polars' design (a C handler that sets an atomic flag): it would have to replace or
//! chain Python's handler through `unsafe` FFI, bypass a handler set with `signal.signal`, and
//! still need this wrapper to turn the flag into the exception. The poll costs a wake-up every
//! 50 ms while work runs; work that ends sooner wakes the caller at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

use fmfast_core::parallel::{thread_pool, Monitor};
use fmfast_core::{Error, Result};
use pyo3::prelude::*;

use crate::errors::PyFmError;

/// How often the waiting caller runs Python's signal handlers: well under the second within
/// which Ctrl-C must stop the work, and rare enough to cost nothing.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// A [`Monitor`] that stops the core once Ctrl-C (or any exception) has been seen, and calls an
/// optional Python `progress(done)` callable. The first exception is kept and re-raised once the
/// core has stopped.
pub struct PyMonitor {
    callback: Option<Py<PyAny>>,
    stopped: AtomicBool,
    raised: Mutex<Option<PyErr>>,
}

impl PyMonitor {
    /// A monitor calling `callback` (when given) with the number of units done.
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        PyMonitor {
            callback,
            stopped: AtomicBool::new(false),
            raised: Mutex::new(None),
        }
    }

    /// Stops the work at its next progress report or stop request, keeping `err` unless an
    /// earlier one is kept.
    fn stop(&self, err: PyErr) {
        if let Ok(mut slot) = self.raised.lock() {
            slot.get_or_insert(err);
        }
        self.stopped.store(true, Ordering::Release);
    }

    /// The Python exception raised meanwhile, if any.
    fn take_raised(&self) -> Option<PyErr> {
        self.raised.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl Monitor for PyMonitor {
    fn progress(&self, done: u64) -> Result<()> {
        if self.stop_requested() {
            return Err(Error::Interrupted);
        }
        let Some(callback) = &self.callback else {
            return Ok(());
        };
        Python::attach(|py| callback.call1(py, (done,)).map(drop)).map_err(|err| {
            self.stop(err);
            Error::Interrupted
        })
    }

    fn stop_requested(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// Runs `work` on `n_threads` threads with the interpreter released, reporting to `progress`.
pub fn run<T: Send>(
    py: Python<'_>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&PyMonitor) -> Result<T> + Send,
) -> PyResult<T> {
    match run_stoppable(py, n_threads, progress, work)? {
        (value, None) => Ok(value),
        (_, Some(raised)) => Err(raised),
    }
}

/// As [`run`], for work that still has a result when Ctrl-C, or an exception raised by
/// `progress`, stopped it: the result comes back with that exception. Without a result, the
/// exception is raised (rather than the core's [`fmfast_core::Error::Interrupted`]).
pub fn run_stoppable<T: Send>(
    py: Python<'_>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
    work: impl FnOnce(&PyMonitor) -> Result<T> + Send,
) -> PyResult<(T, Option<PyErr>)> {
    let monitor = PyMonitor::new(progress);
    let result = watch_signals(py, n_threads, &monitor, || work(&monitor));
    match (result, monitor.take_raised()) {
        (Ok(value), raised) => Ok((value, raised)),
        (Err(_), Some(raised)) => Err(raised),
        (Err(err), None) => Err(PyFmError(err).into()),
    }
}

/// Runs `work` on a pool of `n_threads` threads; meanwhile this thread waits detached and runs
/// Python's signal handlers every [`SIGNAL_POLL`], stopping `monitor` on the first exception one
/// raises.
fn watch_signals<T: Send>(
    py: Python<'_>,
    n_threads: usize,
    monitor: &PyMonitor,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let pool = thread_pool(n_threads)?;
    // The work is a job of the pool, as under `install`, so a short call costs no more than one;
    // unlike `install`, this thread is free meanwhile.
    pool.in_place_scope(|scope| {
        let (finished, mut outcome) = sync_channel(1);
        scope.spawn(move |_| {
            // The receiver lives until the scope ends, so the send cannot fail.
            let _ = finished.send(work());
        });
        loop {
            // The receiver is not `Sync`: it goes to the detached closure and comes back.
            let (back, received) = py.detach(move || {
                let received = outcome.recv_timeout(SIGNAL_POLL);
                (outcome, received)
            });
            outcome = back;
            match received {
                Ok(result) => return result,
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(err) = py.check_signals() {
                        monitor.stop(err);
                    }
                }
                // The job ended without sending: it panicked, and the scope resumes the panic here
                // as it ends.
                Err(RecvTimeoutError::Disconnected) => return Err(Error::Interrupted),
            }
        }
    })
}
