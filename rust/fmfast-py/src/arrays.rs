//! Borrowing NumPy arrays as core slices (zero copy), and handing core vectors back to NumPy.

use fmfast_core::csr::Values;
use fmfast_core::recordio::decode::{FeatureValues, Indices};
use fmfast_core::recordio::TensorKind;
use numpy::{IntoPyArray, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::errors::InvalidInputError;

/// A contiguous 1-D array of one of the element types the core accepts.
#[derive(FromPyObject)]
pub enum PyValues<'py> {
    F32(PyReadonlyArray1<'py, f32>),
    F64(PyReadonlyArray1<'py, f64>),
    I32(PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>),
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
#[derive(FromPyObject)]
pub enum PyIndices<'py> {
    I32(PyReadonlyArray1<'py, i32>, PyReadonlyArray1<'py, i32>),
    I64(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>),
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
