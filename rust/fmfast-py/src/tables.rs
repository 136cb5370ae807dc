//! Binding of Arrow tables: data imported through the Arrow PyCapsule interface (pyarrow, pandas,
//! polars, DuckDB, ... without a copy), encoded by a fitted [`TableEncoder`] or learned from by a
//! [`TableLearner`].

use std::sync::Arc;

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::{RecordBatch, RecordBatchReader, StructArray};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use fmfast_core::parallel::Monitor;
use fmfast_core::tables::{Encoding, Learned, Policy, Strings, TableEncoder, TableLearner, Target, Vocabulary};
use fmfast_core::Error;
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyList, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::detached::run;
use crate::errors::{InvalidInputError, PyFmError};

/// Arrow data handed over by a Python object: a stream of record batches, or one batch.
enum Source {
    Stream(ArrowArrayStreamReader),
    /// The batch until it is read.
    Batch(SchemaRef, Option<RecordBatch>),
}

impl Source {
    /// Imports `data` through `__arrow_c_stream__` (preferred: tables, readers, data frames) or
    /// `__arrow_c_array__` (a record batch, a struct array).
    fn import(data: &Bound<'_, PyAny>) -> PyResult<Source> {
        if data.hasattr("__arrow_c_stream__")? {
            let capsule = data.call_method0("__arrow_c_stream__")?;
            let pointer = capsule
                .cast::<PyCapsule>()?
                .pointer_checked(Some(c"arrow_array_stream"))?;
            // SAFETY: a capsule named "arrow_array_stream" holds an `ArrowArrayStream` (the Arrow
            // PyCapsule interface), and `FFI_ArrowArrayStream` is its `repr(C)` layout; `from_raw`
            // moves the stream out, leaving a released one for the capsule's destructor, and the
            // capsule is alive for the call (no Python code runs in between).
            let stream = unsafe { ArrowArrayStreamReader::from_raw(pointer.as_ptr().cast::<FFI_ArrowArrayStream>()) };
            return Ok(Source::Stream(stream.map_err(arrow_error)?));
        }
        if data.hasattr("__arrow_c_array__")? {
            let pair = data.call_method0("__arrow_c_array__")?;
            let (schema, array) = pair
                .cast::<PyTuple>()?
                .extract::<(Bound<'_, PyCapsule>, Bound<'_, PyCapsule>)>()?;
            let schema_ptr = schema.pointer_checked(Some(c"arrow_schema"))?;
            let array_ptr = array.pointer_checked(Some(c"arrow_array"))?;
            // SAFETY: capsules named "arrow_schema" and "arrow_array" hold an `ArrowSchema` and an
            // `ArrowArray` (`repr(C)` in `FFI_ArrowSchema`, `FFI_ArrowArray`), alive while the
            // capsules are; the array is moved out (its capsule's destructor then sees it released)
            // and the schema only borrowed.
            let data = unsafe {
                let array = FFI_ArrowArray::from_raw(array_ptr.as_ptr().cast::<FFI_ArrowArray>());
                from_ffi(array, &*schema_ptr.as_ptr().cast::<FFI_ArrowSchema>())
            };
            let data = data.map_err(arrow_error)?;
            if !matches!(data.data_type(), DataType::Struct(_)) {
                return Err(InvalidInputError::new_err(format!(
                    "expected a table (an Arrow struct array or record batch), got an Arrow array of type {}",
                    data.data_type()
                )));
            }
            data.validate().map_err(arrow_error)?;
            let (fields, columns, nulls) = StructArray::from(data).into_parts();
            if nulls.is_some_and(|n| n.null_count() > 0) {
                return Err(InvalidInputError::new_err(
                    "a struct array with null rows is not a table: fill or drop those rows",
                ));
            }
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow_error)?;
            return Ok(Source::Batch(batch.schema(), Some(batch)));
        }
        Err(PyTypeError::new_err(format!(
            "expected Arrow data (an object with __arrow_c_stream__ or __arrow_c_array__), got {}",
            data.get_type().name()?
        )))
    }

    fn schema(&self) -> SchemaRef {
        match self {
            Source::Stream(stream) => stream.schema(),
            Source::Batch(schema, _) => schema.clone(),
        }
    }
}

