//! Bindings of the text converters: libSVM/libFM and CSV rating triples straight to RecordIO
//! files, parsed and written in Rust without the interpreter lock.

use std::path::PathBuf;

use fmfast_core::text::{libsvm, ratings_csv, LibsvmOptions};
use pyo3::prelude::*;

use crate::detached::run;

/// Converts a libSVM/libFM file into a RecordIO file; returns `(n_rows, n_cols)`. `progress`
/// gets the bytes read over both passes (twice the file size at the end).
#[pyfunction]
#[pyo3(signature = (source, target, n_features=None, zero_based=None, n_threads=0, progress=None))]
fn convert_libsvm(
    py: Python<'_>,
    source: PathBuf,
    target: PathBuf,
    n_features: Option<u64>,
    zero_based: Option<bool>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<(u64, u64)> {
    let options = LibsvmOptions { n_features, zero_based };
    let summary = run(py, n_threads, progress, |monitor| {
        libsvm::convert_libsvm(&source, &target, &options, monitor)
    })?;
    Ok((summary.n_rows, summary.n_cols))
}

/// Converts `user,item,rating` triples into one-hot RecordIO rows; returns
/// `(n_rows, users, items)`, the ids of the user columns and of the item columns that follow.
#[pyfunction]
#[pyo3(signature = (source, target, delimiter=None, n_threads=0, progress=None))]
fn convert_ratings_csv(
    py: Python<'_>,
    source: PathBuf,
    target: PathBuf,
    delimiter: Option<String>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<(u64, Vec<String>, Vec<String>)> {
    let summary = run(py, n_threads, progress, |monitor| {
        ratings_csv::convert_ratings_csv(&source, &target, delimiter.as_deref(), monitor)
    })?;
    Ok((summary.n_rows, summary.users, summary.items))
}

/// Adds the converters to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert_libsvm, m)?)?;
    m.add_function(wrap_pyfunction!(convert_ratings_csv, m)?)?;
    Ok(())
}
