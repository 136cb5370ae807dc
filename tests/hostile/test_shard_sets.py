"""Shard sets are written whole: they replace a directory atomically, refuse to replace one that
holds other files, and directory readers refuse an incomplete or mixed set."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

import fmfast
import numpy as np
import pytest
from fmfast.recordio.shards import recordio_files, shard_name


def fm() -> fmfast.FactorizationMachine:
    return fmfast.FactorizationMachine("regressor", 4, mini_batch_size=100)


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return rng.random((n, 6), dtype=np.float32), rng.random(n, dtype=np.float32)


def test_a_new_set_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "train"
    fmfast.write_recordio_shards(target, *data(800), n_shards=8, manifest_prefix="s3://b/t/")
    paths = fmfast.write_recordio_shards(target, *data(400), n_shards=4)
    assert sorted(target.iterdir()) == paths == recordio_files(target)
    assert sum(fmfast.read_recordio(p)[0].shape[0] for p in paths) == 400


def test_read_and_iter_take_a_directory_as_its_files_in_order(tmp_path: Path) -> None:
    X, y = data(1000)
    fmfast.write_recordio_shards(tmp_path / "train", X, y, n_shards=3)
    X_back, y_back = fmfast.read_recordio(tmp_path / "train")
    np.testing.assert_array_equal(X_back.toarray(), X)
    np.testing.assert_array_equal(y_back, y)
    batches = list(fmfast.iter_recordio(tmp_path / "train", batch_size=400))
    assert [b.shape[0] for b, _ in batches] == [333, 333, 334]
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]), y)
    other = tmp_path / "other"
    other.mkdir()
    fmfast.write_recordio(other / "a.rec", X, y)
    fmfast.write_recordio(other / "b.rec", X[:, :4], y)
    message = "differ: 4 float32 features with labels after 6 float32 features with labels"
    with pytest.raises(fmfast.InvalidInputError, match=message):
        fmfast.read_recordio(other)
    with pytest.raises(fmfast.InvalidInputError, match=message):
        list(fmfast.iter_recordio(other))


def test_a_set_with_empty_shards_reads_as_its_rows(tmp_path: Path) -> None:
    # More shards than rows, as a Spark partition without rows writes: the empty files have no
    # kind of record, and agree with any.
    X, y = data(3)
    fmfast.write_recordio_shards(tmp_path / "train", X, y, n_shards=5)
    assert sorted(p.stat().st_size == 0 for p in (tmp_path / "train").iterdir()) == [False] * 3 + [True] * 2
    X_back, y_back = fmfast.read_recordio(tmp_path / "train")
    np.testing.assert_array_equal(X_back.toarray(), X)
    np.testing.assert_array_equal(y_back, y)
    assert sum(b.shape[0] for b, _ in fmfast.iter_recordio(tmp_path / "train")) == 3


def test_a_failed_write_leaves_the_old_set(tmp_path: Path) -> None:
    target = tmp_path / "train"
    fmfast.write_recordio_shards(target, *data(400), n_shards=4)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    X, y = data(400)
    X[-1, 0] = np.nan  # refused when the last shard is written
    with pytest.raises(fmfast.InvalidInputError):
        fmfast.write_recordio_shards(target, X, y, n_shards=2, check_finite=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["train"]


def test_a_directory_with_other_files_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(
        fmfast.InvalidInputError, match=r"holds 'notes\.txt', which is not part of a shard set"
    ):
        fmfast.write_recordio_shards(tmp_path, *data(10), n_shards=2)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_readers_refuse_incomplete_and_mixed_sets(tmp_path: Path) -> None:
    """What a non-atomic writer killed midway left: a set with a shard missing, or shards of
    two sets side by side."""
    whole = tmp_path / "whole"
    fmfast.write_recordio_shards(whole, *data(400), n_shards=4)
    incomplete = tmp_path / "incomplete"
    shutil.copytree(whole, incomplete)
    (incomplete / shard_name(2, 4)).unlink()
    incomplete_set = r"incomplete shard set: part-00002-of-00004\.recordio and 0"
    for read in (fm().fit, fmfast.read_recordio, lambda path: list(fmfast.iter_recordio(path))):
        with pytest.raises(fmfast.InvalidInputError, match=incomplete_set):
            read(incomplete)
    mixed = tmp_path / "mixed"
    shutil.copytree(whole, mixed)
    shutil.copy(whole / shard_name(0, 4), mixed / shard_name(0, 8))
    with pytest.raises(fmfast.InvalidInputError, match="mixes shard sets of 4 and 8 shards named part-"):
        fm().fit(mixed)
    (mixed / shard_name(0, 8)).rename(mixed / shard_name(4, 4))
    with pytest.raises(fmfast.InvalidInputError, match=r"holds part-00004-of-00004\.recordio: no such shard"):
        fm().fit(mixed)
    # A directory of files named otherwise is read as before, in name order.
    other = tmp_path / "other"
    other.mkdir()
    for name in ("b.recordio", "a.rec"):
        fmfast.write_recordio(other / name, *data(100))
    assert [p.name for p in recordio_files(other)] == ["a.rec", "b.recordio"]
    assert fm().fit(other).feature_dim_ == 6


def test_only_stale_unlocked_temporaries_are_removed(tmp_path: Path) -> None:
    def leftover(name: str, age: float, directory: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir() if directory else path.write_bytes(b"partial")
        os.utime(path, (time.time() - age,) * 2)
        return path

    dead_file = leftover(".fmfast-dead.tmp", 3600)
    dead_dir = leftover(".fmfast-deaddir.tmp", 3600, directory=True)
    (dead_dir / "part-00000-of-00002.recordio").write_bytes(b"x")
    os.utime(dead_dir, (time.time() - 3600,) * 2)
    young = leftover(".fmfast-young.tmp", 1)
    held = leftover(".fmfast-held.tmp", 3600)
    unrelated = leftover("data.tmp", 3600)
    with open(held, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a live writer does
        fmfast.write_recordio(tmp_path / "new.recordio", *data(10))
    assert not dead_file.exists() and not dead_dir.exists()
    assert young.exists() and held.exists() and unrelated.exists()
