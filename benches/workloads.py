"""Shared workloads for the benchmarks and the report: synthetic data and the SDK, used as a user would.

The data is FM-shaped: ``nnz_per_row`` non-zeros a row spread over ``n_cols`` columns (one column
drawn in each of ``nnz_per_row`` equal bands, so a row's columns are sorted and distinct), float32
values and labels, from a fixed seed.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from functools import cache
from pathlib import Path
from typing import IO, Any

import fmfast
import fmfast.recsys.datasets
import numpy as np
import scipy.sparse as sp

N_COLS = 200_000
NNZ_PER_ROW = 10
SEED = 20_240_601


def _default_threads() -> int:
    """What ``n_threads=0`` means to fmfast: every usable core, capped by ``FMFAST_NUM_THREADS``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = os.environ.get("FMFAST_NUM_THREADS", "")
    return min(cores, int(cap)) if cap.isdigit() and int(cap) > 0 else cores


ALL_THREADS = _default_threads()


def synthetic_csr(
    n_rows: int, n_cols: int = N_COLS, nnz_per_row: int = NNZ_PER_ROW, seed: int | tuple[int, ...] = SEED
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Return ``(X, labels)``: float32 CSR with ``nnz_per_row`` non-zeros a row, and float32 labels."""
    rng = np.random.default_rng(seed)
    band = n_cols // nnz_per_row
    offsets = np.arange(nnz_per_row, dtype=np.int64) * band
    indices = (rng.integers(0, band, size=(n_rows, nnz_per_row)) + offsets).astype(np.int32).ravel()
    data = rng.random(n_rows * nnz_per_row, dtype=np.float32)
    indptr = np.arange(0, n_rows * nnz_per_row + 1, nnz_per_row, dtype=np.int32)
    labels = rng.random(n_rows, dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols)), labels


def sdk_common() -> Any:
    """Import ``sagemaker.amazon.common`` quietly (no v2 deprecation banner, no config INFO lines)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    import sagemaker.amazon.common as common

    return common


def sdk_write(file: IO[bytes], X: sp.csr_matrix, labels: np.ndarray) -> None:
    """The SDK 2.x writer into an open binary file."""
    sdk_common().write_spmatrix_to_sparse_tensor(file, X, labels)


def sdk_read(file: IO[bytes]) -> tuple[sp.csr_matrix, np.ndarray]:
    """``read_records`` and the CSR rebuild in Python, the way a user would write it."""
    records = sdk_common().read_records(file)
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    labels: list[float] = []
    n_cols = 0
    for record in records:
        tensor = record.features["values"].float32_tensor
        data.extend(tensor.values)
        indices.extend(tensor.keys)
        indptr.append(len(data))
        n_cols = tensor.shape[0]
        labels.append(record.label["values"].float32_tensor.values[0])
    X = sp.csr_matrix(
        (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
        shape=(len(records), n_cols),
    )
    return X, np.asarray(labels, dtype=np.float32)


def n_threads(threads: str) -> int:
    """The ``n_threads`` argument for a ``threads`` id: ``"all"`` is 0 (every core)."""
    return 0 if threads == "all" else int(threads)


def thread_count(threads: str) -> int:
    """The number of threads actually used, for the report."""
    return ALL_THREADS if threads == "all" else int(threads)


class Data:
    """A dataset of ``rows`` rows, its RecordIO encoding, and that encoding on disk."""

    def __init__(self, rows: int, directory: Path) -> None:
        self.X: sp.csr_matrix
        self.labels: np.ndarray
        self.X, self.labels = synthetic_csr(rows)
        self.rows = rows
        self.encoded = fmfast.encode_recordio(self.X, self.labels)
        self.path = directory / f"input-{rows}.recordio"
        self.path.write_bytes(self.encoded)


#: The issue's training-speed set: 100,000 users x 20,000 items, 5,000,000 ratings.
RATINGS_USERS, RATINGS_ITEMS, RATINGS_ROWS = 100_000, 20_000, 5_000_000


def ratings_one_hot(
    n_ratings: int = RATINGS_ROWS,
    n_users: int = RATINGS_USERS,
    n_items: int = RATINGS_ITEMS,
    seed: int = SEED,
) -> tuple[sp.csr_array, np.ndarray]:
    """Low-rank ratings plus noise (:func:`fmfast.recsys.datasets.synthetic_ratings`) as one-hot user + item rows.

    Smaller ``n_ratings`` scale the users and items down with it (at least 1,000 and 200), so a
    smoke run keeps the shape of the full set.
    """
    scale = n_ratings / RATINGS_ROWS
    if scale < 1.0:
        n_users, n_items = max(1_000, int(n_users * scale)), max(200, int(n_items * scale))
    return fmfast.recsys.datasets.synthetic_ratings(n_users, n_items, n_ratings, seed=seed).one_hot()


_INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"


@cache
def movielens() -> tuple[str, sp.csr_array, np.ndarray]:
    """(source name, one-hot user+item CSR, ratings) of MovieLens-100K or its synthetic stand-in."""
    path = os.environ.get("FMFAST_MOVIELENS")
    if not path:
        X, y = fmfast.recsys.datasets.synthetic_ratings().one_hot()
        return "synthetic-100k", X, y
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            text = wheel.read(_INTER).decode()
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    table = np.loadtxt(io.StringIO(text), skiprows=1, usecols=(0, 1, 2))
    users = np.unique(table[:, 0], return_inverse=True)[1]
    items = np.unique(table[:, 1], return_inverse=True)[1]
    n, n_users = len(table), int(users.max()) + 1
    rows = np.repeat(np.arange(n), 2)
    cols = np.column_stack([users, n_users + items]).reshape(-1)
    shape = (n, n_users + int(items.max()) + 1)
    X = sp.csr_array((np.ones(2 * n, dtype=np.float32), (rows, cols)), shape=shape)
    return "ml-100k", X, table[:, 2].astype(np.float32)


def write_ratings_csv(path: Path, n_ratings: int, seed: int = SEED) -> Path:
    """A MovieLens-25M-shaped ``ratings.csv`` (``userId,movieId,rating,timestamp``, half stars, ids up to
    162,541 users and 209,171 movies) of ``n_ratings`` rows, written by pyarrow's CSV writer."""
    import pyarrow as pa
    import pyarrow.csv

    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "userId": rng.integers(1, 162_542, n_ratings),
            "movieId": rng.integers(1, 209_172, n_ratings),
            "rating": rng.integers(1, 11, n_ratings) / 2,
            "timestamp": rng.integers(789_652_009, 1_574_327_703, n_ratings),
        }
    )
    pyarrow.csv.write_csv(table, path)
    return path