impl Iterator for Source {
    type Item = fmfast_core::Result<RecordBatch>;

    /// The next batch; producers that run Python code (a reader over a generator) take the
    /// interpreter themselves.
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Source::Stream(stream) => stream
                .next()
                .map(|batch| batch.map_err(|e| Error::invalid(format!("reading the Arrow stream failed: {e}")))),
            Source::Batch(_, batch) => batch.take().map(Ok),
        }
    }
}

fn arrow_error(e: ArrowError) -> PyErr {
    InvalidInputError::new_err(format!("invalid Arrow data: {e}"))
}

fn policy(name: &str, value: &str) -> PyResult<Policy> {
    match value {
        "error" => Ok(Policy::Error),
        "ignore" => Ok(Policy::Ignore),
        _ => Err(InvalidInputError::new_err(format!(
            "{name} must be 'error' or 'ignore', got {value:?}"
        ))),
    }
}

/// A vocabulary as Python hands it over: an int64 array, or the code points of a NumPy unicode
/// array (`U<width>`, viewed as uint32) and its width: no Python string made for each id.
#[derive(FromPyObject)]
enum PyVocabulary<'py> {
    Ints(PyReadonlyArray1<'py, i64>),
    Strings(PyReadonlyArray1<'py, u32>, usize),
}

/// The strings of a NumPy unicode array of `width` code points each, as `points` holds them;
/// NumPy's trailing padding (NUL) is not part of a string.
fn ucs4_strings(name: &str, points: &[u32], width: usize) -> PyResult<Strings> {
    if width == 0 || points.len() % width != 0 {
        return Err(InvalidInputError::new_err(format!(
            "block {name:?}: {} code points are not strings of {width}",
            points.len()
        )));
    }
    let mut strings = Strings::with_capacity(points.len() / width, points.len());
    for (i, id) in points.chunks_exact(width).enumerate() {
        let used = id.iter().rposition(|&c| c != 0).map_or(0, |last| last + 1);
        let id = &id[..used];
        if id.iter().any(|&c| char::from_u32(c).is_none()) {
            return Err(InvalidInputError::new_err(format!(
                "block {name:?}: id {i} of the vocabulary is not valid Unicode"
            )));
        }
        strings.push_chars(id.iter().filter_map(|&c| char::from_u32(c)));
    }
    Ok(strings)
}

/// A fitted block as Python describes it: `(name, kind, vocabulary, normalize, range, edges)`.
#[derive(FromPyObject)]
struct PyBlock<'py>(
    String,
    String,
    Option<PyVocabulary<'py>>,
    bool,
    Option<(f64, f64)>,
    Vec<f64>,
);

impl PyBlock<'_> {
    fn into_encoding(self) -> PyResult<(String, Encoding)> {
        let PyBlock(name, kind, vocabulary, normalize, range, edges) = self;
        let vocabulary = || -> PyResult<Vocabulary> {
            Ok(match &vocabulary {
                Some(PyVocabulary::Ints(ids)) => Vocabulary::Ints(ids.as_slice()?.to_vec()),
                Some(PyVocabulary::Strings(points, width)) => {
                    Vocabulary::Strings(ucs4_strings(&name, points.as_slice()?, *width)?)
                }
                None => return Err(InvalidInputError::new_err(format!("block {name:?} has no vocabulary"))),
            })
        };
        let encoding = match kind.as_str() {
            "one_hot" => Encoding::OneHot(vocabulary()?),
            "multi_hot" | "implicit" => Encoding::MultiHot {
                vocabulary: vocabulary()?,
                normalize,
            },
            "numeric" => Encoding::Numeric { range },
            "bucketed" => Encoding::Bucketed { edges },
            _ => {
                return Err(InvalidInputError::new_err(format!(
                    "block {name:?}: unknown kind {kind:?}"
                )))
            }
        };
        Ok((name, encoding))
    }
}

/// CSR arrays `(indptr, indices, data)` and the labels when asked for.
type Arrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
    Option<Bound<'py, PyArray1<f32>>>,
);

