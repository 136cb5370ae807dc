//! Binding of the exact top-K kernel: `offset_q + offset_i + ⟨q, i⟩` over many queries at once.

use fmfast_core::topk::{top_k, Side};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::arrays::{with_csr, IndexSlices, PyIndices};
use crate::detached::run;

/// Item indices and scores, flat.
type Ranked<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>);

/// The best `k` items of each query, flat (`n_queries × k`, best first; `-1` pads).
#[pyfunction]
#[pyo3(name = "top_k", signature = (query_vectors, query_offsets, item_vectors, item_offsets, k, exclude=None, n_threads=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn top_k_py<'py>(
    py: Python<'py>,
    query_vectors: PyReadonlyArray2<'py, f32>,
    query_offsets: PyReadonlyArray1<'py, f32>,
    item_vectors: PyReadonlyArray2<'py, f32>,
    item_offsets: PyReadonlyArray1<'py, f32>,
    k: usize,
    exclude: Option<PyIndices<'py>>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Ranked<'py>> {
    let dim = query_vectors.shape()[1];
    let (item_dim, n_items) = (item_vectors.shape()[1], item_vectors.shape()[0] as u64);
    let (qv, qo) = (query_vectors.as_slice()?, query_offsets.as_slice()?);
    let (iv, io) = (item_vectors.as_slice()?, item_offsets.as_slice()?);
    let exclude = exclude.as_ref().map(IndexSlices::new).transpose()?;
    let (items, scores) = run(py, n_threads, progress, |monitor| {
        let (queries, items) = (Side::new(qv, qo, dim)?, Side::new(iv, io, item_dim)?);
        match &exclude {
            Some(slices) => {
                let nnz = match slices {
                    IndexSlices::I32(_, i) => i.len(),
                    IndexSlices::I64(_, i) => i.len(),
                };
                with_csr!(slices, nnz, n_items, x => top_k(&queries, &items, k, Some(&x), monitor))
            }
            None => top_k::<i64>(&queries, &items, k, None, monitor),
        }
    })?;
    Ok((items.into_pyarray(py), scores.into_pyarray(py)))
}

/// Adds the top-K function to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(top_k_py, m)?)
}
