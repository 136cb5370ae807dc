"""Drop-in replacements for the SageMaker SDK 2.x writers in ``sagemaker.amazon.common``.

Same names and signatures as the SDK's; for float32 data (and labels) the bytes are identical to
the SDK's. The differences, all deliberate:

* features are written as Float32Tensor by default (the only type SageMaker FM trains on):
  float64 and integer inputs are cast, values beyond float32's range are refused. Pass
  ``dtype="auto"`` for the SDK's choice (Float64Tensor for float64, Int32Tensor for integers);
* any scipy sparse format and NumPy input are accepted by both writers;
* every check (shapes, label count, dtypes, values) happens before the first byte is written;
* ``file`` may be a path, written atomically.
"""

from __future__ import annotations

import os
from typing import IO, Any

from fmfast._inputs import DTypeArg
from fmfast.recordio.codec import Layout, encode_recordio, write_recordio


def _write(
    file: IO[bytes] | str | os.PathLike[str],
    array: Any,
    labels: Any,
    layout: Layout,
    dtype: DTypeArg,
    label_dtype: DTypeArg | None,
    n_threads: int,
) -> None:
    options = {"layout": layout, "dtype": dtype, "label_dtype": label_dtype, "n_threads": n_threads}
    if isinstance(file, (str, os.PathLike)):
        write_recordio(file, array, labels, **options)
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
