"""Turning what users pass (scipy sparse, NumPy, lists) into the arrays the Rust core borrows.

Nothing is copied when the input already has a layout the core reads: a CSR matrix with int32
or int64 indices and float32/float64/int32/int64 values, or a C-contiguous NumPy array.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from fmfast.exceptions import InvalidInputError

TensorDType = Literal["float32", "float64", "int32"]
DTypeArg = Literal["float32", "float64", "int32", "auto"]

_CORE_VALUE_TYPES = (np.float32, np.float64, np.int32, np.int64)
_TENSOR_DTYPES = ("float32", "float64", "int32")


def sdk_tensor_dtype(dtype: np.dtype[Any], what: str) -> TensorDType:
    """The tensor type the SageMaker SDK picks for an array of ``dtype`` (its ``_resolve_type``)."""
    if dtype == np.float32:
        return "float32"
    if dtype == np.float64:
        return "float64"
    if dtype in (np.int32, np.int64):
        return "int32"
    raise InvalidInputError(f"{what} of dtype {dtype} have no SageMaker tensor type (dtype='auto')")


def tensor_dtype(requested: str, dtype: np.dtype[Any], what: str) -> TensorDType:
    """Resolve a ``dtype=`` argument for an array of ``dtype``; ``"auto"`` follows the SDK."""
    if requested == "auto":
        return sdk_tensor_dtype(dtype, what)
    if requested not in _TENSOR_DTYPES:
        raise InvalidInputError(f"dtype must be one of float32, float64, int32, auto; got {requested!r}")
    return requested  # type: ignore[return-value]


def core_values(values: Any, what: str) -> np.ndarray:
    """A contiguous 1-D array of a type the core reads, converting other numeric types exactly."""
    array = np.asarray(values)
    if array.dtype.type not in _CORE_VALUE_TYPES:
        if array.dtype.kind == "b" or (array.dtype.kind in "iu" and array.dtype.itemsize < 8):
            array = array.astype(np.int64)
        elif array.dtype.kind == "u":
            if array.size and array.max() > np.iinfo(np.int64).max:
                raise InvalidInputError(f"{what} hold values beyond int64")
            array = array.astype(np.int64)
        elif array.dtype.kind == "f" and array.dtype.itemsize < 4:
            array = array.astype(np.float32)
        else:
            raise InvalidInputError(f"{what} of dtype {array.dtype} are not supported")
    return np.ascontiguousarray(array.reshape(-1))


def as_labels(labels: Any, n_rows: int) -> np.ndarray | None:
    """Labels as a 1-D array with one entry per row, checked before anything is written."""
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.ndim != 1:
        raise InvalidInputError(f"labels must be a vector, got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise InvalidInputError(f"{n_rows} rows but {array.shape[0]} labels")
    return core_values(array, "labels")


def as_csr(X: Any) -> sp.csr_array | sp.csr_matrix:
    """Any scipy sparse matrix or array-like as CSR (scipy's ``tocsr``, as the SDK does)."""
    if sp.issparse(X):
        csr = X.tocsr()
    else:
        dense = np.asarray(X)
        if dense.ndim != 2:
            raise InvalidInputError(f"X must be 2-dimensional, got shape {dense.shape}")
        if dense.dtype.kind not in "biuf":
            raise InvalidInputError(f"values of dtype {dense.dtype} are not supported")
        csr = sp.csr_array(
            dense if dense.itemsize >= 4 or dense.dtype.kind != "f" else dense.astype(np.float32)
        )
    if csr.ndim != 2:
        raise InvalidInputError(f"X must be 2-dimensional, got shape {csr.shape}")
    return csr


def as_dense(X: Any) -> np.ndarray:
    """Any matrix as a C-contiguous 2-D array."""
    dense = X.toarray() if sp.issparse(X) else np.asarray(X)
    if dense.ndim != 2:
        raise InvalidInputError(f"X must be 2-dimensional, got shape {dense.shape}")
    return np.ascontiguousarray(dense)


def csr_indices(csr: sp.csr_array | sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """``indptr`` and ``indices`` sharing one of int32/int64, copied only when they differ."""
    indptr, indices = csr.indptr, csr.indices
    if indptr.dtype != indices.dtype or indptr.dtype not in (np.int32, np.int64):
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    return np.ascontiguousarray(indptr), np.ascontiguousarray(indices)
