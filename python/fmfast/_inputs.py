"""Turning what users pass (scipy sparse, NumPy, lists) into the arrays the Rust core borrows.

Nothing is copied when the input already has a layout the core reads: a CSR matrix with int32
or int64 indices and float32/float64/int32/int64 values, or a C-contiguous NumPy array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

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
    # One of _TENSOR_DTYPES, checked above (mypy does not narrow a str by `in`).
    return cast(TensorDType, requested)


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


def row_slice(csr: sp.csr_array | sp.csr_matrix, start: int, stop: int) -> sp.csr_array | sp.csr_matrix:
    """Rows ``start:stop`` of ``csr``, sharing its indices and values (``csr[start:stop]`` copies them).

    All the rows are ``csr`` itself; otherwise ``indptr`` is new (rebased to start at 0), and the
    values and indices are views, but for a part under half of them, which scipy copies (so that a
    small part does not hold a large array alive).
    """
    if start == 0 and stop == csr.shape[0]:
        return csr
    first, last = int(csr.indptr[start]), int(csr.indptr[stop])
    indptr = csr.indptr[start : stop + 1] - csr.indptr.dtype.type(first)
    parts = (csr.data[first:last], csr.indices[first:last], indptr)
    return type(csr)(parts, shape=(stop - start, csr.shape[1]), copy=False)


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


@dataclass(frozen=True)
class Rows:
    """CSR rows as the core borrows them."""

    n_rows: int
    n_cols: int
    indices: tuple[np.ndarray, np.ndarray]
    data: np.ndarray


def prepare_rows(X: Any) -> Rows:
    """Any matrix as canonical CSR with float32/float64 values; copies only when needed."""
    if not sp.issparse(X):
        X = np.asarray(X)
        if X.ndim == 1:
            raise InvalidInputError(
                f"X must be 2-dimensional, got shape {X.shape}: Reshape your data with X.reshape(-1, 1) "
                "if it holds one feature, or X.reshape(1, -1) if it holds one row"
            )
        if X.dtype.kind == "c":
            raise InvalidInputError(f"Complex data not supported: X has dtype {X.dtype}")
        if X.dtype.kind == "O":
            # Numbers held as Python objects (a mixed pandas frame); a value that is not a number
            # raises NumPy's TypeError.
            X = X.astype(np.float64)
    csr = X if isinstance(X, sp.csr_array | sp.csr_matrix) else as_csr(X)
    if csr.ndim != 2:
        raise InvalidInputError(f"X must be 2-dimensional, got shape {csr.shape}")
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    data = csr.data
    if data.dtype not in (np.float32, np.float64):
        if data.dtype.kind not in "biuf":
            raise InvalidInputError(f"X of dtype {data.dtype} is not numeric")
        data = data.astype(np.float64)
    n_rows, n_cols = csr.shape
    return Rows(int(n_rows), int(n_cols), csr_indices(csr), np.ascontiguousarray(data))


def check_finite(rows: Rows) -> None:
    """Refuse a NaN or infinite value of ``X``, naming its row."""
    bad = np.flatnonzero(~np.isfinite(rows.data))
    if bad.size:
        row = int(np.searchsorted(rows.indices[0], bad[0], side="right")) - 1
        value = rows.data[bad[0]]
        # Written as the core writes it (NaN, inf, -inf), whether fit or predict finds it.
        raise InvalidInputError(
            f"X holds a non-finite value in row {row}: {'NaN' if np.isnan(value) else value}"
        )


def vector(values: Any, n_rows: int, what: str, dtypes: tuple[type, ...] = (np.float64,)) -> np.ndarray:
    """``values`` as one number per row of ``X``, float64 unless already of one of ``dtypes``."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(f"{what} must be a vector, got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise InvalidInputError(f"X has {n_rows} rows but {what} has {array.shape[0]} values")
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(f"{what} of dtype {array.dtype} is not numeric")
    return np.ascontiguousarray(array, dtype=array.dtype if array.dtype in dtypes else np.float64)
