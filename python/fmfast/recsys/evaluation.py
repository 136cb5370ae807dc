"""Train/test splits and evaluation metrics for rating prediction and top-K recommendation.

Splits return index arrays ``(train_idx, test_idx)`` (int64, ascending) into the rating arrays:
:func:`random_split`, :func:`leave_n_out`, :func:`temporal_split`.

Rating metrics: :func:`rmse`, :func:`mae`.

Ranking metrics take ``recommended``, an ``(n_users, K)`` integer array of item ids per user,
best first, with ``-1`` as padding for short lists, and ``relevant``, the relevant (held-out)
items of each user: a sequence of ``n_users`` integer arrays, or a SciPy sparse ``users x items``
matrix whose non-zero entries are relevant. Relevance is binary. **Users without relevant items
are skipped**: the metrics are means over users with at least one relevant item (a user with no
relevant item has no defined recall, nDCG or AP). ``k`` (default: all ``K`` columns) truncates
the lists. :func:`precision_at_k`, :func:`recall_at_k`, :func:`ndcg_at_k`, :func:`map_at_k`,
:func:`hit_rate_at_k`, :func:`catalog_coverage`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from fmfast.exceptions import InvalidInputError

__all__ = [
    "catalog_coverage",
    "hit_rate_at_k",
    "leave_n_out",
    "mae",
    "map_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "random_split",
    "recall_at_k",
    "rmse",
    "temporal_split",
]


# ---------------------------------------------------------------------------------------------
# Splits


def random_split(n: int, test_fraction: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n`` ratings at random into train and test indices.

    A permutation of ``0..n-1`` is drawn with ``np.random.default_rng(seed)``; its first
    ``round((1 - test_fraction) * n)`` entries are the training set, the rest the test set. Both
    are returned sorted ascending (file order), as int64. The same seed gives the same split.
    Raises :class:`fmfast.InvalidInputError` for a negative ``n`` or a fraction outside [0, 1].
    """
    n = int(n)
    if n < 0:
        raise InvalidInputError(f"n must be non-negative, got {n}")
    if not 0.0 <= test_fraction <= 1.0:
        raise InvalidInputError(f"test_fraction must be in [0, 1], got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_train = round((1.0 - test_fraction) * n)
    return np.sort(order[:n_train]).astype(np.int64), np.sort(order[n_train:]).astype(np.int64)


def leave_n_out(
    users: np.ndarray, n: int = 10, timestamps: np.ndarray | None = None, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``n`` ratings of every user: the most recent ones, or random ones without times.

    With ``timestamps`` the test set of a user is its ``n`` ratings with the largest timestamps;
    among equal timestamps a later row counts as more recent. Without them ``n`` ratings per user
    are drawn at random with ``np.random.default_rng(seed)``. Users with ``n`` ratings or fewer
    keep all of them in the training set. Returns ``(train_idx, test_idx)``, int64, ascending.
    Raises :class:`fmfast.InvalidInputError` for a negative ``n`` or arrays that are not 1-D or
    differ in length.
    """
    users = np.asarray(users)
    if users.ndim != 1:
        raise InvalidInputError(f"users must be 1-D, got shape {users.shape}")
    if n < 0:
        raise InvalidInputError(f"n must be non-negative, got {n}")
    rows = np.arange(len(users), dtype=np.int64)
    if timestamps is None:
        key = np.random.default_rng(seed).permutation(len(users))
    else:
        key = np.asarray(timestamps)
        if key.shape != users.shape:
            raise InvalidInputError(f"timestamps has shape {key.shape} but users has shape {users.shape}")
    # Sorted by user, then time (or random key), then row: each user's last n are its test set.
    order = np.lexsort((rows, key, users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    group_end = np.repeat(starts + counts, counts)
    from_end = group_end - np.arange(len(users))  # 1 for each user's last row
    is_test = np.zeros(len(users), dtype=bool)
    is_test[order] = (from_end <= n) & (np.repeat(counts, counts) > n)
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)


def temporal_split(timestamps: np.ndarray, cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Split at a point in time: ratings before ``cut`` train, ratings at or after it test.

    Returns ``(train_idx, test_idx)``, int64, ascending. Raises
    :class:`fmfast.InvalidInputError` when ``timestamps`` is not 1-D.
    """
    timestamps = np.asarray(timestamps)
    if timestamps.ndim != 1:
        raise InvalidInputError(f"timestamps must be 1-D, got shape {timestamps.shape}")
    before = timestamps < cut
    return np.flatnonzero(before).astype(np.int64), np.flatnonzero(~before).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Rating metrics


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise InvalidInputError(f"{len(y_true)} true values but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise InvalidInputError("no values to compare")
    return y_true, y_pred


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error of ``y_pred`` against ``y_true`` (computed in float64).

    Raises :class:`fmfast.InvalidInputError` for empty inputs or inputs of different sizes.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error of ``y_pred`` against ``y_true`` (computed in float64).

    Raises :class:`fmfast.InvalidInputError` for empty inputs or inputs of different sizes.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


# ---------------------------------------------------------------------------------------------
# Ranking metrics


def _check_recommended(recommended: np.ndarray, k: int | None) -> np.ndarray:
    """The first ``k`` columns of ``recommended`` as int64, validated."""
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise InvalidInputError(f"recommended must be 2-D (n_users, K), got shape {rec.shape}")
    if rec.size and not np.issubdtype(rec.dtype, np.integer):
        raise InvalidInputError(f"recommended must hold integer item ids, got {rec.dtype}")
    if k is not None:
        if not 1 <= k <= rec.shape[1]:
            raise InvalidInputError(f"k must be in 1..{rec.shape[1]}, got {k}")
        rec = rec[:, :k]
    if rec.shape[1] == 0:
        raise InvalidInputError("recommended has no columns (K = 0)")
    rec = rec.astype(np.int64, copy=False)
    if (rec < -1).any():
        raise InvalidInputError("recommended item ids must be >= 0 (or -1 for padding)")
    ordered = np.sort(rec, axis=1)
    if ((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any():
        raise InvalidInputError("a user's recommendations contain the same item twice")
    return rec


def _relevant_keys(
    relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Relevant (user, item) pairs as ``(user rows, items)``, duplicates removed."""
    if sp.issparse(relevant):
        matrix = sp.coo_array(relevant)
        if matrix.shape[0] != n_users:
            raise InvalidInputError(
                f"relevant has {matrix.shape[0]} rows but recommended has {n_users} users"
            )
        keep = matrix.data != 0
        user_rows = np.asarray(matrix.row[keep], dtype=np.int64)
        items = np.asarray(matrix.col[keep], dtype=np.int64)
    else:
        if len(relevant) != n_users:
            raise InvalidInputError(f"relevant has {len(relevant)} users but recommended has {n_users}")
        arrays = [np.asarray(r).reshape(-1) for r in relevant]
        for a in arrays:
            if a.size and not np.issubdtype(a.dtype, np.integer):
                raise InvalidInputError(f"relevant items must be integer ids, got {a.dtype}")
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        user_rows = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
        items = np.concatenate(arrays).astype(np.int64) if len(arrays) else np.empty(0, dtype=np.int64)
        if (items < 0).any():
            raise InvalidInputError("relevant item ids must be >= 0")
    return user_rows, items


def _hits(
    recommended: np.ndarray, relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix, k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Hit matrix ``(n_users, K)`` and relevant counts of the users that have relevant items."""
    rec = _check_recommended(recommended, k)
    n_users = rec.shape[0]
    user_rows, items = _relevant_keys(relevant, n_users)
    width = int(max(items.max(initial=-1), rec.max(initial=-1))) + 2
    keys = np.unique(user_rows * width + items)
    n_relevant = np.bincount(keys // width, minlength=n_users)
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * width + rec
    hits = np.isin(rec_keys, keys) & (rec >= 0)
    evaluated = n_relevant > 0
    if not evaluated.any():
        raise InvalidInputError("no user has a relevant item; the metric is undefined")
    return hits[evaluated], n_relevant[evaluated]


def precision_at_k(
    recommended: np.ndarray,
    relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix,
    k: int | None = None,
) -> float:
    """Mean over users of (relevant items among the top ``k``) / ``k``.

    Padding (``-1``) counts as a miss, so short lists are penalised. Users without relevant items
    are skipped. Raises :class:`fmfast.InvalidInputError` for inconsistent inputs or when no user
    has a relevant item.
    """
    hits, _ = _hits(recommended, relevant, k)
    return float(np.mean(hits.sum(axis=1) / hits.shape[1]))


def recall_at_k(
    recommended: np.ndarray,
    relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix,
    k: int | None = None,
) -> float:
    """Mean over users of (relevant items among the top ``k``) / (number of relevant items).

    Users without relevant items are skipped. Raises :class:`fmfast.InvalidInputError` for
    inconsistent inputs or when no user has a relevant item.
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    return float(np.mean(hits.sum(axis=1) / n_relevant))


def ndcg_at_k(
    recommended: np.ndarray,
    relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix,
    k: int | None = None,
) -> float:
    """Mean over users of the normalised discounted cumulative gain of the top ``k``.

    Binary relevance: DCG = sum over hit positions ``i`` (0-based) of ``1 / log2(i + 2)``; the
    ideal DCG places ``min(k, |relevant|)`` hits first. Users without relevant items are skipped.
    Raises :class:`fmfast.InvalidInputError` for inconsistent inputs or when no user has a
    relevant item.
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    discount = 1.0 / np.log2(np.arange(hits.shape[1]) + 2.0)
    dcg = hits @ discount
    ideal = np.cumsum(discount)[np.minimum(n_relevant, hits.shape[1]) - 1]
    return float(np.mean(dcg / ideal))


def map_at_k(
    recommended: np.ndarray,
    relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix,
    k: int | None = None,
) -> float:
    """Mean average precision at ``k``.

    AP@k of a user is the sum of precision@i over the hit positions ``i <= k``, divided by
    ``min(k, |relevant|)``. Users without relevant items are skipped. Raises
    :class:`fmfast.InvalidInputError` for inconsistent inputs or when no user has a relevant
    item.
    """
    hits, n_relevant = _hits(recommended, relevant, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    ap = (precision * hits).sum(axis=1) / np.minimum(n_relevant, hits.shape[1])
    return float(np.mean(ap))


def hit_rate_at_k(
    recommended: np.ndarray,
    relevant: Sequence[np.ndarray] | sp.sparray | sp.spmatrix,
    k: int | None = None,
) -> float:
    """Share of users with at least one relevant item among their top ``k``.

    Users without relevant items are skipped. Raises :class:`fmfast.InvalidInputError` for
    inconsistent inputs or when no user has a relevant item.
    """
    hits, _ = _hits(recommended, relevant, k)
    return float(np.mean(hits.any(axis=1)))


def catalog_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the ``n_items`` catalogue recommended to at least one user (padding ignored).

    Raises :class:`fmfast.InvalidInputError` when ``n_items`` is not positive or an id is out of
    range.
    """
    if n_items <= 0:
        raise InvalidInputError(f"n_items must be positive, got {n_items}")
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise InvalidInputError(f"recommended must be 2-D (n_users, K), got shape {rec.shape}")
    ids = rec[rec != -1].astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n_items):
        raise InvalidInputError(f"recommended item ids must be in 0..{n_items - 1} (or -1 for padding)")
    return float(len(np.unique(ids)) / n_items)
