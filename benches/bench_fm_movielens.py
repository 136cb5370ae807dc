"""Training benchmark on MovieLens-100K: fmfast (1 and 2 threads) vs the NumPy reference.

The real data ships inside RecBole's wheel; fetch it once (never commit it) and point to it:

    pip download --no-deps recbole==1.2.1 -d /tmp/recbole
    FMFAST_MOVIELENS=/tmp/recbole/recbole-1.2.1-py3-none-any.whl \
        .venv/bin/pytest benches/bench_fm_movielens.py --benchmark-enable

(the file is named explicitly: pytest's default ``python_files`` pattern does not match ``bench_*``).

``FMFAST_MOVIELENS`` may also name an extracted ``ml-100k.inter`` file. Without it the benchmark
uses :func:`fmfast.datasets.synthetic_ratings`, which has MovieLens-100K's sizes. Without
``--benchmark-enable`` each case runs once, as a smoke test. Each case records
implementation, threads and size in ``extra_info`` so a report can print ratios.
"""

from __future__ import annotations

import io
import os
import zipfile
from functools import cache

import fmfast.datasets
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import FactorizationMachine
from fmfast import _reference as ref

_INTER = "recbole/dataset_example/ml-100k/ml-100k.inter"


@cache
def movielens() -> tuple[str, sp.csr_array, np.ndarray]:
    """(source name, one-hot user+item CSR, ratings) of MovieLens-100K or its synthetic stand-in."""
    path = os.environ.get("FMFAST_MOVIELENS")
    if not path:
        X, y = fmfast.datasets.synthetic_ratings().one_hot()
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


PARAMS = {"epochs": 1, "mini_batch_size": 1000, "random_state": 0}


@pytest.mark.parametrize(("implementation", "threads"), [("fmfast", 1), ("fmfast", 2), ("reference", 1)])
def test_train_one_epoch(benchmark, implementation: str, threads: int) -> None:
    source, X, y = movielens()
    model = FactorizationMachine("regressor", 8, n_threads=threads, **PARAMS)
    benchmark.extra_info.update(
        {"implementation": implementation, "threads": threads, "rows": X.shape[0], "data": source}
    )
    if implementation == "fmfast":
        benchmark(model.fit, X, y)
        rmse = model.history_[-1]["rmse"]
    else:
        _, history = benchmark(ref.fit, X, y, model.get_params())
        rmse = history[-1]["rmse"]
    assert np.isfinite(rmse)
