//! Bindings of Bayesian FM (MCMC) and ALS: the configuration of a fit, checked when built, and
//! the fit, which updates caller-owned weights and fills caller-owned sample arrays.

use fmfast_core::fm::bayes::{self, BayesConfig, BayesData, EvalSet, Method, Noise, Samples, SweepStats};
use fmfast_core::fm::{self as core_fm, Weights};
use fmfast_core::Error;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadwriteArray1, PyReadwriteArray2, PyReadwriteArray3};
use pyo3::prelude::*;

use crate::arrays::{with_csr, IndexSlices, PyIndices, PyValues};
use crate::detached::run_stoppable;
use crate::errors::{InvalidInputError, PyFmError};
use crate::fm_contract::FmState;

/// The settings of an ALS or MCMC fit, checked when built.
#[pyclass(name = "BayesConfig", module = "fmfast._fmfast", frozen)]
pub struct PyBayesConfig {
    config: BayesConfig,
}

#[pymethods]
impl PyBayesConfig {
    #[new]
    #[pyo3(signature = (*, optimizer, epochs, burn_in, posterior_samples, bias_wd, linear_wd, factors_wd, seed, als_regularization="fixed", num_chains=1, noise="shared"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        optimizer: &str,
        epochs: usize,
        burn_in: usize,
        posterior_samples: usize,
        bias_wd: f64,
        linear_wd: f64,
        factors_wd: f64,
        seed: u64,
        als_regularization: &str,
        num_chains: usize,
        noise: &str,
    ) -> PyResult<Self> {
        let method = match (optimizer, als_regularization) {
            ("als", "fixed") => Method::Als {
                bias: bias_wd,
                linear: linear_wd,
                factors: factors_wd,
            },
            ("als", "adaptive") => Method::AdaptiveAls,
            ("als", other) => {
                return Err(InvalidInputError::new_err(format!(
                    "als_regularization must be 'adaptive' or 'fixed', got {other:?}"
                )))
            }
            ("mcmc", _) => Method::Mcmc,
            (other, _) => {
                return Err(InvalidInputError::new_err(format!(
                    "optimizer must be 'als' or 'mcmc' here, got {other:?}"
                )))
            }
        };
        let noise = match noise {
            "shared" => Noise::Shared,
            "per-level" => Noise::PerLevel,
            other => {
                return Err(InvalidInputError::new_err(format!(
                    "noise must be 'per-level' or 'shared', got {other:?}"
                )))
            }
        };
        let config = BayesConfig {
            method,
            sweeps: epochs,
            burn_in,
            posterior_samples,
            seed,
            chains: num_chains,
            noise,
        };
        config.validate().map_err(PyFmError)?;
        Ok(PyBayesConfig { config })
    }

    /// Number of samples a complete fit keeps, over all its chains (0 for ALS).
    #[getter]
    fn kept(&self) -> usize {
        self.config.kept()
    }
}

/// `(train_sse, eval_sse or None, kept)` of a sweep.
type PySweepStats = (f64, Option<f64>, bool);

/// The kept samples' mean precision of each level, one array per factor of the rows' noise.
type PyNoisePrecisions<'py> = Vec<Bound<'py, PyArray1<f64>>>;

/// The rows of an evaluation set: `(csr, data, labels)`, with the training set's columns.
type PyEvalSet<'py> = (PyIndices<'py>, PyValues<'py>, PyReadonlyArray1<'py, f64>);

