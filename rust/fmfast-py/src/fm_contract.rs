//! The training contract of Factorization Machines: `FmConfig` (the hyperparameters of a training
//! call) and `FmState` (the weights and optimizer state it updates), each validated once, in its
//! constructor, so that `fm_fit_epochs` receives only values the core can train with.

use fmfast_core::fm::{Group, Optimizer, OptimizerKind, OptimizerState, Task, TrainConfig, WeightsMut};
use numpy::{
    PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadwriteArray1, PyReadwriteArray2, PyReadwriteArray3,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::errors::{InvalidInputError, PyFmError};

/// Mini-batches and epochs are counted in 32 bits by the core.
const MAX_COUNT: u64 = u32::MAX as u64;

/// `value` as an integer in `low..=high`, or the error naming `name` and the value as Python writes it.
fn integer(value: &Bound<'_, PyAny>, name: &str, low: u64, high: u64) -> PyResult<u64> {
    let checked = match value.extract::<u64>() {
        Ok(n) if !value.is_instance_of::<PyBool>() && (low..=high).contains(&n) => Some(n),
        _ => None,
    };
    checked.ok_or_else(|| {
        InvalidInputError::new_err(format!(
            "{name} must be an integer >= {low} and <= {high}, got {}",
            shown(value)
        ))
    })
}

/// `value` as a number (an `int`, a `float`, a NumPy number); the core checks its range.
fn number(value: &Bound<'_, PyAny>, name: &str, rule: &str) -> PyResult<f64> {
    value
        .extract::<f64>()
        .map_err(|_| InvalidInputError::new_err(format!("{name} must be {rule}, got {}", shown(value))))
}

/// `None`, or a number as [`number`] reads it.
fn optional_number(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<f64>> {
    match value {
        Some(v) if !v.is_none() => number(v, name, "None or a finite number > 0").map(Some),
        _ => Ok(None),
    }
}

/// `value` as a string, for a choice that the core parses.
fn text(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    value
        .extract::<String>()
        .map_err(|_| InvalidInputError::new_err(format!("{name} must be a string, got {}", shown(value))))
}

/// `value` as a `bool` (`None`: `default`); anything else, even `0` or `1`, is an error.
fn flag(value: Option<&Bound<'_, PyAny>>, name: &str, default: bool) -> PyResult<bool> {
    match value {
        None => Ok(default),
        Some(v) if v.is_none() => Ok(default),
        Some(v) if v.is_instance_of::<PyBool>() => Ok(v.is_truthy()?),
        Some(v) => Err(InvalidInputError::new_err(format!(
            "{name} must be True or False, got {}",
            shown(v)
        ))),
    }
}

/// `repr(value)`, as the messages of Python's own checks show a value.
fn shown(value: &Bound<'_, PyAny>) -> String {
    value.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
}

/// The hyperparameters of a training call, checked when built.
#[pyclass(name = "FmConfig", module = "fmfast._fmfast", frozen)]
pub struct FmConfig {
    config: TrainConfig,
}

#[pymethods]
impl FmConfig {
    #[new]
    #[pyo3(signature = (*, predictor_type, optimizer, epochs, mini_batch_size, bias_lr, linear_lr, factors_lr, bias_wd, linear_wd, factors_wd, clip_gradient=None, eps=None, rescale_grad=None, deterministic=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        predictor_type: &Bound<'_, PyAny>,
        optimizer: &Bound<'_, PyAny>,
        epochs: &Bound<'_, PyAny>,
        mini_batch_size: &Bound<'_, PyAny>,
        bias_lr: &Bound<'_, PyAny>,
        linear_lr: &Bound<'_, PyAny>,
        factors_lr: &Bound<'_, PyAny>,
        bias_wd: &Bound<'_, PyAny>,
        linear_wd: &Bound<'_, PyAny>,
        factors_wd: &Bound<'_, PyAny>,
        clip_gradient: Option<&Bound<'_, PyAny>>,
        eps: Option<&Bound<'_, PyAny>>,
        rescale_grad: Option<&Bound<'_, PyAny>>,
        deterministic: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let core = |e: fmfast_core::Error| PyErr::from(PyFmError(e));
        let task = Task::parse(&text(predictor_type, "predictor_type")?).map_err(core)?;
        let mut rule = Optimizer::new(OptimizerKind::parse(&text(optimizer, "optimizer")?).map_err(core)?);
        let epochs = integer(epochs, "epochs", 1, MAX_COUNT)?;
        let batch_size = integer(mini_batch_size, "mini_batch_size", 1, MAX_COUNT)?;
        let group = |lr: &Bound<'_, PyAny>, wd: &Bound<'_, PyAny>, name: &str| -> PyResult<Group> {
            let finite = "a finite number >= 0";
            Ok(Group {
                lr: number(lr, &format!("{name}_lr"), finite)?,
                wd: number(wd, &format!("{name}_wd"), finite)?,
            })
        };
        rule.bias = group(bias_lr, bias_wd, "bias")?;
        rule.linear = group(linear_lr, linear_wd, "linear")?;
        rule.factors = group(factors_lr, factors_wd, "factors")?;
        rule.clip_gradient = optional_number(clip_gradient, "clip_gradient")?;
        rule.eps = optional_number(eps, "eps")?;
        rule.rescale_grad = optional_number(rescale_grad, "rescale_grad")?;
        rule.validate().map_err(core)?;
        let count = |n: u64| usize::try_from(n).map_err(|e| InvalidInputError::new_err(e.to_string()));
        Ok(FmConfig {
            config: TrainConfig {
                task,
                epochs: count(epochs)?,
                batch_size: count(batch_size)?,
                optimizer: rule,
                adaptive_threads: false,
                deterministic: flag(deterministic, "deterministic", true)?,
            },
        })
    }

    /// Optimizer state values per weight: 0 (SGD), 1 (AdaGrad) or 2 (Adam).
    #[getter]
    fn n_slots(&self) -> usize {
        self.config.optimizer.kind.n_slots()
    }
}

impl FmConfig {
    /// The core's configuration. Both schedules choose how many of their threads pay
    /// (`adaptive_threads`: measured; the deterministic one also trains a model in one core's
    /// caches on one thread), for any thread count: an explicit `n_threads = 2` must not run
    /// slower than one thread, on a small model or when the cores are busy.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            adaptive_threads: true,
            ..self.config.clone()
        }
    }
}

