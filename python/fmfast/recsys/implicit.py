"""Implicit feedback: (user, item) interactions turned into a binary classification training set.

A rating regressor learns *how much* a user likes the items they chose to rate; ranking needs
*which* items they will choose. Training a ``binary_classifier`` FM on observed pairs (label 1)
against sampled unobserved pairs (label 0) learns the latter, and beats a most-popular baseline
on top-K metrics where the regressor does not (see ``fmfast demo``).
"""

from __future__ import annotations

import numpy as np

from fmfast.exceptions import InvalidInputError
from fmfast.recsys.datasets import Ratings

#: Labelled (user, item) pairs: :class:`fmfast.recsys.datasets.Ratings` whose values are labels, 1.0 for an
#: observed pair and 0.0 for a sampled one (also read as ``labels``).
Interactions = Ratings


def _codes(name: str, values: np.ndarray, bound: int) -> np.ndarray:
    codes = np.asarray(values)
    if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
        raise InvalidInputError(f"{name} must be a 1-D integer array, got {codes.dtype} {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= bound):
        raise InvalidInputError(f"{name} must lie in 0..{bound - 1}")
    return codes.astype(np.int64, copy=False)


def _unobserved_items(
    users: np.ndarray, items: np.ndarray, n_items: int, for_users: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform draw from each of ``for_users``' unobserved items, and which users had any left."""
    observed = np.unique(users * n_items + items)  # sorted by user, then item
    first = np.searchsorted(observed, observed // n_items * n_items)
    # The r-th unobserved item of a user is r plus the number of that user's observed items o with
    # o - (rank of o among them) <= r; shifted keys keep the order within a user and between users.
    shifted = observed - (np.arange(observed.size) - first)
    start = np.searchsorted(observed, for_users * n_items)
    seen = np.searchsorted(observed, (for_users + 1) * n_items) - start
    keep = seen < n_items
    for_users, start, seen = for_users[keep], start[keep], seen[keep]
    draw = rng.integers(0, n_items - seen) if for_users.size else np.empty(0, dtype=np.int64)
    below = np.searchsorted(shifted, for_users * n_items + draw, side="right") - start
    return draw + below, keep


def sample_negatives(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    per_positive: int = 4,
    seed: int = 0,
) -> Ratings:
    """The observed pairs (label 1.0) plus ``per_positive`` sampled unobserved items per pair.

    Each negative keeps the user of its positive and draws an item uniformly from the items that
    user has not interacted with (exactly, without rejection; a user who interacted with every item
    gets none). Negatives may repeat. The result is shuffled with ``np.random.default_rng(seed)``,
    so the same inputs and seed give the same pairs; ``labels`` holds 1.0 or 0.0 for each. Raises
    :class:`fmfast.InvalidInputError` for codes out of range, arrays of different lengths or a
    negative ``per_positive``.
    """
    users = _codes("users", users, n_users)
    items = _codes("items", items, n_items)
    if users.shape != items.shape:
        raise InvalidInputError(f"users has {users.size} entries but items has {items.size}")
    if per_positive < 0:
        raise InvalidInputError(f"per_positive must be non-negative, got {per_positive}")
    rng = np.random.default_rng(seed)
    negative_users = np.repeat(users, per_positive)
    negative_items, keep = _unobserved_items(users, items, n_items, negative_users, rng)
    negative_users = negative_users[keep]
    order = rng.permutation(users.size + negative_users.size)
    labels = np.r_[np.ones(users.size), np.zeros(negative_users.size)].astype(np.float32)
    return Ratings(
        users=np.r_[users, negative_users][order],
        items=np.r_[items, negative_items][order],
        ratings=labels[order],
        n_users=n_users,
        n_items=n_items,
    )
