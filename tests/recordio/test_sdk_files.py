"""The SDK drop-in writers given real files: written from Rust through the descriptor, like the SDK."""

from __future__ import annotations

import gzip
import io
import os
import tempfile

import fmfast
import fmfast.recordio.sdk
import numpy as np
import pytest
import scipy.sparse as sp
from sagemaker.amazon import common as sdk

WRITERS = {
    "sparse": (fmfast.write_spmatrix_to_sparse_tensor, sdk.write_spmatrix_to_sparse_tensor),
    "dense": (fmfast.write_numpy_to_dense_tensor, sdk.write_numpy_to_dense_tensor),
}


def rows(seed: int, n_rows: int = 300) -> tuple[sp.csr_matrix, np.ndarray]:
    # A csr_matrix: the SDK calls its getrow.
    X = sp.random(n_rows, 40, density=0.1, format="csr", dtype=np.float32, random_state=seed)
    return X, np.arange(n_rows, dtype=np.float32)


def session(file, writer, layout: str) -> list[int]:
    """What a notebook does with an open file: its own bytes, two writes, more bytes; the positions."""
    first, second = rows(1), rows(2)
    if layout == "dense":
        first, second = (first[0].toarray(), first[1]), (second[0].toarray(), second[1])
    positions = [file.tell()]
    file.write(b"header")
    writer(file, *first)
    positions.append(file.tell())
    writer(file, *second)
    positions.append(file.tell())
    file.write(b"tail")
    positions.append(file.tell())
    return positions


def opened(path, mode: str):
    """``path`` opened in ``mode``, some of it already read or written as a notebook might have."""
    file = open(path, mode)
    if mode == "r+b":
        file.read(7)  # the read buffer holds more than that: the descriptor is further on
    return file


@pytest.fixture
def no_bytes_path(monkeypatch):
    """Real files must not take the bytes path: encoding to a bytes object fails here."""

    def refuse(*args, **kwargs):
        raise AssertionError("encoded to bytes for a real file")

    monkeypatch.setattr(fmfast.recordio.sdk, "encode_recordio", refuse)


@pytest.mark.parametrize("layout", WRITERS)
@pytest.mark.parametrize("mode", ["wb", "ab", "r+b", "w+b"])
def test_real_files_hold_the_sdk_bytes_at_the_sdk_positions(tmp_path, layout, mode, no_bytes_path):
    ours, theirs = WRITERS[layout]
    results = []
    for name, writer in (("fmfast", ours), ("sdk", theirs)):
        path = tmp_path / name
        path.write_bytes(bytes(range(256)) * 40)  # beyond what the writes overwrite, for r+b
        with opened(path, mode) as file:
            positions = session(file, writer, layout)
        results.append((path.read_bytes(), positions))
    assert results[0] == results[1]


@pytest.mark.parametrize("layout", WRITERS)
def test_temporary_files_and_raw_files_are_written_through_the_descriptor(layout, no_bytes_path):
    ours, theirs = WRITERS[layout]
    expected = io.BytesIO()
    session(expected, theirs, layout)
    with tempfile.TemporaryFile() as buffered, tempfile.TemporaryFile(buffering=0) as raw:
        for file in (buffered, raw):
            session(file, ours, layout)
            file.seek(0)
            assert file.read() == expected.getvalue()


def test_compressed_and_in_memory_files_get_the_bytes(tmp_path):
    X, y = rows(3)
    expected = io.BytesIO()
    sdk.write_spmatrix_to_sparse_tensor(expected, X, y)
    # A GzipFile has the descriptor of the file under it: writing there would skip compression.
    with gzip.open(tmp_path / "train.recordio.gz", "wb") as compressed:
        fmfast.write_spmatrix_to_sparse_tensor(compressed, X, y)
    assert gzip.decompress((tmp_path / "train.recordio.gz").read_bytes()) == expected.getvalue()
    memory = io.BytesIO()
    fmfast.write_spmatrix_to_sparse_tensor(memory, X, y)
    assert memory.getvalue() == expected.getvalue()
    read, write = os.pipe()
    with open(write, "wb") as pipe:  # not a regular file: no position to keep
        fmfast.write_spmatrix_to_sparse_tensor(pipe, X[:5], y[:5])
    with open(read, "rb") as pipe:
        assert fmfast.read_recordio(pipe)[0].shape == (5, 40)


def test_refused_input_leaves_the_file_as_it_was(tmp_path, no_bytes_path):
    path = tmp_path / "train.recordio"
    path.write_bytes(b"kept" * 100)
    # Column 99 of 40 is found only while rows are encoded: it is checked before the first byte.
    bad = sp.csr_array((np.ones(3, np.float32), np.array([0, 99, 1]), np.array([0, 1, 3])), shape=(2, 40))
    with open(path, "r+b") as file:
        file.seek(8)
        with pytest.raises(fmfast.InvalidInputError, match="99"):
            fmfast.write_spmatrix_to_sparse_tensor(file, bad)
        with pytest.raises(fmfast.InvalidInputError, match="2 rows but 3 labels"):
            fmfast.write_spmatrix_to_sparse_tensor(file, bad[:, :2], np.ones(3))
        assert file.tell() == 8
    assert path.read_bytes() == b"kept" * 100


@pytest.mark.parametrize("mode", ["ab", "wb"])
def test_a_row_refused_while_writing_at_the_end_is_cut_off(tmp_path, mode, no_bytes_path):
    path = tmp_path / "train.recordio"
    path.write_bytes(b"kept")
    X, y = rows(4, n_rows=200_000)  # four stages of the encoder: three are written before the fourth fails
    X = sp.csr_array(X)
    X.indices[-1] = 99  # found only when the last rows are encoded, after the first have been written
    with open(path, mode) as file:
        file.write(b"head")
        with pytest.raises(fmfast.InvalidInputError, match="99"):
            fmfast.write_spmatrix_to_sparse_tensor(file, X, y)
        file.write(b"tail")
    assert path.read_bytes() == (b"kept" if mode == "ab" else b"") + b"headtail"
