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

    /// Converts the outcome of detached work, preferring a Python exception raised meanwhile.
    pub fn finish<T>(&self, result: Result<T>) -> PyResult<T> {
        let raised = self.raised.lock().ok().and_then(|mut slot| slot.take());
        match (result, raised) {
            (Err(_), Some(err)) => Err(err),
            (result, _) => result.map_err(|e| PyFmError(e).into()),
        }
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
    let monitor = PyMonitor::new(progress);
    let result = py.detach(|| with_threads(n_threads, || work(&monitor)));
    monitor.finish(result)
}
