"""The one FM scorer (the Rust core's ``fm_predict``) and the one sigmoid.

Every score fmfast gives, whether of the estimator, of a SageMaker artifact or of one side of a
recommendation, is computed by the core, so that the same weights give the same numbers
everywhere.
"""

from __future__ import annotations

import numpy as np

from fmfast import _fmfast
from fmfast._inputs import Rows
from fmfast._progress import Progress, progress_callback


def raw_scores(
    rows: Rows, w0: float, w: np.ndarray, V: np.ndarray, *, n_threads: int = 0, progress: Progress = None
) -> np.ndarray:
    """ŷ of each row: ``w0 + Σ wᵢxᵢ + ½ Σ_f [(Σᵢ v_if xᵢ)² - Σᵢ v_if² xᵢ²]``, float64.

    ``w`` and ``V`` are read as float32 (copied only when they are not C-contiguous float32), and
    ``rows`` must have ``V.shape[0]`` columns.
    """
    with progress_callback(progress, rows.n_rows, "rows") as callback:
        return _fmfast.fm_predict(
            rows.n_cols,
            rows.indices,
            rows.data,
            float(w0),
            np.ascontiguousarray(w, dtype=np.float32),
            np.ascontiguousarray(V, dtype=np.float32),
            n_threads=int(n_threads),
            progress=callback,
        )


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large ``|z|``."""
    e = np.exp(-np.abs(z))
    result: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return result
