//! Bindings of Factorization Machines: train epochs on caller-owned weights, predict raw scores.
//!
//! The Python estimator owns every array (weights and optimizer state); `fit_epochs` borrows them
//! mutably and updates them in place with the interpreter released.

use fmfast_core::csr::Values;
use fmfast_core::fm::{
    self, Checkpoint, EpochStats, Group, Optimizer, OptimizerKind, OptimizerState, Task, TrainConfig, Weights,
    WeightsMut,
};
use fmfast_core::Error;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyReadwriteArray2};
use numpy::{PyReadwriteArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{with_csr, IndexSlices, PyIndices, PyValues};
use crate::detached::{run, run_stoppable};
use crate::errors::{InvalidInputError, PyFmError};

/// The weights and optimizer state, read from the attributes of the estimator's `_TrainState`.
#[derive(FromPyObject)]
struct TrainState<'py> {
    bias: PyReadwriteArray1<'py, f32>,
    linear: PyReadwriteArray1<'py, f32>,
    factors: PyReadwriteArray2<'py, f32>,
    bias_state: PyReadwriteArray2<'py, f32>,
    linear_state: PyReadwriteArray2<'py, f32>,
    factors_state: PyReadwriteArray3<'py, f32>,
    t: u64,
}

impl TrainState<'_> {
    /// The weights and optimizer state as the core borrows them.
    fn borrow(&mut self) -> PyResult<(WeightsMut<'_>, OptimizerState<'_>)> {
        let bias = self
            .bias
            .as_slice_mut()?
            .first_mut()
            .ok_or_else(|| InvalidInputError::new_err("bias must hold one value"))?;
        let num_factors = self.factors.shape()[1];
        let weights = WeightsMut::new(
            bias,
            self.linear.as_slice_mut()?,
            self.factors.as_slice_mut()?,
            num_factors,
        )
        .map_err(PyFmError)?;
        let state = OptimizerState::new(
            self.bias_state.as_slice_mut()?,
            self.linear_state.as_slice_mut()?,
            self.factors_state.as_slice_mut()?,
            self.t,
        );
        Ok((weights, state))
    }
}

/// Hyperparameters, read from the attributes of the estimator's `_TrainConfig`.
#[derive(FromPyObject)]
struct Hyperparameters {
    predictor_type: String,
    optimizer: String,
    epochs: usize,
    mini_batch_size: usize,
    bias_lr: f64,
    linear_lr: f64,
    factors_lr: f64,
    bias_wd: f64,
    linear_wd: f64,
    factors_wd: f64,
    clip_gradient: Option<f64>,
    eps: Option<f64>,
    rescale_grad: Option<f64>,
}

impl Hyperparameters {
    /// The core's configuration; `adaptive_threads` when the caller left the thread count to fmfast.
    fn config(&self, adaptive_threads: bool) -> PyResult<TrainConfig> {
        let core = |e: fmfast_core::Error| InvalidInputError::new_err(e.to_string());
        let mut optimizer = Optimizer::new(OptimizerKind::parse(&self.optimizer).map_err(core)?);
        optimizer.bias = Group {
            lr: self.bias_lr,
            wd: self.bias_wd,
        };
        optimizer.linear = Group {
            lr: self.linear_lr,
            wd: self.linear_wd,
        };
        optimizer.factors = Group {
            lr: self.factors_lr,
            wd: self.factors_wd,
        };
        optimizer.eps = self.eps;
        optimizer.clip_gradient = self.clip_gradient;
        optimizer.rescale_grad = self.rescale_grad;
        Ok(TrainConfig {
            task: Task::parse(&self.predictor_type).map_err(core)?,
            epochs: self.epochs,
            batch_size: self.mini_batch_size,
            optimizer,
            adaptive_threads,
        })
    }
}

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

/// Trains `config.epochs` epochs on CSR rows, updating the arrays of `state` in place; returns
/// the new update count `t`, the statistics of each epoch and `None`.
///
/// With a `checkpoint` (arrays shaped like `state`'s), the core copies the weights and state into
/// it at the end of every epoch but the last. When Ctrl-C (or an exception raised by `progress`)
/// stops training after an epoch has ended, `checkpoint` holds the last complete epoch, and the
/// call returns its `t`, the statistics of its epochs and the exception, for the caller to keep
/// that model and then raise it.
#[pyfunction]
#[pyo3(name = "fm_fit_epochs", signature = (n_cols, csr, data, labels, sample_weight, state, config, n_threads=0, progress=None, checkpoint=None))]
#[allow(clippy::too_many_arguments)]
fn fit_epochs(
    py: Python<'_>,
    n_cols: u64,
    csr: PyIndices<'_>,
    data: PyValues<'_>,
    labels: PyValues<'_>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
    mut state: TrainState<'_>,
    config: Hyperparameters,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
    mut checkpoint: Option<TrainState<'_>>,
) -> PyResult<(u64, Vec<PyEpochStats>, Option<PyErr>)> {
    // n_threads = 0 leaves the count to fmfast: all cores, or one where measurement says so.
    let config = config.config(n_threads == 0)?;
    let indices = IndexSlices::new(&csr)?;
    let values = data.as_values()?;
    let labels = labels.as_values()?;
    let sample_weight = sample_weight.as_ref().map(|w| w.as_slice()).transpose()?;
    let (mut weights, mut opt_state) = state.borrow()?;
    let mut checkpoint = match checkpoint.as_mut() {
        Some(held) => Some(held.borrow().map(|(w, s)| Checkpoint::new(w, s))?),
        None => None,
    };
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
    Ok(())
}
