"""Reading and writing SageMaker's RecordIO-protobuf training data.

Encoding and decoding run in the Rust core, in parallel, without the interpreter lock; the bytes
are identical for every thread count and, for float32 data, identical to what the SageMaker SDK
2.x writes. Rows become ``aialgs.data.Record`` messages: ``features["values"]`` holds the row
(sparse: values, column keys and ``shape=[n_cols]``; dense: all values) and ``label["values"]``
a one-element tensor.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Union

import numpy as np
import scipy.sparse as sp

from fmfast import _fmfast
from fmfast._atomic import remove_stale_temporaries
from fmfast._inputs import DTypeArg, as_csr, as_dense, as_labels, core_values, csr_indices, tensor_dtype
from fmfast._progress import Progress, progress_callback
from fmfast._storage import StorageOptions, StoreOutput, is_url, local_path, open_input, read_bytes
from fmfast.exceptions import InvalidInputError, RecordIOError

if TYPE_CHECKING:
    from typing_extensions import TypeIs  # typing's own from Python 3.13

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, IO[bytes]]
Layout = Literal["sparse", "dense"]

#: Records per batch that :func:`iter_recordio` yields by default.
DEFAULT_BATCH_SIZE = 65_536


def _prepare(
    X: Any,
    labels: Any,
    layout: Layout,
    dtype: DTypeArg,
    label_dtype: DTypeArg | None,
    check_finite: bool,
) -> _fmfast.EncodeArgs:
    """The arguments of the Rust encoder, checked there when built."""
    label_array = None if labels is None else np.asarray(labels)
    # dtype="auto" follows the SDK, which looks at the arrays as given, before any conversion.
    features = tensor_dtype(dtype, _dtype_of(X), "values")
    label_type = features
    if label_array is not None and (label_dtype is not None or dtype == "auto"):
        label_type = tensor_dtype(label_dtype or dtype, label_array.dtype, "labels")
    if layout == "sparse":
        csr = as_csr(X)
        shape, data, indices = csr.shape, csr.data, csr_indices(csr)
    elif layout == "dense":
        dense = as_dense(X)
        shape, data, indices = dense.shape, dense, None
    else:
        raise InvalidInputError(f"layout must be 'sparse' or 'dense', got {layout!r}")
    values = core_values(data, "values")
    label_array = as_labels(label_array, shape[0])
    return _fmfast.EncodeArgs(
        (int(shape[0]), int(shape[1])), indices, values, label_array, features, label_type, check_finite
    )


def _dtype_of(X: Any) -> np.dtype[Any]:
    return X.dtype if hasattr(X, "dtype") else np.asarray(X).dtype


def encode_recordio(
    X: Any,
    labels: Any = None,
    *,
    layout: Layout = "sparse",
    dtype: DTypeArg = "float32",
    label_dtype: DTypeArg | None = None,
    check_finite: bool = False,
    n_threads: int = 0,
    progress: Progress = None,
) -> bytes:
    """Encode the rows of ``X`` (and one label per row) as RecordIO-protobuf bytes.

    Args:
        X: a scipy sparse matrix/array (CSR, CSC, COO, ...) or a 2-D array-like.
        labels: one label per row, or ``None``.
        layout: ``"sparse"`` (values, keys and shape: what SageMaker FM trains on) or ``"dense"``.
        dtype: tensor type of the features: ``"float32"`` (default, the only type FM trains on),
            ``"float64"``, ``"int32"``, or ``"auto"`` to pick it from ``X.dtype`` as the SDK does.
            Values that do not fit the type are refused.
        label_dtype: tensor type of the labels; ``None`` follows ``dtype``.
        check_finite: refuse NaN and infinite values and labels.
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the rows done.

    Raises:
        InvalidInputError: shapes, lengths, dtypes or values that cannot be encoded.
    """
    encoding = _prepare(X, labels, layout, dtype, label_dtype, check_finite)
    with progress_callback(progress, encoding.shape[0], "rows") as callback:
        return _fmfast.encode(encoding, n_threads, callback)


class _Upload:
    """Encoded chunks streamed to a store's URL, with the interface of ``RecordIOFileWriter``."""

    def __init__(self, url: str, storage_options: StorageOptions) -> None:
        self._upload = StoreOutput(url, storage_options)

    def write(self, encoding: _fmfast.EncodeArgs, n_threads: int, callback: Any) -> None:
        _fmfast.encode_to_file(encoding, self._upload, n_threads, callback)

    def commit(self) -> None:
        self._upload.commit()

    def abort(self) -> None:
        self._upload.abort()


