"""Tests of fmfast.recsys.evaluation: splits and metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.exceptions import InvalidInputError
from fmfast.recsys.evaluation import (
    catalog_coverage,
    hit_rate_at_k,
    leave_n_out,
    mae,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    random_split,
    recall_at_k,
    rmse,
    temporal_split,
)

# ----------------------------------------------------------------------------- splits


def assert_partition(train, test, n):
    assert train.dtype == np.int64 and test.dtype == np.int64
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_random_split_matches_definition():
    train, test = random_split(10, 0.2, seed=7)
    perm = np.random.default_rng(7).permutation(10)
    np.testing.assert_array_equal(train, np.sort(perm[:8]))
    np.testing.assert_array_equal(test, np.sort(perm[8:]))
    assert_partition(train, test, 10)


def test_random_split_sizes_and_determinism():
    train, test = random_split(1000)
    assert (len(train), len(test)) == (800, 200)
    assert_partition(train, test, 1000)
    again = random_split(1000)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(test, random_split(1000, seed=1)[1])
    assert [len(part) for part in random_split(5, 0.0)] == [5, 0]
    assert [len(part) for part in random_split(5, 1.0)] == [0, 5]
    assert [len(part) for part in random_split(0)] == [0, 0]


def test_random_split_errors():
    with pytest.raises(InvalidInputError, match=r"test_fraction must be in \[0, 1\]"):
        random_split(10, 1.5)
    with pytest.raises(InvalidInputError, match=r"n must be non-negative"):
        random_split(-1)


def test_leave_n_out_by_time_hand_case():
    users = np.array([0, 0, 0, 0, 1, 1, 2])
    times = np.array([5, 1, 5, 3, 1, 2, 9])
    train, test = leave_n_out(users, n=1, timestamps=times)
    # user 0: rows 0 and 2 tie at t=5, the later row counts as more recent; user 2 has only 1.
    np.testing.assert_array_equal(test, [2, 5])
    assert_partition(train, test, 7)
    train, test = leave_n_out(users, n=2, timestamps=times)
    np.testing.assert_array_equal(test, [0, 2])  # user 1 has exactly 2 ratings: all train
    train, test = leave_n_out(users, n=0, timestamps=times)
    assert len(test) == 0 and len(train) == 7


def test_leave_n_out_properties():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 60, 3000)
    times = rng.integers(0, 50, 3000)
    n = 5
    train, test = leave_n_out(users, n=n, timestamps=times)
    assert_partition(train, test, 3000)
    counts = np.bincount(users, minlength=60)
    test_counts = np.bincount(users[test], minlength=60)
    np.testing.assert_array_equal(test_counts, np.where(counts > n, n, 0))
    for u in np.flatnonzero(counts > n):
        assert times[test][users[test] == u].min() >= times[train][users[train] == u].max()


def test_leave_n_out_random():
    rng = np.random.default_rng(4)
    users = rng.integers(0, 40, 1000)
    train, test = leave_n_out(users, n=3, seed=5)
    assert_partition(train, test, 1000)
    counts = np.bincount(users, minlength=40)
    np.testing.assert_array_equal(np.bincount(users[test], minlength=40), np.where(counts > 3, 3, 0))
    np.testing.assert_array_equal(test, leave_n_out(users, n=3, seed=5)[1])
    assert not np.array_equal(test, leave_n_out(users, n=3, seed=6)[1])


def test_leave_n_out_errors():
    with pytest.raises(InvalidInputError, match=r"n must be non-negative"):
        leave_n_out(np.array([0, 1]), n=-1)
    with pytest.raises(InvalidInputError, match=r"timestamps has shape"):
        leave_n_out(np.array([0, 1]), n=1, timestamps=np.array([1, 2, 3]))
    with pytest.raises(InvalidInputError, match=r"users must be 1-D"):
        leave_n_out(np.zeros((2, 2), dtype=int))


def test_temporal_split():
    train, test = temporal_split(np.array([5, 1, 10, 7]), 7)
    np.testing.assert_array_equal(train, [0, 1])
    np.testing.assert_array_equal(test, [2, 3])
    with pytest.raises(InvalidInputError, match=r"timestamps must be 1-D"):
        temporal_split(np.zeros((2, 2)), 1)


# ----------------------------------------------------------------------------- rating metrics


def test_rmse_mae():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([2.0, 2.0, 1.0, 4.0], dtype=np.float32)
    assert rmse(y, p) == pytest.approx(math.sqrt(5 / 4))
    assert mae(y, p) == pytest.approx(3 / 4)
    assert rmse(y, y) == 0.0
    with pytest.raises(InvalidInputError, match=r"4 true values but 3 predictions"):
        rmse(y, p[:3])
    with pytest.raises(InvalidInputError, match=r"no values"):
        mae([], [])


# ----------------------------------------------------------------------------- ranking metrics


def test_single_user_k3_hand_computed():
    rec = np.array([[5, 1, 7]])
    rel = [np.array([1, 7, 9])]
    d2, d3 = 1 / math.log2(3), 1 / math.log2(4)
    assert precision_at_k(rec, rel) == pytest.approx(2 / 3)
    assert recall_at_k(rec, rel) == pytest.approx(2 / 3)
    assert ndcg_at_k(rec, rel) == pytest.approx((d2 + d3) / (1 + d2 + d3))
    assert map_at_k(rec, rel) == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert hit_rate_at_k(rec, rel) == 1.0


def test_perfect_ranking_scores_one():
    rec = np.array([[3, 1, 2]])
    rel = [np.array([1, 2, 3, 4])]  # more relevant items than K: ideal is a full list
    assert ndcg_at_k(rec, rel) == pytest.approx(1.0)
    assert map_at_k(rec, rel) == pytest.approx(1.0)
    assert recall_at_k(rec, rel) == pytest.approx(3 / 4)


RECOMMENDED = np.array([[0, 1, -1], [2, 3, 4], [5, 6, 7]])
RELEVANT = [np.array([1]), np.array([], dtype=np.int64), np.array([9, 5])]


def test_padding_and_users_without_relevant_items_are_skipped():
    d2 = 1 / math.log2(3)
    assert precision_at_k(RECOMMENDED, RELEVANT) == pytest.approx(1 / 3)
    assert recall_at_k(RECOMMENDED, RELEVANT) == pytest.approx((1 + 1 / 2) / 2)
    assert ndcg_at_k(RECOMMENDED, RELEVANT) == pytest.approx((d2 + 1 / (1 + d2)) / 2)
    assert map_at_k(RECOMMENDED, RELEVANT) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert hit_rate_at_k(RECOMMENDED, RELEVANT) == 1.0


def test_k_truncates():
    assert precision_at_k(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 2)
    assert recall_at_k(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 4)
    assert hit_rate_at_k(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 2)
    assert ndcg_at_k(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 2)
    assert map_at_k(RECOMMENDED, RELEVANT, k=1) == pytest.approx(1 / 2)


@pytest.mark.parametrize("metric", [precision_at_k, recall_at_k, ndcg_at_k, map_at_k, hit_rate_at_k])
def test_sparse_relevant_matches_lists(metric):
    rows = np.repeat(np.arange(3), [len(r) for r in RELEVANT])
    cols = np.concatenate(RELEVANT)
    matrix = sp.csr_array((np.ones(len(cols)), (rows, cols)), shape=(3, 12))
    assert metric(RECOMMENDED, matrix) == pytest.approx(metric(RECOMMENDED, RELEVANT))
    assert metric(RECOMMENDED, sp.csr_matrix(matrix)) == pytest.approx(metric(RECOMMENDED, RELEVANT))


def test_duplicate_relevant_items_count_once():
    rel = [np.array([1, 1]), np.array([], dtype=np.int64), np.array([9, 5, 5])]
    assert recall_at_k(RECOMMENDED, rel) == pytest.approx(recall_at_k(RECOMMENDED, RELEVANT))


def test_vectorised_matches_loop():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 30, 40, 10
    rec = np.stack([rng.permutation(n_items)[:k] for _ in range(n_users)])
    rel = [rng.choice(n_items, rng.integers(0, 8), replace=False) for _ in range(n_users)]
    ndcgs, aps = [], []
    for u in range(n_users):
        if len(rel[u]) == 0:
            continue
        hits = np.isin(rec[u], rel[u])
        dcg = sum(1 / math.log2(i + 2) for i in range(k) if hits[i])
        idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel[u]))))
        ndcgs.append(dcg / idcg)
        ap = sum(hits[: i + 1].sum() / (i + 1) for i in range(k) if hits[i])
        aps.append(ap / min(k, len(rel[u])))
    assert ndcg_at_k(rec, rel) == pytest.approx(np.mean(ndcgs))
    assert map_at_k(rec, rel) == pytest.approx(np.mean(aps))


def test_catalog_coverage():
    assert catalog_coverage(RECOMMENDED, 10) == pytest.approx(0.8)
    assert catalog_coverage(np.full((2, 3), -1), 5) == 0.0
    with pytest.raises(InvalidInputError, match=r"n_items must be positive"):
        catalog_coverage(RECOMMENDED, 0)
    with pytest.raises(InvalidInputError, match=r"must be in 0\.\.4"):
        catalog_coverage(RECOMMENDED, 5)
    with pytest.raises(InvalidInputError, match=r"must be 2-D"):
        catalog_coverage(np.array([1, 2]), 5)


def test_ranking_errors():
    rel = [np.array([1])]
    with pytest.raises(InvalidInputError, match=r"must be 2-D"):
        precision_at_k(np.array([1, 2]), rel)
    with pytest.raises(InvalidInputError, match=r"integer item ids"):
        precision_at_k(np.array([[1.0, 2.0]]), rel)
    with pytest.raises(InvalidInputError, match=r"k must be in 1\.\.2"):
        precision_at_k(np.array([[1, 2]]), rel, k=3)
    with pytest.raises(InvalidInputError, match=r"K = 0"):
        precision_at_k(np.zeros((1, 0), dtype=int), rel)
    with pytest.raises(InvalidInputError, match=r">= 0 \(or -1 for padding\)"):
        precision_at_k(np.array([[1, -2]]), rel)
    with pytest.raises(InvalidInputError, match=r"same item twice"):
        precision_at_k(np.array([[1, 1]]), rel)
    with pytest.raises(InvalidInputError, match=r"relevant has 2 users but recommended has 1"):
        precision_at_k(np.array([[1, 2]]), [np.array([1]), np.array([2])])
    with pytest.raises(InvalidInputError, match=r"relevant has 2 rows"):
        precision_at_k(np.array([[1, 2]]), sp.csr_array((2, 5)))
    with pytest.raises(InvalidInputError, match=r"no user has a relevant item"):
        ndcg_at_k(np.array([[1, 2]]), [np.array([], dtype=np.int64)])
    with pytest.raises(InvalidInputError, match=r"relevant item ids must be >= 0"):
        recall_at_k(np.array([[1, 2]]), [np.array([-3])])
    with pytest.raises(InvalidInputError, match=r"integer ids"):
        recall_at_k(np.array([[1, 2]]), [np.array([1.5])])
