//! Borrowing NumPy arrays as core slices (zero copy), and handing core vectors back to NumPy.

use fmfast_core::csr::Values;
use fmfast_core::recordio::decode::{FeatureValues, Indices};
use fmfast_core::recordio::TensorKind;
use numpy::{
    dtype, Element, IntoPyArray, PyArrayDescrMethods, PyReadonlyArray1, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::InvalidInputError;

/// A contiguous 1-D array of one of the element types the core accepts.
pub enum PyValues<'py> {
    F32(PyReadonlyArray1<'py, f32>),
    F64(PyReadonlyArray1<'py, f64>),
    I32(PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>),
}

/// Whether `ob` is a NumPy array of `T`. The enums below ask it before extracting, instead of
/// trying each type in turn (`#[derive(FromPyObject)]`): a failed try formats the array's dtype
/// into its message, which runs numpy's `dtype.__str__`, Python code where a pending Ctrl-C is
/// raised and then swallowed as unraisable (`fmfast convert` ran to the end, exit status 0,
/// after a SIGINT).
fn holds<T: Element>(ob: &Borrowed<'_, '_, PyAny>) -> bool {
    ob.cast::<PyUntypedArray>()
        .is_ok_and(|array| array.dtype().is_equiv_to(&dtype::<T>(ob.py())))
}

/// The error for an argument that is none of the arrays an enum below takes.
fn unsupported(ob: &Borrowed<'_, '_, PyAny>, expected: &str) -> PyErr {
    let found = ob.getattr("dtype").map_or_else(
        |_| format!("a {}", ob.get_type()),
        |dtype| format!("an array of {dtype}"),
    );
    PyTypeError::new_err(format!("expected a 1-D array of {expected}, got {found}"))
}

impl<'a, 'py> FromPyObject<'a, 'py> for PyValues<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(if holds::<f32>(&ob) {
            PyValues::F32(ob.extract()?)
        } else if holds::<f64>(&ob) {
            PyValues::F64(ob.extract()?)
        } else if holds::<i32>(&ob) {
            PyValues::I32(ob.extract()?)
        } else if holds::<i64>(&ob) {
            PyValues::I64(ob.extract()?)
        } else {
            return Err(unsupported(&ob, "float32, float64, int32 or int64"));
        })
    }
}

impl PyValues<'_> {
    /// The array as a core slice; a strided array is an error, never a silent copy.
    pub fn as_values(&self) -> PyResult<Values<'_>> {
        Ok(match self {
            PyValues::F32(a) => Values::F32(a.as_slice()?),
            PyValues::F64(a) => Values::F64(a.as_slice()?),
            PyValues::I32(a) => Values::I32(a.as_slice()?),
            PyValues::I64(a) => Values::I64(a.as_slice()?),
        })
    }
}

/// `indptr` and `indices` arrays, both int32 or both int64.
pub enum PyIndices<'py> {
    I32(PyReadonlyArray1<'py, i32>, PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>),
}

impl<'a, 'py> FromPyObject<'a, 'py> for PyIndices<'py> {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let (indptr, indices) = ob.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>()?;
        let (indptr, indices) = (indptr.as_borrowed(), indices.as_borrowed());
        if holds::<i32>(&indptr) && holds::<i32>(&indices) {
            Ok(PyIndices::I32(indptr.extract()?, indices.extract()?))
        } else if holds::<i64>(&indptr) && holds::<i64>(&indices) {
            Ok(PyIndices::I64(indptr.extract()?, indices.extract()?))
        } else {
            Err(unsupported(&indices, "int32 or int64 indices, as indptr's"))
        }
    }
}

/// `indptr` and `indices` borrowed as slices, validated later (off the interpreter lock).
pub enum IndexSlices<'a> {
    I32(&'a [i32], &'a [i32]),
    I64(&'a [i64], &'a [i64]),
}

impl<'a> IndexSlices<'a> {
    /// Borrows both arrays; a strided array is an error.
    pub fn new(csr: &'a PyIndices<'_>) -> PyResult<Self> {
        Ok(match csr {
            PyIndices::I32(p, i) => IndexSlices::I32(p.as_slice()?, i.as_slice()?),
            PyIndices::I64(p, i) => IndexSlices::I64(p.as_slice()?, i.as_slice()?),
        })
    }
}

/// Validates a [`fmfast_core::csr::CsrView`] of `$nnz` entries and `$n_cols` columns over
/// [`IndexSlices`], and runs `$body` with it bound to `$x` (instantiated per index type).
macro_rules! with_csr {
    ($slices:expr, $nnz:expr, $n_cols:expr, $x:ident => $body:expr) => {
        match $slices {
            $crate::arrays::IndexSlices::I32(p, i) => {
                let $x = fmfast_core::csr::CsrView::new(p, i, $nnz, $n_cols)?;
                $body
            }
            $crate::arrays::IndexSlices::I64(p, i) => {
                let $x = fmfast_core::csr::CsrView::new(p, i, $nnz, $n_cols)?;
                $body
            }
        }
    };
}
pub(crate) use with_csr;

/// Parses a tensor type name as the Python API spells it.
pub fn tensor_kind(name: &str) -> PyResult<TensorKind> {
    match name {
        "float32" => Ok(TensorKind::Float32),
        "float64" => Ok(TensorKind::Float64),
        "int32" => Ok(TensorKind::Int32),
        other => Err(InvalidInputError::new_err(format!(
            "unsupported tensor dtype {other:?}: expected float32, float64 or int32"
        ))),
    }
}

/// Hands decoded values to NumPy without copying.
pub fn values_to_numpy(py: Python<'_>, values: FeatureValues) -> Bound<'_, PyAny> {
    match values {
        FeatureValues::F32(v) => v.into_pyarray(py).into_any(),
        FeatureValues::F64(v) => v.into_pyarray(py).into_any(),
        FeatureValues::I32(v) => v.into_pyarray(py).into_any(),
    }
}

/// Hands decoded `indptr` and `indices` to NumPy without copying.
pub fn indices_to_numpy(py: Python<'_>, indices: Indices) -> (Bound<'_, PyAny>, Bound<'_, PyAny>) {
    match indices {
        Indices::I32 { indptr, indices } => (indptr.into_pyarray(py).into_any(), indices.into_pyarray(py).into_any()),
        Indices::I64 { indptr, indices } => (indptr.into_pyarray(py).into_any(), indices.into_pyarray(py).into_any()),
    }
}