class RecordIOWriter:
    """Write a RecordIO file chunk by chunk, for data larger than memory.

    The file appears under ``path`` only when the writer is closed without error (as a context
    manager: when the ``with`` block ends normally); otherwise nothing is left behind. Every chunk
    must have the same number of columns. Threads sharing a writer take turns, a chunk at a time.
    Starting a writer removes the temporary files that killed writers left in the same directory
    (see :mod:`fmfast._atomic` for the rule). The options (``n_threads``: 0, the default, for all
    cores) are :func:`encode_recordio`'s.

    ``path`` may be a store's URL (``s3://bucket/train.recordio``, ``memory://...``; see
    :mod:`fmfast._storage`), opened with ``storage_options``: the chunks are then uploaded as they
    are encoded (S3: a multipart upload), and the object appears only when the writer is closed
    without error; otherwise the upload is aborted and an object already there is left as it was.

    Example:
        >>> with RecordIOWriter("train.recordio") as writer:  # doctest: +SKIP
        ...     for X_chunk, y_chunk in chunks:
        ...         writer.write(X_chunk, y_chunk)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        layout: Layout = "sparse",
        dtype: DTypeArg = "float32",
        label_dtype: DTypeArg | None = None,
        check_finite: bool = False,
        n_threads: int = 0,
        storage_options: StorageOptions = None,
    ) -> None:
        self.path: str | Path = str(path) if is_url(path) else Path(local_path(path))
        self._options = (layout, dtype, label_dtype, check_finite)
        self._n_threads = n_threads
        self._n_cols: int | None = None
        self._labelled: bool | None = None
        self.rows_written = 0
        self._lock = threading.Lock()
        self._writer: Any
        if isinstance(self.path, str):
            self._writer = _Upload(self.path, storage_options)
        else:
            remove_stale_temporaries(self.path)
            self._writer = _fmfast.RecordIOFileWriter(self.path)

    def write(self, X: Any, labels: Any = None, *, progress: Progress = None) -> None:
        """Append the rows of ``X`` (and their labels) to the file."""
        encoding = _prepare(X, labels, *self._options)
        with self._lock:
            self._append(encoding, progress)

    def _append(self, encoding: _fmfast.EncodeArgs, progress: Progress) -> None:
        if self._n_cols is not None and encoding.shape[1] != self._n_cols:
            raise InvalidInputError(f"chunk has {encoding.shape[1]} columns, earlier chunks {self._n_cols}")
        if self._labelled is not None and (encoding.labels is not None) != self._labelled:
            raise InvalidInputError("either every chunk has labels or none does")
        with progress_callback(progress, encoding.shape[0], "rows") as callback:
            self._writer.write(encoding, self._n_threads, callback)
        self._n_cols, self._labelled = encoding.shape[1], encoding.labels is not None
        self.rows_written += encoding.shape[0]

    def close(self) -> None:
        """Finish the file and move it into place."""
        with self._lock:
            self._writer.commit()

    def abort(self) -> None:
        """Discard the file; ``path`` is left as it was."""
        with self._lock:
            self._writer.abort()

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_recordio(
    path: str | os.PathLike[str],
    X: Any,
    labels: Any = None,
    *,
    layout: Layout = "sparse",
    dtype: DTypeArg = "float32",
    label_dtype: DTypeArg | None = None,
    check_finite: bool = False,
    n_threads: int = 0,
    progress: Progress = None,
    storage_options: StorageOptions = None,
) -> None:
    """Write the rows of ``X`` to a RecordIO file, from Rust, atomically.

    Takes the same options as :func:`encode_recordio`. The bytes never pass through Python, and
    a failure leaves no partial file. ``path`` may be a store's URL, as for
    :class:`RecordIOWriter`, opened with ``storage_options``.
    """
    with RecordIOWriter(
        path,
        layout=layout,
        dtype=dtype,
        label_dtype=label_dtype,
        check_finite=check_finite,
        n_threads=n_threads,
        storage_options=storage_options,
    ) as writer:
        writer.write(X, labels, progress=progress)


def _as_scipy(decoded: tuple[Any, ...]) -> tuple[sp.csr_array, np.ndarray | None]:
    n_rows, n_cols, indptr, indices, data, labels = decoded
    return sp.csr_array((data, indices, indptr), shape=(n_rows, n_cols)), labels


def _is_path(source: object) -> TypeIs[str | os.PathLike[str]]:
    return isinstance(source, (str, os.PathLike))


@contextmanager
def _naming_the_file(source: Any) -> Iterator[None]:
    """Start the message of a :class:`RecordIOError` read from a path with that path.

    The record and offset alone do not say which file is corrupt when several are read (a
    training and a validation file, shards); ``.filename`` holds the path as well.
    """
    try:
        yield
    except RecordIOError as error:
        if _is_path(source):
            error.filename = os.fspath(source)
            error.args = (f"{error.filename}: {error.args[0]}", *error.args[1:])
        raise


def _files(source: str | os.PathLike[str], storage_options: StorageOptions) -> list[Any]:
    """The files a path or URL names: itself, or a directory's RecordIO files (a shard set only whole)."""
    from fmfast._storage import is_directory
    from fmfast.recordio.shards import recordio_files  # here: shards imports this module

    if is_url(source):
        url = str(source)
        is_prefix = url.endswith("/") or is_directory(url, storage_options)
        return recordio_files(url, storage_options) if is_prefix else [url]
    path = Path(local_path(source))
    return recordio_files(path) if path.is_dir() else [path]


