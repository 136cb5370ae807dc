"""Top-K recommendations from a Factorization Machine, scored by the FM algebra.

For a query (user, context) ``x_u`` and an item ``x_i`` on disjoint feature columns the FM score is
``w0 + c_u + c_i + ⟨s_u, s_i⟩`` with ``s = Σ v x`` and ``c = w·x + ½(‖s‖² - Σ v²x²)``: per-side
sums computed once, then an exact top-K over every (query, item) pair in Rust, in parallel, one
block of queries at a time, so the full score matrix never exists: an int16 first pass with a
proven error bound keeps the few items that can still make a query's top ``k``, and those are
rescored exactly. The result is what scoring every pair through ``predict_score`` and sorting would give
(ties: lower item index first).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from fmfast import _fmfast
from fmfast._inputs import as_csr, check_finite, csr_indices, prepare_rows
from fmfast._progress import Progress, progress_callback
from fmfast._scores import raw_scores, sigmoid
from fmfast.exceptions import InvalidInputError
from fmfast.recsys.datasets import one_hot_rows


def _top_k(
    query_vectors: np.ndarray,
    query_offsets: np.ndarray,
    item_vectors: np.ndarray,
    item_offsets: np.ndarray,
    k: int,
    exclude: sp.csr_array | None,
    n_threads: int = 0,
    progress: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The Rust kernel: best ``k`` of ``query_offset + item_offset + ⟨query, item⟩``, as ``(n, k)`` arrays."""

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    flat_items, flat_scores = _fmfast.top_k(
        f32(query_vectors),
        f32(query_offsets),
        f32(item_vectors),
        f32(item_offsets),
        k,
        None if exclude is None else csr_indices(exclude),
        n_threads,
        progress,
    )
    return flat_items.reshape(-1, k), flat_scores.reshape(-1, k).astype(np.float64)


def model_weights(model: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """``(w0, w, V)`` of a fitted :class:`fmfast.FactorizationMachine` or a :class:`fmfast.SageMakerFM`."""
    if hasattr(model, "V_"):
        return float(model.w0_), np.asarray(model.w_), np.asarray(model.V_)
    if hasattr(model, "V"):
        return float(model.w0), np.asarray(model.w), np.asarray(model.V)
    raise InvalidInputError(f"{type(model).__name__} is not a Factorization Machine")


def side_sums(w: np.ndarray, V: np.ndarray, X: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-row ``c = w·x + ½(‖s‖² - Σ v²x²)`` and ``s = Σ v x`` of the rows of ``X``."""
    csr = as_csr(X)
    if csr.shape[1] != V.shape[0]:
        raise InvalidInputError(f"features have {csr.shape[1]} columns, the model {V.shape[0]}")
    rows = prepare_rows(csr)
    check_finite(rows)
    # c is the FM score of the row with no bias: the core's.
    c = raw_scores(rows, 0.0, w, V)
    s = sp.csr_array(csr, dtype=np.float64) @ V
    return c, np.asarray(s)


def one_hot(ids: Any, offset: int, n_features: int) -> sp.csr_array:
    """Rows with a single 1 in column ``offset + id``: the one-hot block of a user or item id."""
    return one_hot_rows(offset + np.asarray(ids, dtype=np.int64).reshape(-1, 1), n_features)


def recommend(
    model: Any,
    query_features: Any,
    item_features: Any,
    k: int = 10,
    *,
    exclude: Any = None,
    candidates: Any = None,
    n_threads: int = 0,
    progress: Progress = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best items for each query (user, with any context features), best first.

    Args:
        model: a fitted :class:`fmfast.FactorizationMachine` or :class:`fmfast.SageMakerFM`.
        query_features: one row per query over the model's features (e.g. the one-hot user block).
        item_features: one row per item (e.g. the one-hot item block, with item side features);
            its columns must not overlap the query rows' columns.
        k: items per query.
        exclude: optional queries x items sparse matrix of items never to recommend (e.g. the
            items a user already rated).
        candidates: optional item indices to choose from (others are never returned).
        n_threads: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
        progress: ``True`` for a progress bar, or a callable receiving the queries done.

    Returns:
        ``(items, scores)``, each ``(n_queries, k)``: item indices (``-1`` pads when fewer than
        ``k`` items are eligible) and the model's prediction for each pair (the probability for a
        classifier).
    """
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    w0, w, V = model_weights(model)
    queries, items = as_csr(query_features), as_csr(item_features)
    shared = np.intersect1d(queries.indices, items.indices)
    if shared.size:
        raise InvalidInputError(
            f"query and item rows share feature columns (e.g. {shared[0]}); they must be disjoint"
        )
    query_offsets, query_vectors = side_sums(w, V, queries)
    item_offsets, item_vectors = side_sums(w, V, items)
    item_ids = np.arange(items.shape[0])
    exclude_csr = None
    if exclude is not None:
        exclude_csr = sp.csr_array(as_csr(exclude))
        if exclude_csr.shape != (queries.shape[0], items.shape[0]):
            raise InvalidInputError(
                f"exclude is {exclude_csr.shape}, expected {(queries.shape[0], items.shape[0])}"
            )
    if candidates is not None:
        item_ids = np.unique(np.asarray(candidates, dtype=np.int64))
        if item_ids.size and (item_ids[0] < 0 or item_ids[-1] >= items.shape[0]):
            raise InvalidInputError(f"candidates must lie in 0..{items.shape[0]}")
        item_offsets, item_vectors = item_offsets[item_ids], item_vectors[item_ids]
        if exclude_csr is not None:
            exclude_csr = exclude_csr[:, item_ids]
    with progress_callback(progress, queries.shape[0], "queries") as callback:
        ranked, scores = _top_k(
            query_vectors, query_offsets + w0, item_vectors, item_offsets, k, exclude_csr, n_threads, callback
        )
    ranked = np.where(ranked >= 0, item_ids[np.maximum(ranked, 0)], -1)
    if getattr(model, "predictor_type", "regressor") == "binary_classifier":
        scores = sigmoid(scores)
    return ranked, scores


def similar_items(
    model: Any, item_features: Any, items: Any, k: int = 10, *, n_threads: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items whose factor sums ``s_i = Σ v x`` are most cosine-similar to each of ``items``.

    Returns ``(similar, cosines)``, each ``(len(items), k)``; an item is never similar to itself.
    ``n_threads``: worker threads; 0 (the default) for all cores, capped by ``FMFAST_NUM_THREADS``.
    """
    _, w, V = model_weights(model)
    _, vectors = side_sums(w, V, item_features)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1), dtype=np.float32)
    query = np.asarray(items, dtype=np.int64).reshape(-1)
    if query.size and (query.min() < 0 or query.max() >= len(unit)):
        raise InvalidInputError(f"items must lie in 0..{len(unit)}")
    itself = sp.csr_array(
        (np.ones(len(query)), query, np.arange(len(query) + 1)), shape=(len(query), len(unit))
    )
    return _top_k(unit[query], np.zeros(len(query)), unit, np.zeros(len(unit)), k, itself, n_threads)


def most_popular(popularity: Any, exclude: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The usual top-K baseline: the ``k`` items of highest ``popularity`` each user has not seen.

    ``exclude`` is a users x items sparse matrix of seen items; returns ``(items, popularity)``.
    """
    seen = sp.csr_array(as_csr(exclude))
    n_users, n_items = seen.shape
    return _top_k(np.zeros((n_users, 1)), np.zeros(n_users), np.zeros((n_items, 1)), popularity, k, seen)
