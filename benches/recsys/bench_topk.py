"""Top-10 for every user: fmfast's Rust kernel vs the NumPy equivalent (score blocks + argpartition).

The smoke run (benchmarks disabled) uses a tiny model; with ``--benchmark-enable`` the size is the
issue's 100,000 users x 20,000 items, k = 64 (``FMFAST_BENCH_TOPK=users,items`` overrides it).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import benchmarks_enabled
from fmfast import _fmfast

TOP = 10
FACTORS = 64


def sizes(config: pytest.Config) -> tuple[int, int]:
    if "FMFAST_BENCH_TOPK" in os.environ:
        users, items = os.environ["FMFAST_BENCH_TOPK"].split(",")
        return int(users), int(items)
    return (100_000, 20_000) if benchmarks_enabled(config) else (2_000, 500)


def numpy_top_k(users, user_offsets, items, item_offsets, k, block=2048):
    """Dense scores a block of users at a time, then argpartition + sort of the k best."""
    out = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), block):
        scores = users[start : start + block] @ items.T
        scores += user_offsets[start : start + block, None] + item_offsets[None, :]
        best = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
        out[start : start + block] = np.take_along_axis(best, order, axis=1)
    return out


@pytest.fixture(scope="module")
def model(request):
    n_users, n_items = sizes(request.config)
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((n_users, FACTORS), dtype=np.float32),
        rng.standard_normal(n_users, dtype=np.float32),
        rng.standard_normal((n_items, FACTORS), dtype=np.float32),
        rng.standard_normal(n_items, dtype=np.float32),
    )


@pytest.mark.parametrize("implementation", ["fmfast", "numpy"])
def test_top10_for_every_user(benchmark, model, implementation):
    users, user_offsets, items, item_offsets = model
    benchmark.extra_info.update(
        implementation=implementation, users=len(users), items=len(items), factors=FACTORS
    )
    if implementation == "fmfast":
        ranked, _ = benchmark(_fmfast.top_k, users, user_offsets, items, item_offsets, TOP)
        ranked = ranked.reshape(-1, TOP)
    else:
        ranked = benchmark(numpy_top_k, users, user_offsets, items, item_offsets, TOP)
    reference = numpy_top_k(users[:50], user_offsets[:50], items, item_offsets, TOP)
    np.testing.assert_array_equal(ranked[:50], reference)