def _decode_file(file: Any, n_threads: int, report: Any, storage_options: StorageOptions) -> tuple[Any, ...]:
    """A whole RecordIO file decoded: mapped by Rust, or an object's bytes fetched in one piece."""
    if isinstance(file, Path):
        return _fmfast.decode_file(file, n_threads, report)
    buffer = np.frombuffer(read_bytes(file, storage_options), dtype=np.uint8)
    return _fmfast.decode(buffer, n_threads, report)


def _kind(part: tuple[sp.csr_array, Any]) -> str:
    """What the files of a directory must share: the columns, value type and presence of labels."""
    X, labels = part
    return f"{X.shape[1]} {X.dtype} features {'with' if labels is not None else 'without'} labels"


def _check_agrees(first: str, part: tuple[sp.csr_array, Any], source: Any) -> None:
    """Refuse a file of a directory whose records differ in kind (:func:`_kind`) from the first file's."""
    if _kind(part) != first:
        raise InvalidInputError(f"the files of {source} differ: {_kind(part)} after {first}")


def read_recordio(
    source: Source, *, n_threads: int = 0, progress: Progress = None, storage_options: StorageOptions = None
) -> tuple[sp.csr_array, np.ndarray | None]:
    """Decode a whole RecordIO-protobuf stream into a CSR array and labels.

    Args:
        source: a path (of a file, a pipe, or a directory whose files are read in name order, as
            :func:`fmfast.recordio.shards.recordio_files` lists them), bytes-like object, uint8 array or
            binary file object; or a store's URL (``s3://bucket/train/``: an object, or a prefix
            read as a directory is), see :mod:`fmfast._storage`.
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the records done.
        storage_options: options of the store's fsspec file system, for a URL.

    Returns:
        ``(X, labels)``: a ``scipy.sparse.csr_array`` whose values keep the records' tensor type,
        and the labels (``None`` when the records carry none). Dense records become full rows.

    Raises:
        RecordIOError: corrupt, truncated or unsupported data; ``.record`` and ``.offset`` say where
            (and ``.filename`` in which file, for a path).
        InvalidInputError: a directory holding an incomplete or mixed shard set, or files that differ.
        OSError: a path that cannot be read (``FileNotFoundError``, ...), named by ``.filename``.
    """
    with progress_callback(progress, None, "records") as callback:
        if _is_path(source):
            parts: list[tuple[sp.csr_array, np.ndarray | None]] = []
            for file in _files(source, storage_options):
                done = sum(X.shape[0] for X, _ in parts)
                report = None if callback is None else lambda n, done=done: callback(done + n)
                with _naming_the_file(file):
                    part = _as_scipy(_decode_file(file, n_threads, report, storage_options))
                if part[0].shape[0] == 0:
                    continue  # an empty file (a shard of no rows) holds no kind of record to agree with
                parts.append(part)
                _check_agrees(_kind(parts[0]), part, source)
            if len(parts) == 1:
                return parts[0]
            if not parts:
                return sp.csr_array((0, 0), dtype=np.float32), None
            labels = [y for _, y in parts if y is not None]
            return sp.vstack([X for X, _ in parts], format="csr"), np.concatenate(labels) if labels else None
        data = source.read() if hasattr(source, "read") else source
        buffer = np.frombuffer(data, dtype=np.uint8)
        return _as_scipy(_fmfast.decode(buffer, n_threads, callback))


