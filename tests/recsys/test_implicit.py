"""Implicit-feedback training pairs: observed pairs labelled 1, sampled unobserved pairs labelled 0."""

from __future__ import annotations

import numpy as np
import pytest
from fmfast.exceptions import InvalidInputError
from fmfast.recsys.datasets import synthetic_ratings
from fmfast.recsys.implicit import sample_negatives


def test_negatives_are_unobserved_pairs_of_the_same_users() -> None:
    ratings = synthetic_ratings(n_users=50, n_items=80, n_ratings=1_000, seed=3)
    pairs = sample_negatives(ratings.users, ratings.items, 50, 80, per_positive=3, seed=1)
    observed = set(zip(ratings.users.tolist(), ratings.items.tolist(), strict=True))
    positive = pairs.labels == 1
    got = set(zip(pairs.users[positive].tolist(), pairs.items[positive].tolist(), strict=True))
    assert got == observed and positive.sum() == len(ratings.users)
    negatives = list(zip(pairs.users[~positive].tolist(), pairs.items[~positive].tolist(), strict=True))
    assert len(negatives) == 3 * len(ratings.users)
    assert not observed & set(negatives)
    np.testing.assert_array_equal(
        np.bincount(pairs.users[~positive], minlength=50), 3 * np.bincount(ratings.users, minlength=50)
    )
    assert not np.array_equal(pairs.labels, np.sort(pairs.labels)[::-1])  # shuffled


def test_same_seed_same_pairs_and_one_hot_layout() -> None:
    users, items = np.array([0, 0, 1, 2]), np.array([1, 2, 0, 3])
    first = sample_negatives(users, items, 3, 4, per_positive=2, seed=7)
    second = sample_negatives(users, items, 3, 4, per_positive=2, seed=7)
    for name in ("users", "items", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    X, y = first.one_hot()
    assert X.shape == (len(y), 3 + 4) and X.dtype == np.float32 and y.dtype == np.float32
    dense = X.toarray()
    np.testing.assert_array_equal(dense[:, :3].argmax(1), first.users)
    np.testing.assert_array_equal(dense[:, 3:].argmax(1), first.items)
    assert (dense.sum(1) == 2).all()


def test_a_user_who_rated_everything_gets_no_negatives() -> None:
    users, items = np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0])
    pairs = sample_negatives(users, items, 2, 3, per_positive=5, seed=0)
    assert not ((pairs.users == 0) & (pairs.labels == 0)).any()
    assert ((pairs.users == 1) & (pairs.labels == 0)).sum() == 5


@pytest.mark.parametrize(
    ("users", "items", "per_positive", "message"),
    [
        (np.array([0, 3]), np.array([0, 1]), 1, "users must lie in 0..2"),
        (np.array([0, 1]), np.array([0, -1]), 1, "items must lie in 0..3"),
        (np.array([0.0]), np.array([0]), 1, "users must be a 1-D integer array"),
        (np.array([0, 1]), np.array([0]), 1, "users has 2 entries but items has 1"),
        (np.array([0]), np.array([0]), -1, "per_positive must be non-negative"),
    ],
)
def test_bad_input_is_refused(users, items, per_positive, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        sample_negatives(users, items, 3, 4, per_positive=per_positive)


def test_negatives_are_uniform_over_each_users_unobserved_items() -> None:
    users, items = np.array([0, 0, 0]), np.array([1, 2, 5])
    pairs = sample_negatives(users, items, 1, 6, per_positive=20_000, seed=2)
    counts = np.bincount(pairs.items[pairs.labels == 0], minlength=6)
    assert counts[[1, 2, 5]].sum() == 0
    np.testing.assert_allclose(counts[[0, 3, 4]] / 60_000, 1 / 3, atol=0.01)
