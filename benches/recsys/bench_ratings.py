"""Reading a ratings CSV: :func:`fmfast.read_ratings` against ``pandas.read_csv(engine="pyarrow")``.

Both read the same generated MovieLens-25M-shaped ``ratings.csv`` in the same run (20,000 ratings as
a smoke test; 5,000,000 with ``--benchmark-enable``). fmfast returns more than pandas: users and items
coded ``0..n-1`` with their id vocabularies, where pandas returns the raw columns. Each benchmark
records ``operation``, ``implementation`` and ``rows`` in its ``extra_info``. Peak memory is measured
by ``ratings_report.py`` (one process per reader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fmfast
import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_ROWS, benchmarks_enabled
from workloads import RATINGS_ROWS, write_ratings_csv

READERS = ("fmfast", "pandas_pyarrow")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "n_ratings" in metafunc.fixturenames:
        sizes = [SMALL_ROWS, RATINGS_ROWS] if benchmarks_enabled(metafunc.config) else [SMALL_ROWS]
        metafunc.parametrize("n_ratings", sizes)


@pytest.fixture(scope="module")
def _files(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    return {}


@pytest.fixture
def ratings_csv(n_ratings: int, _files: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    if n_ratings not in _files:
        _files[n_ratings] = write_ratings_csv(tmp_path_factory.mktemp("ratings") / "ratings.csv", n_ratings)
    return _files[n_ratings]


def read(reader: str, path: Path) -> Any:
    """What ``reader`` makes of ``path``."""
    if reader == "fmfast":
        return fmfast.read_ratings(path)
    return pd.read_csv(path, engine="pyarrow")


@pytest.mark.parametrize("reader", READERS)
def test_read_ratings_csv(benchmark: Any, reader: str, n_ratings: int, ratings_csv: Path) -> None:
    benchmark.group = f"read ratings.csv ({n_ratings:,} ratings)"
    benchmark.extra_info.update(operation="read ratings.csv", implementation=reader, rows=n_ratings)
    result = benchmark(read, reader, ratings_csv)
    assert len(result) == n_ratings


def test_the_readers_agree(ratings_csv: Path) -> None:
    data, frame = fmfast.read_ratings(ratings_csv), read("pandas_pyarrow", ratings_csv)
    np.testing.assert_array_equal(data.user_ids[data.users], frame["userId"])
    np.testing.assert_array_equal(data.item_ids[data.items], frame["movieId"])
    np.testing.assert_array_equal(data.ratings, frame["rating"].to_numpy(np.float32))
    np.testing.assert_array_equal(data.timestamps, frame["timestamp"])
