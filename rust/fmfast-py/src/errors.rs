//! The `FmFastError` hierarchy, created here and re-exported by `fmfast/exceptions.py`, and the
//! conversion of core errors into it.

use std::io;
use std::path::Path;

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
            // PyO3 picks the subclass from the kind (`FileNotFoundError`, `PermissionError`, ...).
            Error::Io(io) => io.into(),
            Error::File { path, source } => file_error(&path, &source),
        }
    }
}

/// `OSError(errno, strerror, path)`, which Python turns into the subclass of that errno
/// (`FileNotFoundError`, `PermissionError`, `IsADirectoryError`, ...) with `.filename` set, as
/// `open(path)` would raise it.
fn file_error(path: &Path, source: &io::Error) -> PyErr {
    let filename = path.as_os_str().to_os_string();
    match source.raw_os_error().or_else(|| errno_of(source.kind())) {
        Some(errno) => {
            let message = io::Error::from_raw_os_error(errno).to_string();
            let suffix = format!(" (os error {errno})");
            let strerror = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            PyOSError::new_err((errno, strerror, filename))
        }
        // Not an operating-system error (a short read, say): the message names the file.
        None => PyOSError::new_err(format!("{}: {source}", path.display())),
    }
}

/// The errno of an error that lost it on the way (`tempfile` wraps the OS error, keeping only
/// its kind), for the kinds a file can fail with.
fn errno_of(kind: io::ErrorKind) -> Option<i32> {
    match kind {
        io::ErrorKind::NotFound => Some(libc::ENOENT),
        io::ErrorKind::PermissionDenied => Some(libc::EACCES),
        io::ErrorKind::AlreadyExists => Some(libc::EEXIST),
        io::ErrorKind::IsADirectory => Some(libc::EISDIR),
        io::ErrorKind::NotADirectory => Some(libc::ENOTDIR),
        io::ErrorKind::ReadOnlyFilesystem => Some(libc::EROFS),
        io::ErrorKind::StorageFull => Some(libc::ENOSPC),
        _ => None,
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
