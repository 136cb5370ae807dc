//! Bindings of Factorization Machines: train epochs on caller-owned weights, predict raw scores.
//!
//! The Python estimator owns every array (weights and optimizer state) in an `FmState`;
//! `fit_epochs` borrows them mutably and updates them in place with the interpreter released.

use std::sync::Mutex;

use fmfast_core::csr::Values;
use fmfast_core::fm::{self, Checkpoint, EpochStats, Weights};
use fmfast_core::Error;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{with_csr, IndexSlices, PyIndices, PyValues};
use crate::detached::{run, run_stoppable};
use crate::errors::FmFastError;
use crate::fm_contract::{FmConfig, FmState};

/// `(rows, loss_sum, true_positives, false_positives, true_negatives, false_negatives)`.
type PyEpochStats = (u64, f64, u64, u64, u64, u64);

fn stats_tuple(s: &EpochStats) -> PyEpochStats {
    (
        s.rows,
        s.loss_sum,
        s.true_positives,
        s.false_positives,
        s.true_negatives,
        s.false_negatives,
    )
}

/// The thread chooser's measurements, carried from one `fm_fit_epochs` call to the next of a
/// fit trained read by read ([`fm::ThreadChoice`]); empty until its first call.
#[pyclass(module = "fmfast._fmfast", name = "ThreadChoice", frozen)]
#[derive(Default)]
struct PyThreadChoice(Mutex<fm::ThreadChoice>);

#[pymethods]
impl PyThreadChoice {
    #[new]
    fn new() -> Self {
        PyThreadChoice::default()
    }
}

/// Trains `config.epochs` epochs on CSR rows, updating the arrays of `state` in place; returns
/// the new update count `t`, the statistics of each epoch and `None`.
///
/// With a `checkpoint` (arrays shaped like `state`'s), the core copies the weights and state into
/// it at the end of every epoch but the last. When Ctrl-C (or an exception raised by `progress`)
/// stops training after an epoch has ended, `checkpoint` holds the last complete epoch, and the
/// call returns its `t`, the statistics of its epochs and the exception, for the caller to keep
/// that model and then raise it. With a `thread_choice`, the thread counts go on from the
/// measurements of the earlier calls given it.
#[pyfunction]
#[pyo3(name = "fm_fit_epochs", signature = (n_cols, csr, data, labels, sample_weight, state, config, n_threads=0, progress=None, checkpoint=None, thread_choice=None))]
#[allow(clippy::too_many_arguments)]
fn fit_epochs(
    py: Python<'_>,
    n_cols: u64,
    csr: PyIndices<'_>,
    data: PyValues<'_>,
    labels: PyValues<'_>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
    state: PyRef<'_, FmState>,
    config: PyRef<'_, FmConfig>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
    checkpoint: Option<PyRef<'_, FmState>>,
    thread_choice: Option<PyRef<'_, PyThreadChoice>>,
) -> PyResult<(u64, Vec<PyEpochStats>, Option<PyErr>)> {
    let config = config.train_config();
    let mut state = state.arrays(py)?;
    let mut checkpoint = checkpoint.map(|held| held.arrays(py)).transpose()?;
    let indices = IndexSlices::new(&csr)?;
    let values = data.as_values()?;
    let labels = labels.as_values()?;
    let sample_weight = sample_weight.as_ref().map(|w| w.as_slice()).transpose()?;
    let (mut weights, mut opt_state) = state.borrow()?;
    let mut checkpoint = match checkpoint.as_mut() {
        Some(held) => Some(held.borrow().map(|(w, s)| Checkpoint::new(w, s))?),
        None => None,
    };
    // Not waited for: a call that holds it waits for the interpreter (progress) in turn.
    let mut held_choice = thread_choice
        .as_ref()
        .map(|held| held.0.try_lock())
        .transpose()
        .map_err(|_| FmFastError::new_err("the thread choice is in use by another call"))?;
    let choice = held_choice.as_deref_mut();
    let ((t, stats), stopped) = run_stoppable(py, n_threads, progress, |monitor| {
        let trained = with_csr!(indices, values.len(), n_cols, x => fm::fit_epochs(
            &x,
            values,
            labels,
            sample_weight,
            &mut weights,
            &mut opt_state,
            checkpoint.as_mut(),
            &config,
            choice,
            monitor,
        ));
        match (trained, &checkpoint) {
            (Ok(stats), _) => Ok((opt_state.t, stats)),
            (Err(Error::Interrupted), Some(held)) if !held.epochs().is_empty() => {
                Ok((held.t(), held.epochs().to_vec()))
            }
            (Err(err), _) => Err(err),
        }
    })?;
    Ok((t, stats.iter().map(stats_tuple).collect(), stopped))
}

/// Raw scores ŷ of CSR rows.
#[pyfunction]
#[pyo3(name = "fm_predict", signature = (n_cols, csr, data, bias, linear, factors, n_threads=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn predict<'py>(
    py: Python<'py>,
    n_cols: u64,
    csr: PyIndices<'py>,
    data: PyValues<'py>,
    bias: f64,
    linear: PyReadonlyArray1<'py, f32>,
    factors: PyReadonlyArray2<'py, f32>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let num_factors = factors.shape()[1];
    let indices = IndexSlices::new(&csr)?;
    let values: Values<'_> = data.as_values()?;
    let (linear, factors) = (linear.as_slice()?, factors.as_slice()?);
    let scores = run(py, n_threads, progress, |monitor| {
        let weights = Weights::new(bias, linear, factors, num_factors)?;
        with_csr!(indices, values.len(), n_cols, x => fm::predict(&x, values, &weights, monitor))
    })?;
    Ok(scores.into_pyarray(py))
}

/// Adds the FM functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit_epochs, m)?)?;
    m.add_function(wrap_pyfunction!(predict, m)?)?;
    m.add_class::<PyThreadChoice>()?;
    Ok(())
}
