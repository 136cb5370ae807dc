"""Benchmark configuration: choose sizes, share data between benchmarks.

With ``--benchmark-disable`` (the default in ``pyproject.toml``) every benchmark runs once on the
small size, as a smoke test; ``make bench`` (``--benchmark-enable``) adds the large size for
fmfast. The SageMaker SDK writes ~12,000 rows a second, so it only runs on the small size; compare
implementations at equal ``rows`` (the ``extra_info`` of each benchmark says which). Sizes can be
overridden with comma-separated row counts in ``FMFAST_BENCH_ROWS`` and ``FMFAST_BENCH_SDK_ROWS``.
"""

from __future__ import annotations

import os

import pytest
from workloads import Data

SMALL_ROWS = 20_000
LARGE_ROWS = 1_000_000


def benchmarks_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_enable") or not config.getoption("benchmark_disable"))


def _rows(variable: str, default: list[int]) -> list[int]:
    value = os.environ.get(variable)
    return [int(n) for n in value.split(",")] if value else default


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``(implementation, threads, rows)``; the SDK is single-threaded and small only."""
    if not {"implementation", "threads", "rows"} <= set(metafunc.fixturenames):
        return
    enabled = benchmarks_enabled(metafunc.config)
    fast_rows = _rows("FMFAST_BENCH_ROWS", [SMALL_ROWS, LARGE_ROWS] if enabled else [SMALL_ROWS])
    sdk_rows = _rows("FMFAST_BENCH_SDK_ROWS", [SMALL_ROWS])
    marker = metafunc.definition.get_closest_marker("implementations")
    implementations = marker.args if marker else ("fmfast", "sagemaker_sdk")
    cases = []
    for implementation in implementations:
        if implementation == "fmfast":
            cases += [(implementation, threads, rows) for rows in fast_rows for threads in ("1", "all")]
        else:
            sizes = sdk_rows if implementation == "sagemaker_sdk" else fast_rows
            cases += [(implementation, "1", rows) for rows in sizes]
    metafunc.parametrize(
        ("implementation", "threads", "rows"), cases, ids=[f"{i}-t{t}-{r}" for i, t, r in cases]
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "implementations(*names): implementations a benchmark compares")


@pytest.fixture(scope="session")
def _datasets() -> dict[int, Data]:
    return {}


@pytest.fixture
def data(rows: int, _datasets: dict[int, Data], tmp_path_factory: pytest.TempPathFactory) -> Data:
    if rows not in _datasets:
        _datasets[rows] = Data(rows, tmp_path_factory.mktemp("data"))
    return _datasets[rows]