def iter_recordio(
    source: Source,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    n_threads: int = 0,
    progress: Progress = None,
    storage_options: StorageOptions = None,
) -> Iterator[tuple[sp.csr_array, np.ndarray | None]]:
    """Yield ``(X, labels)`` batches of at most ``batch_size`` records, with bounded memory.

    Every batch has the same number of columns; errors name the record and byte offset in the whole
    stream (and the file, for a path).

    Args:
        source: a path (of a file, a pipe, or a directory, read as :func:`read_recordio` reads it), a
            binary file object, bytes, or a store's URL (an object or a prefix, streamed: an
            object's bytes are read a few MiB at a time, never held whole).
        batch_size: the most records a batch holds.
        n_threads: worker threads decoding a batch; 0 (the default) for all cores, capped by
            ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the records read so far, as
            :func:`read_recordio` takes it.
        storage_options: options of the store's fsspec file system, for a URL.

    Yields:
        ``(X, labels)`` as :func:`read_recordio` returns them, one batch at a time.

    Raises:
        RecordIOError: corrupt, truncated or unsupported data, raised at the batch that holds it.
        InvalidInputError: ``batch_size`` below 1, or files of a directory that differ.
        OSError: a path that cannot be read, named by ``.filename``.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, got {batch_size}")
    yield from read_batches(
        source,
        itertools.repeat(batch_size),
        n_threads=n_threads,
        progress=progress,
        storage_options=storage_options,
    )


def read_batches(
    source: Source,
    sizes: Iterator[int],
    *,
    n_threads: int = 0,
    progress: Progress = None,
    storage_options: StorageOptions = None,
) -> Iterator[tuple[sp.csr_array, np.ndarray | None]]:
    """:func:`iter_recordio` with a size of its own for every batch: the next of ``sizes`` (each at least 1).

    Streamed training reads a small first batch, which nothing overlaps, and larger ones after it.
    """
    if isinstance(source, (bytes, bytearray, memoryview, np.ndarray)):
        source = io.BytesIO(bytes(source))
    # Only the kind of the first batch is kept (its arrays would be a third read held in memory).
    first: str | None = None
    records = 0
    with progress_callback(progress, None, "records") as callback:
        for stream in _files(source, storage_options) if _is_path(source) else [source]:
            with _opened(stream, storage_options) as opened, _naming_the_file(stream):
                reader = _fmfast.RecordIOReader(opened)
                while (batch := reader.next_batch(next(sizes), n_threads)) is not None:
                    part = _as_scipy(batch)
                    first = first or _kind(part)
                    _check_agrees(first, part, source)
                    records += part[0].shape[0]
                    if callback is not None:
                        callback(records)
                    yield part


@contextmanager
def _opened(stream: Any, storage_options: StorageOptions) -> Iterator[Any]:
    """What the Rust reader reads ``stream`` from: a path or file object as it is, a URL opened."""
    if isinstance(stream, str) and is_url(stream):
        with open_input(stream, storage_options) as file:
            yield file
    else:
        yield stream
