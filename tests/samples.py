"""Test data: the SageMaker SDK golden vectors and random matrices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

GOLDEN = Path(__file__).parent / "data" / "sagemaker-golden"
#: A binary classifier trained by SageMaker FM: the artifact its jobs write.
SAGEMAKER_ARTIFACT = (
    Path(__file__).parent / "data" / "mxnet-golden" / "sagemaker" / "binary_classifier" / "model.tar.gz"
)


def golden_cases() -> list[dict[str, Any]]:
    """Every case of the SDK golden vectors, as listed in their index."""
    return json.loads((GOLDEN / "index.json").read_text())["cases"]


def golden_input(name: str) -> tuple[Any, np.ndarray | None]:
    """The matrix (CSR or dense) and labels a golden case was written from."""
    z = np.load(GOLDEN / f"{name}.npz", allow_pickle=False)
    labels = z["labels"] if "labels" in z else None
    if "X" in z:
        return z["X"], labels
    return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"])), labels


def random_csr(
    rng: np.random.Generator, n_rows: int, n_cols: int, density: float, dtype: Any = np.float32
) -> sp.csr_matrix:
    """A random CSR matrix with values of ``dtype`` (integers in -50..50 for integer types)."""
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    if np.dtype(dtype).kind in "iu":
        X.data = rng.integers(-50, 50, X.nnz).astype(dtype)
    else:
        X.data = (X.data * 10 - 5).astype(dtype)
    return X
