"""Training speed (issue 3): samples per second of fmfast against the NumPy reference, same run.

Data: the generated ratings set (5,000,000 ratings of 100,000 users x 20,000 items, low-rank plus
noise, one-hot user + item rows; :func:`workloads.ratings_one_hot`) and MovieLens-100K
(``FMFAST_MOVIELENS``, see ``bench_fm_movielens.py``; its synthetic stand-in otherwise), at
k = 8 and k = 64, fmfast on 1 and 2 threads, the reference on one. One epoch, mini-batches of 1000,
SageMaker's default optimizer (Adam) and SGD.

Without ``--benchmark-enable`` (``make test``) each case runs once on 20,000 generated ratings, as
a smoke test; with it (``make bench``) the generated set has 5,000,000 ratings (or
``FMFAST_BENCH_FM_ROWS``). Each case records data, rows, optimizer, k, implementation and
threads in ``extra_info``, and ``samples_per_s`` from its mean time, so ratios can be printed;
``benches/fm_speed_report.py`` prints them (and checks the issue's targets) in one run.

``test_training_memory`` checks the memory target: the CSR arrays handed to the core are X's own,
and the peak RSS grows during a fit by no more than the model and its optimizer state (plus a
small allowance): float32 labels are not copied either.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import benchmarks_enabled
from fmfast import FactorizationMachine
from fmfast._inputs import prepare_rows as _prepare_rows
from fmfast.training import _reference as ref
from workloads import movielens, ratings_one_hot

SMOKE_ROWS = 20_000
MIB = 1 << 20
PARAMS = {"predictor_type": "regressor", "epochs": 1, "mini_batch_size": 1000, "random_state": 0}
CASES = [("fmfast", 1), ("fmfast", 2), ("reference", 1)]


@cache
def generated(rows: int) -> tuple[sp.csr_array, np.ndarray]:
    return ratings_one_hot(rows)


def _data(config: pytest.Config, name: str) -> tuple[str, sp.csr_array, np.ndarray]:
    if name == "movielens":
        return movielens()
    default = 5_000_000 if benchmarks_enabled(config) else SMOKE_ROWS
    rows = int(os.environ.get("FMFAST_BENCH_FM_ROWS", default))
    return (f"generated-{rows}", *generated(rows))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("k", [8, 64])
@pytest.mark.parametrize(("implementation", "threads"), CASES, ids=[f"{i}-t{t}" for i, t in CASES])
@pytest.mark.parametrize("data_name", ["generated", "movielens"])
def test_train_speed(
    benchmark,
    request: pytest.FixtureRequest,
    data_name: str,
    implementation: str,
    threads: int,
    k: int,
    optimizer: str,
) -> None:
    source, X, y = _data(request.config, data_name)
    model = FactorizationMachine(num_factors=k, optimizer=optimizer, n_threads=threads, **PARAMS)
    rows = X.shape[0]
    benchmark.extra_info.update(
        {
            "data": source,
            "rows": rows,
            "optimizer": optimizer,
            "k": k,
            "implementation": implementation,
            "threads": threads,
        }
    )
    # The reference takes seconds an epoch on the full set: fewer rounds.
    rounds = 3 if implementation == "fmfast" else 1
    if implementation == "fmfast":
        benchmark.pedantic(model.fit, args=(X, y), rounds=rounds, iterations=1)
        rmse = model.history_[-1]["rmse"]
    else:
        _, history = benchmark.pedantic(ref.fit, args=(X, y, model.get_params()), rounds=rounds, iterations=1)
        rmse = history[-1]["rmse"]
    if benchmark.stats is not None:
        benchmark.extra_info["samples_per_s"] = rows / benchmark.stats.stats.mean
    assert np.isfinite(rmse)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.mark.parametrize("k", [8, 64])
def test_training_memory(request: pytest.FixtureRequest, k: int) -> None:
    _, X, y = _data(request.config, "generated")
    rows = _prepare_rows(X)
    assert np.shares_memory(rows.data, X.data)
    assert np.shares_memory(rows.indices[0], X.indptr)
    assert np.shares_memory(rows.indices[1], X.indices)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
        before = _status_kib("VmRSS")
    except (OSError, KeyError):
        pytest.skip("needs Linux /proc to reset and read the peak RSS")
    model = FactorizationMachine(num_factors=k, n_threads=2, **PARAMS).fit(X, y)
    growth = (_status_kib("VmHWM") - before) * 1024
    state = model._state
    owned = sum(getattr(state, name).nbytes for name in ("bias", "linear", "factors"))
    owned += sum(getattr(state, name).nbytes for name in ("bias_state", "linear_state", "factors_state"))
    x_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    allowance = 16 * MIB
    assert growth <= owned + allowance, (growth / MIB, owned / MIB, x_bytes / MIB)
