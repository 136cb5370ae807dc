//! Bindings of the RecordIO-protobuf codec: encode to bytes, write files atomically, decode
//! buffers and files, and stream batches.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use fmfast_core::memory::zeroed_in_parallel;
use fmfast_core::recordio::decode::{Decoded, Indices};
use fmfast_core::recordio::{
    decode_buffer, encode_into, encode_rows, encode_rows_reusing, encoded_size, open_input, read_input, ArrayPool,
    AtomicFile, EncodeOptions, FeatureValues, RecordStream, Rows, StageBuffers,
};
use fmfast_core::Error;
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::arrays::{indices_to_numpy, tensor_kind, values_to_numpy, IndexSlices, PyIndices, PyValues};
use crate::detached::{run, PyMonitor};
use crate::errors::{FmFastError, InvalidInputError, PyFmError};
use crate::lent::lend;

/// Rows and labels as borrowed from Python, ready to be validated and encoded off the GIL.
struct Batch<'a> {
    n_rows: usize,
    n_cols: u64,
    csr: Option<IndexSlices<'a>>,
    data: fmfast_core::csr::Values<'a>,
    labels: Option<fmfast_core::csr::Values<'a>>,
    options: EncodeOptions,
}

/// The error for arrays the encoder cannot read, naming `what`.
fn unsupported(what: &'static str) -> impl Fn(PyErr) -> PyErr {
    move |_| {
        InvalidInputError::new_err(format!(
            "{what} must be contiguous 1-D arrays of a type the encoder reads (int32/int64 indices, \
             float32/float64/int32/int64 values)"
        ))
    }
}

/// What every encoding entry point takes: the rows (CSR `(indptr, indices)` and values, or dense
/// row-major values), the labels and the encoding options, their types and tensor kinds checked
/// when built.
#[pyclass(name = "EncodeArgs", module = "fmfast._fmfast", frozen)]
struct EncodeArgs {
    #[pyo3(get)]
    shape: (usize, u64),
    csr: Option<Py<PyAny>>,
    data: Py<PyAny>,
    #[pyo3(get)]
    labels: Option<Py<PyAny>>,
    options: EncodeOptions,
}

#[pymethods]
impl EncodeArgs {
    #[new]
    #[pyo3(signature = (shape, csr, data, labels, dtype, label_dtype, check_finite))]
    fn new(
        shape: (usize, u64),
        csr: Option<&Bound<'_, PyAny>>,
        data: &Bound<'_, PyAny>,
        labels: Option<&Bound<'_, PyAny>>,
        dtype: &str,
        label_dtype: &str,
        check_finite: bool,
    ) -> PyResult<Self> {
        if let Some(csr) = csr {
            csr.extract::<PyIndices<'_>>()
                .map_err(unsupported("indptr and indices"))?;
        }
        data.extract::<PyValues<'_>>().map_err(unsupported("values"))?;
        if let Some(labels) = labels {
            labels.extract::<PyValues<'_>>().map_err(unsupported("labels"))?;
        }
        Ok(EncodeArgs {
            shape,
            csr: csr.map(|a| a.clone().unbind()),
            data: data.clone().unbind(),
            labels: labels.map(|a| a.clone().unbind()),
            options: EncodeOptions {
                features: tensor_kind(dtype)?,
                labels: tensor_kind(label_dtype)?,
                check_finite,
            },
        })
    }
}

/// The arrays of an [`EncodeArgs`], borrowed for reading while they are encoded.
struct Borrowed<'py> {
    csr: Option<PyIndices<'py>>,
    data: PyValues<'py>,
    labels: Option<PyValues<'py>>,
}

impl EncodeArgs {
    /// Its arrays, borrowed for reading.
    fn borrow<'py>(&self, py: Python<'py>) -> PyResult<Borrowed<'py>> {
        Ok(Borrowed {
            csr: self.csr.as_ref().map(|a| a.bind(py).extract()).transpose()?,
            data: self.data.bind(py).extract()?,
            labels: self.labels.as_ref().map(|a| a.bind(py).extract()).transpose()?,
        })
    }

    /// The rows and labels of `arrays` as the core reads them.
    fn batch<'a>(&self, arrays: &'a Borrowed<'_>) -> PyResult<Batch<'a>> {
        Ok(Batch {
            n_rows: self.shape.0,
            n_cols: self.shape.1,
            csr: arrays.csr.as_ref().map(IndexSlices::new).transpose()?,
            data: arrays.data.as_values()?,
            labels: arrays.labels.as_ref().map(PyValues::as_values).transpose()?,
            options: self.options,
        })
    }
}