/// Runs the sweeps of an ALS or MCMC fit on CSR rows from the weights of `state` (updated in
/// place, left at the last sweep's); the kept samples go to `sample_bias` `(s,)`,
/// `sample_linear` `(s, d)` and `sample_factors` `(s, d, k)`, `s` the config's `kept`. Returns
/// each complete sweep's statistics and `None`, or, when Ctrl-C (or `progress`) stopped it after
/// a sweep had ended, the statistics so far and the exception. `clip`: the `(low, high)` each
/// sweep's predictions are clipped to before they are averaged and scored. `noise_groups`: MCMC's
/// group of each row whose rows share a noise precision (`None`: the config's noise model). Also
/// returns, before the exception, the kept samples' mean precision of each level of each factor of
/// the rows' noise (an empty list with one precision for every row).
#[pyfunction]
#[pyo3(name = "fm_fit_bayes", signature = (n_cols, csr, data, labels, sample_weight, groups, state, sample_bias, sample_linear, sample_factors, config, eval_set=None, n_threads=0, progress=None, clip=None, noise_groups=None))]
#[allow(clippy::too_many_arguments)]
fn fit_bayes<'py>(
    py: Python<'py>,
    n_cols: u64,
    csr: PyIndices<'_>,
    data: PyValues<'_>,
    labels: PyReadonlyArray1<'_, f64>,
    sample_weight: Option<PyReadonlyArray1<'_, f64>>,
    groups: PyReadonlyArray1<'_, u32>,
    state: PyRef<'_, FmState>,
    mut sample_bias: PyReadwriteArray1<'_, f32>,
    mut sample_linear: PyReadwriteArray2<'_, f32>,
    mut sample_factors: PyReadwriteArray3<'_, f32>,
    config: PyRef<'_, PyBayesConfig>,
    eval_set: Option<PyEvalSet<'_>>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
    clip: Option<(f64, f64)>,
    noise_groups: Option<PyReadonlyArray1<'_, u32>>,
) -> PyResult<(Vec<PySweepStats>, PyNoisePrecisions<'py>, Option<PyErr>)> {
    let config = config.config.clone();
    let mut arrays = state.arrays(py)?;
    let (mut weights, _) = arrays.borrow()?;
    let indices = IndexSlices::new(&csr)?;
    let values = data.as_values()?;
    let labels = labels.as_slice()?;
    let sample_weight = sample_weight.as_ref().map(|w| w.as_slice()).transpose()?;
    let groups = groups.as_slice()?;
    let noise_groups = noise_groups.as_ref().map(|g| g.as_slice()).transpose()?;
    let mut samples = Samples {
        bias: sample_bias.as_slice_mut()?,
        linear: sample_linear.as_slice_mut()?,
        factors: sample_factors.as_slice_mut()?,
        noise_precisions: Vec::new(),
    };
    let eval_indices = eval_set.as_ref().map(|(csr, _, _)| IndexSlices::new(csr)).transpose()?;
    let eval_values = eval_set.as_ref().map(|(_, data, _)| data.as_values()).transpose()?;
    let eval_labels = eval_set.as_ref().map(|(_, _, labels)| labels.as_slice()).transpose()?;
    let (stats, stopped) = run_stoppable(py, n_threads, progress, |monitor| {
        let score = |w: &Weights<'_>| -> fmfast_core::Result<Vec<f64>> {
            match (&eval_indices, eval_values) {
                (Some(indices), Some(values)) => {
                    with_csr!(indices, values.len(), n_cols, x => core_fm::predict(&x, values, w, &fmfast_core::parallel::Unmonitored))
                }
                _ => Ok(Vec::new()),
            }
        };
        let eval = eval_labels.map(|labels| EvalSet { labels, score: &score });
        let mut stats: Vec<SweepStats> = Vec::new();
        let fitted = with_csr!(indices, values.len(), n_cols, x => bayes::fit_bayes(
            &BayesData { x, values, labels, sample_weight, groups, clip, noise_groups },
            &mut weights,
            &mut samples,
            eval.as_ref(),
            &config,
            monitor,
            &mut stats,
        ));
        match fitted {
            Ok(()) => Ok(stats),
            Err(Error::Interrupted) if !stats.is_empty() => Ok(stats),
            Err(err) => Err(err),
        }
    })?;
    let stats = stats.iter().map(|s| (s.train_sse, s.eval_sse, s.kept)).collect();
    let noise = samples
        .noise_precisions
        .into_iter()
        .map(|means| means.into_pyarray(py))
        .collect();
    Ok((stats, noise, stopped))
}

/// Adds the Bayesian FM functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBayesConfig>()?;
    m.add_function(wrap_pyfunction!(fit_bayes, m)?)?;
    Ok(())
}
