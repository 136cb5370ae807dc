"""RecordIO-protobuf: fmfast against the SageMaker SDK 2.x, and against writing the bytes to disk.

Each benchmark records ``operation``, ``implementation``, ``rows``, ``threads`` and ``bytes`` in its
``extra_info`` and is grouped by operation and size, so ratios can be read off at equal sizes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fmfast
import pytest
from workloads import Data, n_threads, sdk_read, sdk_write, thread_count


def _record(benchmark: Any, operation: str, implementation: str, threads: str, data: Data) -> None:
    benchmark.group = f"{operation} ({data.rows:,} rows)"
    benchmark.extra_info.update(
        operation=operation,
        implementation=implementation,
        rows=data.rows,
        threads=thread_count(threads),
        bytes=len(data.encoded),
    )


def test_encode_bytes(benchmark: Any, implementation: str, threads: str, data: Data) -> None:
    _record(benchmark, "encode to bytes", implementation, threads, data)
    encode: Callable[[], bytes]
    if implementation == "fmfast":

        def encode() -> bytes:
            return fmfast.encode_recordio(data.X, data.labels, n_threads=n_threads(threads))
    else:

        def encode() -> bytes:
            buffer = io.BytesIO()
            sdk_write(buffer, data.X, data.labels)
            return buffer.getvalue()

    assert benchmark(encode) == data.encoded


def test_write_file(benchmark: Any, implementation: str, threads: str, data: Data, tmp_path: Path) -> None:
    _record(benchmark, "write file", implementation, threads, data)
    path = tmp_path / "out.recordio"
    write: Callable[[], None]
    if implementation == "fmfast":

        def write() -> None:
            fmfast.write_recordio(path, data.X, data.labels, n_threads=n_threads(threads))
    else:

        def write() -> None:
            with path.open("wb") as file:
                sdk_write(file, data.X, data.labels)

    benchmark(write)
    assert path.stat().st_size == len(data.encoded)


@pytest.mark.implementations("raw_write")
def test_write_bytes_baseline(
    benchmark: Any, implementation: str, threads: str, data: Data, tmp_path: Path
) -> None:
    """The floor for ``write file``: the same bytes, already encoded, written with ``Path.write_bytes``."""
    _record(benchmark, "write file", implementation, threads, data)
    path = tmp_path / "out.recordio"
    benchmark(path.write_bytes, data.encoded)
    assert path.stat().st_size == len(data.encoded)


def test_decode(benchmark: Any, implementation: str, threads: str, data: Data) -> None:
    _record(benchmark, "decode file", implementation, threads, data)
    if implementation == "fmfast":

        def decode() -> tuple[Any, Any]:
            return fmfast.read_recordio(data.path, n_threads=n_threads(threads))
    else:

        def decode() -> tuple[Any, Any]:
            with data.path.open("rb") as file:
                return sdk_read(file)

    X, labels = benchmark(decode)
    assert X.shape == data.X.shape
    assert X.nnz == data.X.nnz
    assert (X != data.X).nnz == 0
    assert (labels == data.labels).all()