impl Batch<'_> {
    /// The rows the arrays hold, validated.
    fn rows(&self) -> fmfast_core::Result<Rows<'_>> {
        // The column indices are checked as they are encoded (one pass over them, not two).
        let rows = match &self.csr {
            Some(IndexSlices::I32(p, i)) => Rows::csr(p, i, self.data, self.n_cols)?,
            Some(IndexSlices::I64(p, i)) => Rows::csr(p, i, self.data, self.n_cols)?,
            None => Rows::dense(self.n_rows, self.n_cols as usize, self.data)?,
        };
        if rows.n_rows() != self.n_rows {
            return Err(Error::invalid(format!(
                "shape says {} rows, indptr holds {}",
                self.n_rows,
                rows.n_rows()
            )));
        }
        Ok(rows)
    }

    /// Validates the rows and encodes them into `buffers`, handing bytes to `sink` in order.
    fn encode(
        &self,
        buffers: &mut StageBuffers,
        monitor: &PyMonitor,
        sink: impl FnMut(&[u8]) -> fmfast_core::Result<()> + Send,
    ) -> fmfast_core::Result<()> {
        encode_rows_reusing(buffers, &self.rows()?, self.labels, &self.options, monitor, sink)
    }
}

/// Encodes rows (CSR when `csr` is given, else dense row-major) into RecordIO-protobuf bytes.
#[pyfunction]
#[pyo3(signature = (args, n_threads=0, progress=None))]
fn encode<'py>(
    py: Python<'py>,
    args: PyRef<'py, EncodeArgs>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let arrays = args.borrow(py)?;
    let batch = args.batch(&arrays)?;
    // A first pass validates and sizes every record; the second writes them in place, in
    // parallel, straight into the bytes object (no intermediate buffers, no copy).
    let (rows, size) = run(py, n_threads, None, |_| {
        let rows = batch.rows()?;
        let size = encoded_size(&rows, batch.labels, &batch.options)?;
        Ok((rows, size))
    })?;
    filled_bytes(py, size.total(), n_threads, progress, |out, monitor| {
        encode_into(&rows, batch.labels, &batch.options, &size, monitor, out)
    })
}

/// A `bytes` object of `len` bytes written in place by `fill`, with the GIL released.
/// `PyBytes::new_with` zeroes its buffer on one thread first (a third of the time of encoding a few
/// hundred MB); here it is zeroed in parallel, on huge pages where the system has them.
fn filled_bytes<'py>(
    py: Python<'py>,
    len: usize,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
    fill: impl FnOnce(&mut [u8], &PyMonitor) -> fmfast_core::Result<()> + Send,
) -> PyResult<Bound<'py, PyBytes>> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err(format!("{len} bytes do not fit a bytes object")))?;
    // SAFETY: a null source asks CPython for a new, uninitialised buffer of `len` bytes, owned by
    // the returned object (NULL, with an exception set, when it cannot be allocated). The buffer is
    // used only while `bytes` is alive, and no Python code sees `bytes` before it is filled.
    let (bytes, buffer) = unsafe {
        let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size);
        let bytes = Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyBytes>();
        let data = pyo3::ffi::PyBytes_AsString(ptr).cast::<MaybeUninit<u8>>();
        (bytes, std::slice::from_raw_parts_mut(data, len))
    };
    run(py, n_threads, progress, |monitor| {
        fill(zeroed_in_parallel(buffer), monitor)
    })?;
    Ok(bytes)
}

/// Encodes rows straight into the open file descriptor `fd` at its offset, which it leaves after
/// the data: the SDK drop-ins given a real file, whose bytes then never pass through Python. The
/// caller flushes its own buffer first. A refused row or Ctrl-C leaves the file as it was.
#[cfg(unix)]
#[pyfunction]
#[pyo3(signature = (args, fd, n_threads=0, progress=None))]
fn encode_to_fd(
    py: Python<'_>,
    args: PyRef<'_, EncodeArgs>,
    fd: std::os::fd::RawFd,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<()> {
    use std::io::{Seek, SeekFrom};
    use std::os::fd::BorrowedFd;

    if fd < 0 {
        return Err(InvalidInputError::new_err(format!("{fd} is not a file descriptor")));
    }
    // SAFETY: `fd` is non-negative and names a descriptor the caller's file object holds open
    // while this call runs; it is only duplicated here, before the interpreter lock is released,
    // so that the writes below go through a descriptor of our own (sharing the file offset) even
    // if another thread closes the caller's.
    let file = std::fs::File::from(unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?);
    let start = (&file).stream_position()?;
    // At the end of the file (`wb`, `ab`: the usual case) the rows are checked as they are
    // written, and a failure cuts the file back to `start`. Over bytes of the file (`r+b`), which
    // could not be restored, every row is checked first, as the bytes path does.
    let at_end = start >= file.metadata()?.len();
    let arrays = args.borrow(py)?;
    let batch = args.batch(&arrays)?;
    run(py, n_threads, progress, |monitor| {
        let rows = batch.rows()?;
        if !at_end {
            encoded_size(&rows, batch.labels, &batch.options)?;
        }
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &file);
        let written = encode_rows(&rows, batch.labels, &batch.options, monitor, |chunk| {
            Ok(out.write_all(chunk)?)
        })
        .and_then(|()| Ok(out.flush()?));
        if written.is_err() && at_end {
            drop(out.into_parts()); // what is still buffered is not written
            file.set_len(start)?;
            (&file).seek(SeekFrom::Start(start))?;
        }
        written
    })
}