/// A fitted feature encoder of Arrow data, built once (the vocabularies' hash tables) and used
/// for any number of tables or batches.
#[pyclass(name = "ArrowEncoder", module = "fmfast._fmfast", frozen)]
pub struct PyArrowEncoder {
    inner: TableEncoder,
}

#[pymethods]
impl PyArrowEncoder {
    /// `blocks`: `(name, kind, vocabulary, normalize, range, edges)` each, in column order.
    #[new]
    fn new(blocks: Vec<PyBlock<'_>>, handle_unknown: &str, handle_null: &str) -> PyResult<Self> {
        let blocks = blocks
            .into_iter()
            .map(PyBlock::into_encoding)
            .collect::<PyResult<Vec<_>>>()?;
        let inner = TableEncoder::new(
            blocks,
            policy("handle_unknown", handle_unknown)?,
            policy("handle_null", handle_null)?,
        )
        .map_err(PyFmError)?;
        Ok(PyArrowEncoder { inner })
    }

    /// The number of columns of the encoded matrix.
    #[getter]
    fn n_features(&self) -> u64 {
        self.inner.n_features()
    }

    /// Encodes all of `data` (a table, batch, reader or PyCapsule object) as CSR arrays
    /// `(indptr, indices, data)`, with column `label` as float32 labels when given.
    #[pyo3(signature = (data, label=None, n_threads=0))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        label: Option<&str>,
        n_threads: usize,
    ) -> PyResult<Arrays<'py>> {
        let source = Source::import(data)?;
        let encoder = &self.inner;
        let encoded = run(py, n_threads, None, move |monitor| {
            encoder.check_schema(&source.schema(), label)?;
            let batches = source.collect::<fmfast_core::Result<Vec<_>>>()?;
            encoder.encode(&batches, label, monitor)
        })?;
        Ok((
            encoded.indptr.into_pyarray(py),
            encoded.indices.into_pyarray(py),
            encoded.data.into_pyarray(py),
            encoded.labels.map(|labels| labels.into_pyarray(py)),
        ))
    }
}

/// Learns, in one streamed pass over `data`, what each block of `blocks` (`(name, target)`,
/// target `"ids"`, `"lists"`, `"range"` or `"numbers"`) learns: a sorted vocabulary (an int64
/// array or a list of strings), a range `(low, high)` (`None` if no value is finite), or `None`.
#[pyfunction]
#[pyo3(signature = (blocks, data, handle_null, n_threads=0))]
fn fit_arrow<'py>(
    py: Python<'py>,
    blocks: Vec<(String, String)>,
    data: &Bound<'py, PyAny>,
    handle_null: &str,
    n_threads: usize,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let targets = blocks
        .into_iter()
        .map(|(name, target)| {
            let target = match target.as_str() {
                "ids" => Target::Ids,
                "lists" => Target::Lists,
                "range" => Target::Range,
                "numbers" => Target::Numbers,
                _ => {
                    return Err(InvalidInputError::new_err(format!(
                        "block {name:?}: unknown target {target:?}"
                    )))
                }
            };
            Ok((name, target))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let mut learner = TableLearner::new(targets, policy("handle_null", handle_null)?);
    let source = Source::import(data)?;
    let learned = run(py, n_threads, None, move |monitor| {
        learner.check_schema(&source.schema())?;
        let mut rows = 0u64;
        for batch in source {
            let batch = batch?;
            learner.update(&batch)?;
            rows += batch.num_rows() as u64;
            monitor.progress(rows)?;
        }
        Ok(learner.finish())
    })?;
    learned
        .into_iter()
        .map(|learned| match learned {
            Learned::Vocabulary(Vocabulary::Ints(ids)) => Ok(ids.into_pyarray(py).into_any()),
            Learned::Vocabulary(Vocabulary::Strings(ids)) => Ok(PyList::new(py, ids.iter())?.into_any()),
            Learned::Range(range) => range.into_bound_py_any(py),
            Learned::Nothing => Ok(py.None().into_bound(py)),
        })
        .collect()
}

/// Adds the Arrow encoder to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyArrowEncoder>()?;
    m.add_function(wrap_pyfunction!(fit_arrow, m)?)
}
