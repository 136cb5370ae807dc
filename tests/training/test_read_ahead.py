"""The two-stage pipeline of streamed training: the next read overlaps work on the current one, bounded."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import fmfast
import fmfast.training.loop
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast._read_ahead import read_ahead


class Chunk:
    """A read that counts how many of its kind exist."""

    alive = 0
    most = 0

    def __init__(self, number: int) -> None:
        self.number = number
        Chunk.alive += 1
        Chunk.most = max(Chunk.most, Chunk.alive)

    def __del__(self) -> None:
        Chunk.alive -= 1


def chunks(n: int, seconds: float = 0.0, closed: threading.Event | None = None) -> Iterator[Chunk]:
    try:
        for number in range(n):
            time.sleep(seconds)
            yield Chunk(number)
    finally:
        if closed is not None:
            closed.set()


def test_items_come_in_order_with_at_most_two_alive() -> None:
    Chunk.alive = Chunk.most = 0
    seen = []
    for chunk in read_ahead(chunks(20, seconds=0.002)):
        seen.append(chunk.number)
        time.sleep(0.005)  # the reader gets ahead, and must wait
        del chunk
    assert seen == list(range(20))
    assert Chunk.most == 2 and Chunk.alive == 0


def test_reading_overlaps_the_callers_work() -> None:
    # Five reads and five steps of work of 0.1 s each: 1.0 s taking turns, about 0.6 s overlapped.
    started = time.monotonic()
    for _ in read_ahead(chunks(5, seconds=0.1)):
        time.sleep(0.1)
    assert time.monotonic() - started < 0.85


def test_a_reading_error_is_raised_as_it_was_at_its_item() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError(2, "gone", "shard-0002.recordio")

    reads = read_ahead(failing())
    assert next(reads) == 1
    with pytest.raises(OSError, match="gone") as error:
        next(reads)
    assert error.value.filename == "shard-0002.recordio"


def test_stopping_early_stops_the_reader_and_closes_the_source() -> None:
    closed = threading.Event()
    reads = read_ahead(chunks(1000, seconds=0.001, closed=closed))
    assert next(reads).number == 0
    reads.close()
    assert closed.wait(5)


def test_a_streamed_fit_holds_at_most_two_reads_and_trains_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Eight reads of 256 rows: the fit must let go of each read before the one after next is made
    # (whether the next is made before this one is trained depends on timing: at most two).
    monkeypatch.setattr(fmfast.training.loop, "_ROWS_PER_READ", 256)
    rng = np.random.default_rng(0)
    X = sp.random_array((2048, 30), density=0.2, rng=rng, format="csr", dtype=np.float32)
    y = (X @ rng.normal(size=30)).astype(np.float32)
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)
    reads = fmfast.training.loop.recordio_batches
    alive, most = [0], [0]

    def counted(source: object, batch_size: int) -> Iterator[tuple[object, object]]:
        for number, (X_read, labels) in enumerate(reads(source, batch_size)):  # type: ignore[arg-type]
            # iter_recordio itself keeps the first read of a pass (to check that the others
            # agree with it): the pipeline's bound is on the others.
            if number > 0:
                alive[0] += 1
                most[0] = max(most[0], alive[0])
                weakref.finalize(X_read, lambda: alive.__setitem__(0, alive[0] - 1))
            yield X_read, labels
            del X_read, labels

    monkeypatch.setattr(fmfast.training.loop, "recordio_batches", counted)
    params = {"epochs": 2, "mini_batch_size": 16, "random_state": 0, "n_threads": 2}
    streamed = fmfast.FactorizationMachine("regressor", 4, **params).fit(tmp_path / "train.recordio")
    in_memory = fmfast.FactorizationMachine("regressor", 4, **params).fit(X, y)
    assert 1 <= most[0] <= 2
    np.testing.assert_array_equal(streamed.V_, in_memory.V_)
    np.testing.assert_array_equal(streamed.w_, in_memory.w_)
