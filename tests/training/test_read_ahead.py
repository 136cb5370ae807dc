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

    def counted(source: object, mini_batch_size: int, n_threads: int) -> Iterator[tuple[object, object]]:
        for X_read, labels in reads(source, mini_batch_size, n_threads):  # type: ignore[arg-type]
            # Every read counts, the first included: iter_recordio keeps none of them.
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


def test_reads_start_small_and_double_in_whole_mini_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fmfast.training.loop, "_FIRST_READ_ROWS", 1000)
    monkeypatch.setattr(fmfast.training.loop, "_ROWS_PER_READ", 10_000)
    sizes = fmfast.training.loop.read_sizes(300)
    assert [next(sizes) for _ in range(6)] == [900, 1800, 3600, 7200, 9900, 9900]
    # A mini-batch larger than either bound is read whole.
    sizes = fmfast.training.loop.read_sizes(50_000)
    assert [next(sizes) for _ in range(2)] == [50_000, 50_000]


def test_one_pipeline_reads_every_epoch_and_the_next_epochs_first_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three epochs of four reads: one reader thread for the whole fit, so the first read of an
    # epoch is made while the last of the one before is trained on, never after it.
    monkeypatch.setattr(fmfast.training.loop, "_ROWS_PER_READ", 64)
    monkeypatch.setattr(fmfast.training.loop, "_FIRST_READ_ROWS", 64)
    rng = np.random.default_rng(1)
    X = sp.random_array((256, 12), density=0.3, rng=rng, format="csr", dtype=np.float32)
    y = (X @ rng.normal(size=12)).astype(np.float32)
    fmfast.write_recordio(tmp_path / "train.recordio", X, y)
    pipelines = []
    events: list[str] = []
    reads = fmfast.training.loop.recordio_batches
    train_rows = fmfast.training.loop.train_rows

    def counted_pipeline(chunks: Iterator[object]) -> Iterator[object]:
        pipelines.append(chunks)
        return read_ahead(chunks)

    def logged_reads(source: object, mini_batch_size: int, n_threads: int) -> Iterator[tuple[object, object]]:
        for read in reads(source, mini_batch_size, n_threads):  # type: ignore[arg-type]
            events.append("read")
            yield read

    def logged_training(*args: object, **kwargs: object) -> object:
        time.sleep(0.05)  # long enough for the reader to get ahead
        trained = train_rows(*args, **kwargs)  # type: ignore[arg-type]
        events.append("trained")
        return trained

    monkeypatch.setattr(fmfast.training.loop, "read_ahead", counted_pipeline)
    monkeypatch.setattr(fmfast.training.loop, "recordio_batches", logged_reads)
    monkeypatch.setattr(fmfast.training.loop, "train_rows", logged_training)
    params = {"epochs": 3, "mini_batch_size": 16, "random_state": 0, "n_threads": 1}
    streamed = fmfast.FactorizationMachine("regressor", 4, **params).fit(tmp_path / "train.recordio")
    monkeypatch.setattr(fmfast.training.loop, "train_rows", train_rows)
    in_memory = fmfast.FactorizationMachine("regressor", 4, **params).fit(X, y)
    assert len(pipelines) == 1
    assert events.count("read") == 12 and events.count("trained") == 12
    # Epoch 2's first read (the 5th) is made before training on epoch 1's last (the 4th) ends.
    fifth_read = [i for i, e in enumerate(events) if e == "read"][4]
    fourth_trained = [i for i, e in enumerate(events) if e == "trained"][3]
    assert fifth_read < fourth_trained, events
    np.testing.assert_array_equal(streamed.V_, in_memory.V_)