/// A Python binary file object written through its `write` method.
struct PyFileWriter(Py<PyAny>);

impl Write for PyFileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Python::attach(|py| {
            let written = self.0.call_method1(py, "write", (PyBytes::new(py, buf),))?;
            // Raw files may write less than given (and say how much); buffered ones return None.
            Ok::<_, PyErr>(written.extract::<Option<usize>>(py)?.unwrap_or(buf.len()))
        })
        .map_err(std::io::Error::other)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Encodes rows into a Python binary file object (an object store's upload) a few MiB at a
/// time, so that neither the whole encoding nor the whole file is ever held in memory.
#[pyfunction]
#[pyo3(signature = (args, file, n_threads=0, progress=None))]
fn encode_to_file(
    py: Python<'_>,
    args: PyRef<'_, EncodeArgs>,
    file: Py<PyAny>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<()> {
    let mut out = std::io::BufWriter::with_capacity(4 << 20, PyFileWriter(file));
    let arrays = args.borrow(py)?;
    let batch = args.batch(&arrays)?;
    run(py, n_threads, progress, |monitor| {
        batch.encode(&mut StageBuffers::default(), monitor, |chunk| Ok(out.write_all(chunk)?))?;
        Ok(out.flush()?)
    })
}

/// A RecordIO file written chunk after chunk and renamed into place by `commit`.
#[pyclass(module = "fmfast._fmfast")]
struct RecordIOFileWriter {
    file: Option<AtomicFile>,
    /// Reused by every chunk (released with the file).
    buffers: StageBuffers,
}

#[pymethods]
impl RecordIOFileWriter {
    #[new]
    fn new(path: std::path::PathBuf) -> PyResult<Self> {
        Ok(RecordIOFileWriter {
            file: Some(AtomicFile::create(path).map_err(PyFmError)?),
            buffers: StageBuffers::default(),
        })
    }

    /// Appends encoded rows.
    #[pyo3(signature = (args, n_threads=0, progress=None))]
    fn write(
        &mut self,
        py: Python<'_>,
        args: PyRef<'_, EncodeArgs>,
        n_threads: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let RecordIOFileWriter { file, buffers } = self;
        let file = file
            .as_mut()
            .ok_or_else(|| FmFastError::new_err("the writer is closed"))?;
        let arrays = args.borrow(py)?;
        let batch = args.batch(&arrays)?;
        run(py, n_threads, progress, |monitor| {
            batch.encode(buffers, monitor, |chunk| Ok(file.write_all(chunk)?))
        })
    }

    /// Makes the file appear under its name.
    fn commit(&mut self, py: Python<'_>) -> PyResult<()> {
        self.buffers = StageBuffers::default();
        match self.file.take() {
            Some(file) => py.detach(|| file.commit()).map_err(|e| PyFmError(e).into()),
            None => Err(FmFastError::new_err("the writer is closed")),
        }
    }

    /// Discards everything written; the target is left as it was.
    fn abort(&mut self) {
        self.file = None;
        self.buffers = StageBuffers::default();
    }
}

/// `(n_rows, n_cols, indptr, indices, data, labels)` as Python objects.
fn decoded_tuple(py: Python<'_>, decoded: Decoded) -> PyResult<Bound<'_, PyTuple>> {
    let (indptr, indices) = indices_to_numpy(py, decoded.indices);
    let data = values_to_numpy(py, decoded.values);
    let labels = decoded.labels.map(|l| values_to_numpy(py, l));
    (decoded.n_rows, decoded.n_cols, indptr, indices, data, labels).into_pyobject(py)
}

/// Decodes a whole RecordIO stream held in a uint8 array.
#[pyfunction]
#[pyo3(signature = (buffer, n_threads=0, progress=None))]
fn decode<'py>(
    py: Python<'py>,
    buffer: PyReadonlyArray1<'py, u8>,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let bytes = buffer.as_slice()?;
    let decoded = run(py, n_threads, progress, |monitor| decode_buffer(bytes, monitor))?;
    decoded_tuple(py, decoded)
}

/// Decodes a whole RecordIO file (or pipe, or FIFO), read into memory.
#[pyfunction]
#[pyo3(signature = (path, n_threads=0, progress=None))]
fn decode_file<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
    n_threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let decoded = run(py, n_threads, progress, |monitor| {
        decode_buffer(&read_input(&path)?, monitor)
    })?;
    decoded_tuple(py, decoded)
}

/// A Python binary file object read through `readinto`-free `read(n)` calls.
struct PyFileReader(Py<PyAny>);

impl Read for PyFileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Python::attach(|py| {
            let chunk = self.0.call_method1(py, "read", (buf.len(),))?;
            let chunk = chunk.bind(py).cast::<PyBytes>().map_err(PyErr::from)?.as_bytes();
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            Ok::<_, PyErr>(n)
        })
        .map_err(std::io::Error::other)
    }
}

