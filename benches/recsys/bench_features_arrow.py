"""FeatureEncoder.transform of a pyarrow Table: the Rust Arrow path against the routes it replaced.

The table has the issue's columns: a string user id, an integer item id, a float rating, a list of
1-5 integer genres and an integer age (20,000 rows as a smoke test; 2,000,000 with
``--benchmark-enable``; ``FMFAST_BENCH_ARROW_ROWS`` overrides). Implementations:

* ``arrow``: ``encoder.transform(table)``, read in Rust from the Arrow buffers.
* ``to_pylist``: the pure-Python stand-in it replaced: the table turned into a dict of columns
  (``to_numpy``, lists through ``to_pylist``), then the NumPy path.
* ``dict``: the NumPy path on a dict of columns prepared beforehand (conversion not timed).

Each benchmark records ``implementation`` and ``rows`` in its ``extra_info``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import benchmarks_enabled
from fmfast.recsys.features import FeatureEncoder

IMPLEMENTATIONS = ("arrow", "to_pylist", "dict")


def table(rows: int, seed: int = 0) -> pa.Table:
    """The issue's columns, generated without per-row Python."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, rows)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    genres = pa.ListArray.from_arrays(pa.array(offsets), pa.array(rng.integers(0, 20, int(offsets[-1]))))
    users = pa.array(np.char.add("user", rng.integers(0, max(rows // 20, 1), rows).astype(str)))
    return pa.table(
        {
            "user": users,
            "item": rng.integers(0, max(rows // 40, 1), rows),
            "rating": rng.uniform(1, 5, rows),
            "genres": genres,
            "age": rng.integers(15, 90, rows),
        }
    )


def encoder() -> FeatureEncoder:
    return (
        FeatureEncoder()
        .one_hot("user")
        .one_hot("item")
        .multi_hot("genres")
        .numeric("age")
        .bucketed("rating", [2, 3, 4])
    )


def as_dict(data: pa.Table) -> dict[str, Any]:
    """The stand-in's conversion: NumPy columns, lists of ids as Python lists."""
    return {
        name: column.to_pylist() if pa.types.is_list(column.type) else column.to_numpy(zero_copy_only=False)
        for name, column in zip(data.column_names, data.columns, strict=True)
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "arrow_rows" in metafunc.fixturenames:
        value = os.environ.get("FMFAST_BENCH_ARROW_ROWS")
        default = [20_000, 2_000_000] if benchmarks_enabled(metafunc.config) else [20_000]
        metafunc.parametrize("arrow_rows", [int(n) for n in value.split(",")] if value else default)


@pytest.fixture(scope="module")
def _tables() -> dict[int, tuple[pa.Table, FeatureEncoder]]:
    return {}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_transform(
    benchmark: Any, implementation: str, arrow_rows: int, _tables: dict[int, tuple[pa.Table, FeatureEncoder]]
) -> None:
    if arrow_rows not in _tables:
        data = table(arrow_rows)
        _tables[arrow_rows] = (data, encoder().fit(data))
    data, fitted = _tables[arrow_rows]
    benchmark.extra_info.update(implementation=implementation, rows=arrow_rows)
    if implementation == "arrow":
        X = benchmark(fitted.transform, data)
    elif implementation == "to_pylist":
        X = benchmark(lambda: fitted.transform(as_dict(data)))
    else:
        columns = as_dict(data)
        X = benchmark(fitted.transform, columns)
    assert X.shape == (arrow_rows, fitted.n_features)
