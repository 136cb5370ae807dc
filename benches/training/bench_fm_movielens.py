"""Training benchmark on MovieLens-100K: fmfast (1 and 2 threads) vs the NumPy reference.

The real data ships inside RecBole's wheel; fetch it once (never commit it) and point to it:

    pip download --no-deps recbole==1.2.1 -d /tmp/recbole
    FMFAST_MOVIELENS=/tmp/recbole/recbole-1.2.1-py3-none-any.whl \
        .venv/bin/pytest benches/bench_fm_movielens.py --benchmark-enable

(the file is named explicitly: pytest's default ``python_files`` pattern does not match ``bench_*``).

``FMFAST_MOVIELENS`` may also name an extracted ``ml-100k.inter`` file. Without it the benchmark
uses :func:`fmfast.recsys.datasets.synthetic_ratings`, which has MovieLens-100K's sizes. Without
``--benchmark-enable`` each case runs once, as a smoke test. Each case records
implementation, threads and size in ``extra_info`` so a report can print ratios.
"""

from __future__ import annotations

import numpy as np
import pytest
from fmfast import FactorizationMachine
from fmfast.training import _reference as ref
from workloads import movielens

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
