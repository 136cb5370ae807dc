//! Bindings of Factorization Machines: train epochs on caller-owned weights, predict raw scores.
//!
//! The Python estimator owns every array (weights and optimizer state); `fit_epochs` borrows them
//! mutably and updates them in place with the interpreter released.

use fmfast_core::csr::Values;
use fmfast_core::fm::{
    self, EpochStats, Group, Optimizer, OptimizerKind, OptimizerState, Task, TrainConfig, Weights, WeightsMut,
};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1, PyReadwriteArray2};
use numpy::{PyReadwriteArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{with_csr, IndexSlices, PyIndices, PyValues};
use crate::detached::run;
use crate::errors::InvalidInputError;

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
/// the new update count `t` and the statistics of each epoch.
#[pyfunction]
#[pyo3(name = "fm_fit_epochs", signature = (n_cols, csr, data, labels, sample_weight, state, config, n_threads=0, progress=None))]
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
) -> PyResult<(u64, Vec<PyEpochStats>)> {
    // n_threads = 0 leaves the count to fmfast: all cores, or one where measurement says so.
    let config = config.config(n_threads == 0)?;
    let num_factors = state.factors.shape()[1];
    let indices = IndexSlices::new(&csr)?;
    let values = data.as_values()?;
    let labels = labels.as_values()?;
    let sample_weight = sample_weight.as_ref().map(|w| w.as_slice()).transpose()?;
    let t = state.t;
    let bias = state
        .bias
        .as_slice_mut()?
        .first_mut()
        .ok_or_else(|| InvalidInputError::new_err("bias must hold one value"))?;
    let linear = state.linear.as_slice_mut()?;
    let factors = state.factors.as_slice_mut()?;
    let bias_state = state.bias_state.as_slice_mut()?;
    let linear_state = state.linear_state.as_slice_mut()?;
    let factors_state = state.factors_state.as_slice_mut()?;
    run(py, n_threads, progress, |monitor| {
        let mut weights = WeightsMut::new(bias, linear, factors, num_factors)?;
        let mut opt_state = OptimizerState::new(bias_state, linear_state, factors_state, t);
        let stats = with_csr!(indices, values.len(), n_cols, x => fm::fit_epochs(
            &x,
            values,
            labels,
            sample_weight,
            &mut weights,
            &mut opt_state,
            &config,
            monitor,
        ))?;
        Ok((opt_state.t, stats.iter().map(stats_tuple).collect()))
    })
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