/// The weights and optimizer state that training updates in place: float32 arrays, C-contiguous
/// and writeable, of shapes `(1,)`, `(d,)`, `(d, k)`, `(1, s)`, `(d, s)` and `(d, s, k)` with
/// `s` the optimizer's slots, checked when built; and `t`, the updates so far.
#[pyclass(name = "FmState", module = "fmfast._fmfast", subclass)]
pub struct FmState {
    #[pyo3(get)]
    bias: Py<PyArray1<f32>>,
    #[pyo3(get)]
    linear: Py<PyArray1<f32>>,
    #[pyo3(get)]
    factors: Py<PyArray2<f32>>,
    #[pyo3(get)]
    bias_state: Py<PyArray2<f32>>,
    #[pyo3(get)]
    linear_state: Py<PyArray2<f32>>,
    #[pyo3(get)]
    factors_state: Py<PyArray3<f32>>,
    #[pyo3(get, set)]
    t: u64,
}

/// `array` as the float32 NumPy array type `T` (of its number of dimensions), or an error naming it.
fn float32_array<'py, T: pyo3::PyTypeCheck>(array: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, T>> {
    let typed = array.cast::<T>().map_err(|_| {
        let described = match array.getattr("dtype").and_then(|d| Ok((d, array.getattr("shape")?))) {
            Ok((dtype, shape)) => format!("dtype {} and shape {}", shown(&dtype), shown(&shape)),
            Err(_) => format!("type {}", shown(&array.get_type().into_any())),
        };
        InvalidInputError::new_err(format!(
            "{name} must be a float32 array of the right dimensions, got {described}"
        ))
    })?;
    Ok(typed.clone())
}

