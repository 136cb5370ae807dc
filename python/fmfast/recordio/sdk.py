"""Drop-in replacements for the SageMaker SDK 2.x writers in ``sagemaker.amazon.common``.

Same names and signatures as the SDK's; for float32 data (and labels) the bytes are identical to
the SDK's. The differences, all deliberate:

* features are written as Float32Tensor by default (the only type SageMaker FM trains on):
  float64 and integer inputs are cast, values beyond float32's range are refused. Pass
  ``dtype="auto"`` for the SDK's choice (Float64Tensor for float64, Int32Tensor for integers);
* any scipy sparse format and NumPy input are accepted by both writers;
* refused input (shapes, label count, dtypes, values) leaves the file as it was: the checks
  happen before the first byte is written, except into a real file written at its end, which is
  cut back to where it was;
* ``file`` may be a path, written atomically, or a store's URL (``s3://...``, uploaded atomically);
* a file object that is a real file (``open(..., "wb")``, ``"ab"``, ``"r+b"``) is written from
  Rust through its descriptor, at its position, which is left after the data as the SDK leaves
  it: the bytes never pass through Python, as fast as :func:`fmfast.write_recordio`. Other file
  objects (``io.BytesIO``, compressed or wrapped files, pipes) get ``write(bytes)``.
"""

from __future__ import annotations

import io
import os
import stat
from typing import IO, Any, TypedDict

from fmfast import _fmfast
from fmfast._inputs import DTypeArg
from fmfast.recordio.codec import Layout, _prepare, encode_recordio, write_recordio

#: File objects whose ``write`` puts bytes unchanged at the descriptor's offset (a subclass, or a
#: ``gzip.GzipFile``, whose ``fileno()`` is that of the file under it, may not).
_PLAIN_FILES = (io.FileIO, io.BufferedWriter, io.BufferedRandom)


def _descriptor(file: Any) -> int | None:
    """The descriptor of ``file`` if it is a plain regular file open for writing, else ``None``."""
    if type(file) not in _PLAIN_FILES or not hasattr(_fmfast, "encode_to_fd"):
        return None
    try:
        fd = file.fileno()
        writable = file.writable()
    except (OSError, ValueError):  # io.UnsupportedOperation is an OSError; ValueError: closed
        return None
    return fd if writable and stat.S_ISREG(os.fstat(fd).st_mode) else None


class _EncodeOptions(TypedDict):
    """The keywords ``_write`` hands to both writers of :mod:`fmfast.recordio.codec`."""

    layout: Layout
    dtype: DTypeArg
    label_dtype: DTypeArg | None
    n_threads: int


def _write(
    file: IO[bytes] | str | os.PathLike[str],
    array: Any,
    labels: Any,
    layout: Layout,
    dtype: DTypeArg,
    label_dtype: DTypeArg | None,
    n_threads: int,
) -> None:
    options: _EncodeOptions = {
        "layout": layout,
        "dtype": dtype,
        "label_dtype": label_dtype,
        "n_threads": n_threads,
    }
    if isinstance(file, (str, os.PathLike)):
        write_recordio(file, array, labels, **options)
    elif (fd := _descriptor(file)) is not None:
        encoding = _prepare(array, labels, layout, dtype, label_dtype, check_finite=False)
        # Python's buffers are emptied and the descriptor put at the file's position (a read
        # buffer leaves it further on); after the data, the file object is told where it ended.
        position = file.tell()
        file.flush()
        os.lseek(fd, position, os.SEEK_SET)
        _fmfast.encode_to_fd(encoding, fd, n_threads)
        file.seek(os.lseek(fd, 0, os.SEEK_CUR))
    else:
        file.write(encode_recordio(array, labels, **options))


def write_spmatrix_to_sparse_tensor(
    file: IO[bytes] | str | os.PathLike[str],
    array: Any,
    labels: Any = None,
    *,
    dtype: DTypeArg = "float32",
    label_dtype: DTypeArg | None = None,
    n_threads: int = 0,
) -> None:
    """Write each row of ``array`` as a sparse-tensor record, like the SageMaker SDK.

    Args:
        file: a binary file object, or a path written atomically.
        array: a scipy sparse matrix/array of any format, or a 2-D NumPy array.
        labels: one label per row, or ``None``.
        dtype: ``"float32"`` (default), ``"float64"``, ``"int32"``, or ``"auto"`` (the SDK's choice).
        label_dtype: tensor type of the labels; ``None`` follows ``dtype``.
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
    """
    _write(file, array, labels, "sparse", dtype, label_dtype, n_threads)


def write_numpy_to_dense_tensor(
    file: IO[bytes] | str | os.PathLike[str],
    array: Any,
    labels: Any = None,
    *,
    dtype: DTypeArg = "float32",
    label_dtype: DTypeArg | None = None,
    n_threads: int = 0,
) -> None:
    """Write each row of ``array`` as a dense-tensor record, like the SageMaker SDK.

    Takes the same arguments as :func:`write_spmatrix_to_sparse_tensor`; sparse input is densified.
    """
    _write(file, array, labels, "dense", dtype, label_dtype, n_threads)
