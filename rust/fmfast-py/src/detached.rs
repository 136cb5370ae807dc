//! Running core work without the interpreter lock, with Ctrl-C and progress between chunks.

use std::sync::Mutex;

use fmfast_core::parallel::{with_threads, Monitor};
use fmfast_core::{Error, Result};
use pyo3::prelude::*;

use crate::errors::PyFmError;

/// A [`Monitor`] that checks for Ctrl-C and calls an optional Python `progress(done)` callable.
/// A Python exception raised there is kept and re-raised once the core has stopped.
pub struct PyMonitor {
    callback: Option<Py<PyAny>>,
    raised: Mutex<Option<PyErr>>,
}

impl PyMonitor {
    /// A monitor calling `callback` (when given) with the number of units done.
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        PyMonitor {
            callback,
            raised: Mutex::new(None),
        }
    }

    /// The Python exception raised meanwhile, if any.
    fn take_raised(&self) -> Option<PyErr> {
        self.raised.lock().ok().and_then(|mut slot| slot.take())
    }
}

impl Monitor for PyMonitor {
    fn progress(&self, done: u64) -> Result<()> {
        Python::attach(|py| {
            let outcome = py.check_signals().and_then(|()| {
                self.callback
                    .as_ref()
                    .map_or(Ok(()), |cb| cb.call1(py, (done,)).map(drop))
            });
            outcome.map_err(|err| {
                if let Ok(mut slot) = self.raised.lock() {
                    *slot = Some(err);
                }
                Error::Interrupted
            })
        })
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
    let result = py.detach(|| with_threads(n_threads, || work(&monitor)));
    match (result, monitor.take_raised()) {
        (Ok(value), raised) => Ok((value, raised)),
        (Err(_), Some(raised)) => Err(raised),
        (Err(err), None) => Err(PyFmError(err).into()),
    }
}
