//! Binding of the feature assembler: column blocks (one-hot, multi-hot, numeric) into CSR arrays.

use fmfast_core::features::{assemble, Block};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::detached::run;

/// A block as Python describes it, told apart by the tuple's length.
#[derive(FromPyObject)]
enum PyBlock<'py> {
    /// `(codes, offset, size)`.
    OneHot(PyReadonlyArray1<'py, i64>, u64, u64),
    /// `(values, column)`.
    Numeric(PyReadonlyArray1<'py, f32>, u64),
    /// `(indptr, codes, offset, size, normalize)`.
    MultiHot(PyReadonlyArray1<'py, i64>, PyReadonlyArray1<'py, i64>, u64, u64, bool),
}

impl PyBlock<'_> {
    /// The block over borrowed slices; a strided array is an error, never a silent copy.
    fn as_block(&self) -> PyResult<Block<'_>> {
        Ok(match self {
            PyBlock::OneHot(codes, offset, size) => Block::OneHot {
                codes: codes.as_slice()?,
                offset: *offset,
                size: *size,
            },
            PyBlock::Numeric(values, column) => Block::Numeric {
                values: values.as_slice()?,
                column: *column,
            },
            PyBlock::MultiHot(indptr, codes, offset, size, normalize) => Block::MultiHot {
                indptr: indptr.as_slice()?,
                codes: codes.as_slice()?,
                offset: *offset,
                size: *size,
                normalize: *normalize,
            },
        })
    }
}

/// CSR arrays `(indptr, indices, data)`.
type Assembled<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
);

/// Assembles `n_rows` rows from `blocks`, each `(codes, offset, size)` (one-hot),
/// `(indptr, codes, offset, size, normalize)` (multi-hot) or `(values, column)` (numeric).
#[pyfunction]
#[pyo3(name = "assemble_features", signature = (blocks, n_rows, n_threads=0))]
fn assemble_features<'py>(
    py: Python<'py>,
    blocks: Vec<PyBlock<'py>>,
    n_rows: usize,
    n_threads: usize,
) -> PyResult<Assembled<'py>> {
    let slices = blocks.iter().map(PyBlock::as_block).collect::<PyResult<Vec<_>>>()?;
    let (indptr, indices, data) = run(py, n_threads, None, |monitor| assemble(&slices, n_rows, monitor))?;
    Ok((indptr.into_pyarray(py), indices.into_pyarray(py), data.into_pyarray(py)))
}

/// Adds the feature assembler to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(assemble_features, m)?)
}