/// Streams batches of decoded records from a path or a binary file object.
#[pyclass(module = "fmfast._fmfast")]
struct RecordIOReader {
    stream: Mutex<RecordStream<Box<dyn Read + Send>>>,
    /// The stream's pool, which the arrays of its batches go back to once freed.
    pool: Arc<ArrayPool>,
}

#[pymethods]
impl RecordIOReader {
    #[new]
    fn new(source: &Bound<'_, PyAny>) -> PyResult<Self> {
        let reader: Box<dyn Read + Send> = match source.extract::<std::path::PathBuf>() {
            // Unbuffered: the stream reads 64 KiB or more at a time into a buffer of its own, and a
            // `BufReader` would copy every byte once more.
            Ok(path) => Box::new(open_input(&path).map_err(PyFmError)?),
            Err(_) => Box::new(std::io::BufReader::with_capacity(
                1 << 20,
                PyFileReader(source.clone().unbind()),
            )),
        };
        let stream = RecordStream::new(reader);
        Ok(RecordIOReader {
            pool: stream.pool(),
            stream: Mutex::new(stream),
        })
    }

    /// The next batch of at most `batch_size` records as a decoded tuple, or `None` at the end.
    #[pyo3(signature = (batch_size, n_threads=0))]
    fn next_batch<'py>(
        &self,
        py: Python<'py>,
        batch_size: usize,
        n_threads: usize,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        // The stream is locked with the interpreter lock released: the thread holding the stream
        // may need the interpreter (to read a Python file object) before it lets go, so waiting
        // for the stream while holding the interpreter would deadlock. Threads take turns.
        let decoded = run(py, n_threads, None, |monitor| {
            let mut stream = self
                .stream
                .lock()
                .map_err(|_| Error::invalid("the reader failed in another thread"))?;
            stream.next_batch(batch_size, monitor)
        })?;
        decoded.map(|d| self.lent_tuple(py, d)).transpose()
    }
}

impl RecordIOReader {
    /// As [`decoded_tuple`], with the int32 and float32 arrays lent ([`lend`]): their memory goes
    /// back to the stream for its next batches once NumPy frees them.
    fn lent_tuple<'py>(&self, py: Python<'py>, decoded: Decoded) -> PyResult<Bound<'py, PyTuple>> {
        let values = |values: FeatureValues| match values {
            FeatureValues::F32(values) => lend(py, values, &self.pool),
            other => Ok(values_to_numpy(py, other)),
        };
        let (indptr, indices) = match decoded.indices {
            Indices::I32 { indptr, indices } => (lend(py, indptr, &self.pool)?, lend(py, indices, &self.pool)?),
            wide => indices_to_numpy(py, wide),
        };
        let data = values(decoded.values)?;
        let labels = decoded.labels.map(values).transpose()?;
        (decoded.n_rows, decoded.n_cols, indptr, indices, data, labels).into_pyobject(py)
    }
}

/// Adds the codec's functions and classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(decode_file, m)?)?;
    m.add_function(wrap_pyfunction!(encode_to_file, m)?)?;
    #[cfg(unix)]
    m.add_function(wrap_pyfunction!(encode_to_fd, m)?)?;
    m.add_class::<EncodeArgs>()?;
    m.add_class::<RecordIOFileWriter>()?;
    m.add_class::<RecordIOReader>()?;
    Ok(())
}
