//! Bindings of the text parsers: libSVM/libFM and ratings files straight to RecordIO files, and
//! ratings files into arrays, parsed (and written) in Rust without the interpreter lock.

use std::path::PathBuf;

use fmfast_core::text::{libsvm, ratings_csv, IdList, LibsvmOptions, RatingsOptions, Unknown, Vocabulary};
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use crate::detached::run;
use crate::errors::PyFmError;

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

/// A given vocabulary `(user ids, item ids)`, checked.
fn vocabulary(ids: Option<(Vec<String>, Vec<String>)>) -> PyResult<Option<Vocabulary>> {
    Ok(ids
        .map(|(users, items)| Vocabulary::new(users, items))
        .transpose()
        .map_err(PyFmError::from)?)
}

/// How to read a ratings file, from the arguments both ratings functions take.
fn ratings_options<'a>(
    delimiter: Option<&'a str>,
    header: Option<bool>,
    vocabulary: Option<&'a Vocabulary>,
    skip_unknown: bool,
) -> RatingsOptions<'a> {
    RatingsOptions {
        delimiter,
        header,
        vocabulary,
        unknown: if skip_unknown { Unknown::Skip } else { Unknown::Refuse },
        ..RatingsOptions::default()
    }
}

/// Converts a ratings file into one-hot RecordIO rows; returns `(n_rows, n_unknown, users,
/// items)`: the ids of the user columns and of the item columns that follow (the given
/// `vocabulary` when there is one, else the file's), and the rows with an id outside it.
#[pyfunction]
#[pyo3(signature = (source, target, delimiter=None, header=None, vocabulary=None, skip_unknown=false, n_threads=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn convert_ratings_csv(
    py: Python<'_>,
    source: PathBuf,
    target: PathBuf,
    delimiter: Option<String>,
    header: Option<bool>,
    vocabulary: Option<(Vec<String>, Vec<String>)>,
    skip_unknown: bool,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<(u64, u64, Vec<String>, Vec<String>)> {
    let vocabulary = self::vocabulary(vocabulary)?;
    let options = ratings_options(delimiter.as_deref(), header, vocabulary.as_ref(), skip_unknown);
    let summary = run(py, n_threads, progress, |monitor| {
        ratings_csv::convert_ratings_csv(&source, &target, &options, monitor)
    })?;
    let Vocabulary { users, items, .. } = summary.vocabulary;
    Ok((summary.n_rows, summary.n_unknown, users, items))
}

/// The arrays [`read_ratings`] returns: user and item codes, ratings, timestamps, user and item ids.
type RatingsArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Option<Bound<'py, PyArray1<f32>>>,
    Option<Bound<'py, PyArray1<i64>>>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

/// Ids as an int64 array when they are all plain integers, else a list of `str`.
fn ids<'py>(py: Python<'py>, ids: IdList) -> PyResult<Bound<'py, PyAny>> {
    match ids {
        IdList::Numbers(numbers) => Ok(numbers.into_pyarray(py).into_any()),
        IdList::Texts(texts) => texts.into_pyobject(py).map(Bound::into_any),
    }
}

/// Reads a ratings file into arrays: the user and item code of each rating (-1 for an id outside
/// `vocabulary` when `skip_unknown`), the ratings (`None` for pairs, accepted when `pairs`), the
/// timestamps (when asked for and present), and the ids of the user and item codes (an int64 array
/// when every id is a plain integer, else a list of `str`).
#[pyfunction]
#[pyo3(signature = (source, delimiter=None, header=None, timestamps=true, pairs=false, vocabulary=None, skip_unknown=false, n_threads=0, progress=None))]
#[allow(clippy::too_many_arguments)]
fn read_ratings<'py>(
    py: Python<'py>,
    source: PathBuf,
    delimiter: Option<String>,
    header: Option<bool>,
    timestamps: bool,
    pairs: bool,
    vocabulary: Option<(Vec<String>, Vec<String>)>,
    skip_unknown: bool,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<RatingsArrays<'py>> {
    let vocabulary = self::vocabulary(vocabulary)?;
    let options = RatingsOptions {
        timestamps,
        pairs,
        ..ratings_options(delimiter.as_deref(), header, vocabulary.as_ref(), skip_unknown)
    };
    let table = run(py, n_threads, progress, |monitor| {
        ratings_csv::read_ratings(&source, &options, monitor)
    })?;
    Ok((
        table.users.into_pyarray(py),
        table.items.into_pyarray(py),
        table.ratings.map(|r| r.into_pyarray(py)),
        table.timestamps.map(|t| t.into_pyarray(py)),
        ids(py, table.user_ids)?,
        ids(py, table.item_ids)?,
    ))
}

/// Adds the converters to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert_libsvm, m)?)?;
    m.add_function(wrap_pyfunction!(convert_ratings_csv, m)?)?;
    m.add_function(wrap_pyfunction!(read_ratings, m)?)?;
    Ok(())
}
