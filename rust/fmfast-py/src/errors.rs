//! The `FmFastError` hierarchy, created here and re-exported by `fmfast/exceptions.py`, and the
//! conversion of core errors into it.

use fmfast_core::Error;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

pyo3::create_exception!(
    fmfast,
    FmFastError,
    PyException,
    "Base class of every error fmfast raises."
);
pyo3::create_exception!(
    fmfast,
    RecordIOError,
    FmFastError,
    "A RecordIO-protobuf stream that is truncated, corrupt or unsupported; `.record` and `.offset` say where."
);
pyo3::create_exception!(
    fmfast,
    ParseError,
    FmFastError,
    "A line of a text input that cannot be parsed; `.line` says which (1-based)."
);
pyo3::create_exception!(
    fmfast,
    DivergenceError,
    FmFastError,
    "Training produced a non-finite prediction or weight; `.epoch` and `.batch` say where (0-based)."
);

/// `InvalidInputError`: arrays or arguments that are inconsistent, out of range or of an
/// unsupported type. Both an `FmFastError` and a `ValueError`, which is what Python code and
/// scikit-learn catch for a bad value; `create_exception!` takes a single base, so the class is
/// made once by calling `type(name, bases, namespace)`.
pub struct InvalidInputError;

static INVALID_INPUT_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

impl InvalidInputError {
    /// The class, made on first use.
    fn type_object(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
        INVALID_INPUT_ERROR
            .get_or_try_init(py, || {
                let bases = (py.get_type::<FmFastError>(), py.get_type::<PyValueError>());
                let namespace = PyDict::new(py);
                namespace.set_item("__module__", "fmfast")?;
                namespace.set_item(
                    "__doc__",
                    "Arrays or arguments that are inconsistent, out of range or of an unsupported type.",
                )?;
                let class = py.get_type::<PyType>().call1(("InvalidInputError", bases, namespace))?;
                Ok(class.cast_into::<PyType>()?.unbind())
            })
            .map(|class| class.bind(py))
    }

    /// An `InvalidInputError` with `message`, raised when returned to Python.
    pub fn new_err(message: impl Into<String>) -> PyErr {
        let message = message.into();
        Python::attach(|py| match Self::type_object(py) {
            Ok(class) => PyErr::from_type(class.clone(), message),
            Err(err) => err,
        })
    }
}

/// A core error on its way to Python.
pub struct PyFmError(pub Error);

impl From<Error> for PyFmError {
    fn from(e: Error) -> Self {
        PyFmError(e)
    }
}

impl From<PyFmError> for PyErr {
    fn from(PyFmError(e): PyFmError) -> PyErr {
        let message = e.to_string();
        match e {
            Error::InvalidInput(_) => InvalidInputError::new_err(message),
            Error::RecordIO { position, .. } => Python::attach(|py| {
                let err = RecordIOError::new_err(message);
                let value = err.value(py);
                // Attributes make the position usable without parsing the message.
                let _ = value.setattr("record", position.record);
                let _ = value.setattr("offset", position.offset);
                err
            }),
            Error::Parse { line, .. } => Python::attach(|py| {
                let err = ParseError::new_err(message);
                let _ = err.value(py).setattr("line", line);
                err
            }),
            Error::Diverged { epoch, batch, .. } => Python::attach(|py| {
                let err = DivergenceError::new_err(message);
                let value = err.value(py);
                let _ = value.setattr("epoch", epoch);
                let _ = value.setattr("batch", batch);
                err
            }),
            Error::Interrupted => PyKeyboardInterrupt::new_err(message),
            Error::Io(io) => PyOSError::new_err(io.to_string()),
        }
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("FmFastError", py.get_type::<FmFastError>())?;
    m.add("InvalidInputError", InvalidInputError::type_object(py)?)?;
    m.add("RecordIOError", py.get_type::<RecordIOError>())?;
    m.add("ParseError", py.get_type::<ParseError>())?;
    m.add("DivergenceError", py.get_type::<DivergenceError>())?;
    Ok(())
}