#[pymethods]
impl FmState {
    #[new]
    #[pyo3(signature = (bias, linear, factors, bias_state, linear_state, factors_state, t=0))]
    fn new(
        bias: &Bound<'_, PyAny>,
        linear: &Bound<'_, PyAny>,
        factors: &Bound<'_, PyAny>,
        bias_state: &Bound<'_, PyAny>,
        linear_state: &Bound<'_, PyAny>,
        factors_state: &Bound<'_, PyAny>,
        t: u64,
    ) -> PyResult<Self> {
        let bias = float32_array::<PyArray1<f32>>(bias, "bias")?;
        let linear = float32_array::<PyArray1<f32>>(linear, "linear")?;
        let factors = float32_array::<PyArray2<f32>>(factors, "factors")?;
        let bias_state = float32_array::<PyArray2<f32>>(bias_state, "bias_state")?;
        let linear_state = float32_array::<PyArray2<f32>>(linear_state, "linear_state")?;
        let factors_state = float32_array::<PyArray3<f32>>(factors_state, "factors_state")?;
        let (d, k, s) = (linear.shape()[0], factors.shape()[1], bias_state.shape()[1]);
        if k == 0 || s > 2 {
            return Err(InvalidInputError::new_err(format!(
                "factors need num_factors >= 1 and state 0 to 2 slots per weight, got {k} and {s}"
            )));
        }
        let shapes: [(&str, &[usize], Vec<usize>, bool); 6] = [
            ("bias", bias.shape(), vec![1], bias.is_c_contiguous()),
            ("linear", linear.shape(), vec![d], linear.is_c_contiguous()),
            ("factors", factors.shape(), vec![d, k], factors.is_c_contiguous()),
            (
                "bias_state",
                bias_state.shape(),
                vec![1, s],
                bias_state.is_c_contiguous(),
            ),
            (
                "linear_state",
                linear_state.shape(),
                vec![d, s],
                linear_state.is_c_contiguous(),
            ),
            (
                "factors_state",
                factors_state.shape(),
                vec![d, s, k],
                factors_state.is_c_contiguous(),
            ),
        ];
        for (name, shape, expected, contiguous) in shapes {
            if shape != expected.as_slice() {
                return Err(InvalidInputError::new_err(format!(
                    "{name} has shape {shape:?}, expected {expected:?} (feature_dim {d}, num_factors {k}, {s} optimizer slots)"
                )));
            }
            if !contiguous {
                return Err(InvalidInputError::new_err(format!("{name} must be C-contiguous")));
            }
        }
        Ok(FmState {
            bias: bias.unbind(),
            linear: linear.unbind(),
            factors: factors.unbind(),
            bias_state: bias_state.unbind(),
            linear_state: linear_state.unbind(),
            factors_state: factors_state.unbind(),
            t,
        })
    }
}

/// The arrays of an [`FmState`], borrowed for writing while the core trains.
pub struct StateArrays<'py> {
    bias: PyReadwriteArray1<'py, f32>,
    linear: PyReadwriteArray1<'py, f32>,
    factors: PyReadwriteArray2<'py, f32>,
    bias_state: PyReadwriteArray2<'py, f32>,
    linear_state: PyReadwriteArray2<'py, f32>,
    factors_state: PyReadwriteArray3<'py, f32>,
    t: u64,
}

impl FmState {
    /// Its arrays borrowed for writing; an array borrowed elsewhere (or not writeable) is an error.
    pub fn arrays<'py>(&self, py: Python<'py>) -> PyResult<StateArrays<'py>> {
        let busy = |e: numpy::BorrowError| InvalidInputError::new_err(format!("training state arrays: {e}"));
        Ok(StateArrays {
            bias: self.bias.bind(py).try_readwrite().map_err(busy)?,
            linear: self.linear.bind(py).try_readwrite().map_err(busy)?,
            factors: self.factors.bind(py).try_readwrite().map_err(busy)?,
            bias_state: self.bias_state.bind(py).try_readwrite().map_err(busy)?,
            linear_state: self.linear_state.bind(py).try_readwrite().map_err(busy)?,
            factors_state: self.factors_state.bind(py).try_readwrite().map_err(busy)?,
            t: self.t,
        })
    }
}

impl StateArrays<'_> {
    /// The weights and optimizer state as the core borrows them.
    pub fn borrow(&mut self) -> PyResult<(WeightsMut<'_>, OptimizerState<'_>)> {
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

/// Adds the training contract's classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<FmConfig>()?;
    m.add_class::<FmState>()?;
    Ok(())
}
