"""The native RecordIO API: round trips, threads, streaming, chunked writing, shards."""

from __future__ import annotations

import io
import json
import resource

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.recordio.shards import MANIFEST_NAME
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from samples import random_csr


def assert_same_csr(a, b):
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


@settings(max_examples=60, deadline=None)
@given(
    dense=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=12),
        elements=st.sampled_from([0.0, 0.0, 1.0, -2.5, 3e38, 1e-40, np.inf]),
    ),
    with_labels=st.booleans(),
    layout=st.sampled_from(["sparse", "dense"]),
)
def test_round_trip(dense, with_labels, layout):
    labels = np.arange(dense.shape[0], dtype=np.float32) if with_labels else None
    X_back, y_back = fmfast.read_recordio(fmfast.encode_recordio(dense, labels, layout=layout))
    if dense.shape[0] == 0 or (dense.shape[1] == 0 and layout == "dense"):
        # The width travels in the records: none (no rows), or a dense record of no values.
        assert X_back.shape == (dense.shape[0], 0)
    else:
        np.testing.assert_array_equal(X_back.toarray(), dense)
    if with_labels:
        np.testing.assert_array_equal(y_back, labels)
    else:
        assert y_back is None


def test_decoded_arrays_are_scipy_ready():
    X = random_csr(np.random.default_rng(1), 1000, 70_000, 0.001)
    X_back, y = fmfast.read_recordio(fmfast.encode_recordio(X))
    assert isinstance(X_back, sp.csr_array)
    assert X_back.indices.dtype == np.int32 and X_back.indptr.dtype == np.int32
    assert X_back.data.dtype == np.float32 and y is None
    assert_same_csr(X_back, sp.csr_array(X))


def test_bytes_are_identical_for_every_thread_count():
    X = random_csr(np.random.default_rng(2), 300_000, 5000, 0.0006)
    y = np.random.default_rng(3).standard_normal(300_000).astype(np.float32)
    encoded = {n: fmfast.encode_recordio(X, y, n_threads=n) for n in (1, 2, 3)}
    assert encoded[1] == encoded[2] == encoded[3]
    decoded = [fmfast.read_recordio(encoded[1], n_threads=n) for n in (1, 3)]
    assert_same_csr(decoded[0][0], decoded[1][0])
    np.testing.assert_array_equal(decoded[0][1], y)


@pytest.mark.parametrize("kind", ["path", "file", "bytes"])
def test_iter_recordio_batches_concatenate_to_the_whole(tmp_path, kind):
    X = random_csr(np.random.default_rng(4), 1037, 40, 0.1)
    y = np.arange(1037, dtype=np.float32)
    path = tmp_path / "data.recordio"
    fmfast.write_recordio(path, X, y)
    source = {"path": path, "file": open(path, "rb"), "bytes": path.read_bytes()}[kind]
    batches = list(fmfast.iter_recordio(source, batch_size=100))
    assert [b[0].shape[0] for b in batches] == [100] * 10 + [37]
    assert all(b[0].shape[1] == 40 for b in batches)
    assert_same_csr(sp.vstack([b[0] for b in batches], format="csr"), sp.csr_array(X))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_iter_recordio_fills_the_memory_of_freed_batches_again(tmp_path):
    """Once freed, a batch's arrays hold a later batch: fresh memory would cost a page fault every 4 KiB."""
    n_rows, batch = 1_200_000, 200_000
    rows = np.arange(n_rows)
    # Three entries a row: every batch's arrays take the same bytes.
    columns = np.sort(np.stack([rows % 40, (rows + 1) % 40, (rows + 7) % 40], axis=1), axis=1)
    X = sp.csr_array((np.ones(3 * n_rows, np.float32), columns.ravel(), np.arange(0, 3 * n_rows + 1, 3)))
    y = np.arange(n_rows, dtype=np.float32)
    path = tmp_path / "data.recordio"
    fmfast.write_recordio(path, X, y)
    faults = []
    for start, (X_batch, labels) in zip(
        range(0, n_rows, batch), fmfast.iter_recordio(path, batch_size=batch), strict=True
    ):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        # Checks that allocate nothing (the whole is compared in the test above).
        assert (labels[0], labels[-1], X_batch.nnz) == (start, start + batch - 1, 3 * batch)
        assert X_batch.indices[-3:].tolist() == columns[start + batch - 1].tolist()
        del X_batch, labels
    # 24 bytes of arrays a row: 1,170 pages a batch if each were fresh. The first two batches (the
    # one held and the one read meanwhile) take fresh memory, the next four theirs.
    assert faults[-1] - faults[1] < 0.1 * 4 * batch * 24 / 4096, faults


def test_iter_recordio_reports_positions_in_the_whole_stream():
    stream = fmfast.encode_recordio(sp.eye(5, format="csr"), np.ones(5))
    record_size = len(stream) // 5
    broken = stream[: 4 * record_size] + b"\0" * record_size
    with pytest.raises(fmfast.RecordIOError) as caught:
        list(fmfast.iter_recordio(broken, batch_size=2))
    assert (caught.value.record, caught.value.offset) == (4, 4 * record_size)


def test_chunked_writer_equals_one_write(tmp_path):
    X = random_csr(np.random.default_rng(5), 1000, 30, 0.2)
    y = np.random.default_rng(6).standard_normal(1000).astype(np.float32)
    with fmfast.RecordIOWriter(tmp_path / "chunks.recordio") as writer:
        for start in range(0, 1000, 333):
            writer.write(X[start : start + 333], y[start : start + 333])
    assert writer.rows_written == 1000
    assert (tmp_path / "chunks.recordio").read_bytes() == fmfast.encode_recordio(X, y)


def test_files_of_several_direct_blocks_are_the_bytes_encoded(tmp_path):
    # Over four 4 MiB blocks, the size not a multiple of 4096: whole blocks go out with direct I/O
    # (where the file system takes it), the rest through the page cache.
    X = random_csr(np.random.default_rng(7), 200_001, 40, 0.25)
    y = np.random.default_rng(8).standard_normal(X.shape[0]).astype(np.float32)
    expected = fmfast.encode_recordio(X, y)
    assert len(expected) > 4 * (4 << 20) and len(expected) % 4096
    fmfast.write_recordio(tmp_path / "whole.recordio", X, y)
    assert (tmp_path / "whole.recordio").read_bytes() == expected
    with fmfast.RecordIOWriter(tmp_path / "chunks.recordio") as writer:
        for start in range(0, X.shape[0], 70_001):
            writer.write(X[start : start + 70_001], y[start : start + 70_001])
    assert (tmp_path / "chunks.recordio").read_bytes() == expected
    with pytest.raises(KeyboardInterrupt):
        with fmfast.RecordIOWriter(tmp_path / "aborted.recordio") as writer:
            writer.write(X, y)
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunks.recordio", "whole.recordio"]


def test_chunked_writer_refuses_inconsistent_chunks_and_leaves_nothing(tmp_path):
    target = tmp_path / "chunks.recordio"
    with pytest.raises(fmfast.InvalidInputError, match="chunk has 4 columns, earlier chunks 3"):
        with fmfast.RecordIOWriter(target) as writer:
            writer.write(np.ones((2, 3)), np.ones(2))
            writer.write(np.ones((2, 4)), np.ones(2))
    with pytest.raises(fmfast.InvalidInputError, match="every chunk has labels or none"):
        with fmfast.RecordIOWriter(target) as writer:
            writer.write(np.ones((2, 3)), np.ones(2))
            writer.write(np.ones((2, 3)))
    assert list(tmp_path.iterdir()) == []


def test_shards_are_balanced_deterministic_and_complete(tmp_path):
    X = random_csr(np.random.default_rng(7), 103, 20, 0.2)
    y = np.arange(103, dtype=np.float32)
    paths = fmfast.write_recordio_shards(tmp_path, X, y, n_shards=4, manifest_prefix="s3://bucket/train/")
    assert [p.name for p in paths] == [f"part-0000{i}-of-00004.recordio" for i in range(4)]
    parts = [fmfast.read_recordio(p) for p in paths]
    assert [part[0].shape[0] for part in parts] == [25, 26, 26, 26]
    assert_same_csr(sp.vstack([p[0] for p in parts], format="csr"), sp.csr_array(X))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest == [{"prefix": "s3://bucket/train/"}, *(p.name for p in paths)]


def test_shards_validate_their_arguments(tmp_path):
    with pytest.raises(fmfast.InvalidInputError, match="n_shards must be at least 1"):
        fmfast.write_recordio_shards(tmp_path, np.ones((2, 2)), n_shards=0)
    with pytest.raises(fmfast.InvalidInputError, match="2 rows but labels of shape"):
        fmfast.write_recordio_shards(tmp_path, np.ones((2, 2)), np.ones(3), n_shards=1)


def test_progress_callback_sees_every_row():
    seen = []
    X = random_csr(np.random.default_rng(8), 200_000, 10, 0.2)
    fmfast.encode_recordio(X, progress=seen.append)
    assert seen == [131_072, 200_000]
    fmfast.read_recordio(fmfast.encode_recordio(X), progress=seen.append)
    assert seen[-1] == 200_000


def test_iter_recordio_reports_the_records_read_after_each_batch(tmp_path):
    X = random_csr(np.random.default_rng(9), 2_500, 10, 0.2)
    fmfast.write_recordio_shards(tmp_path / "shards", X, n_shards=2)
    seen = []
    batches = fmfast.iter_recordio(tmp_path / "shards", batch_size=1_000, progress=seen.append)
    sizes = [batch.shape[0] for batch, _ in batches]
    assert seen == list(np.cumsum(sizes)) and seen[-1] == 2_500 and len(sizes) > 2


def test_an_exception_in_the_progress_callback_stops_the_work(tmp_path):
    def stop(done):
        raise KeyboardInterrupt

    X = random_csr(np.random.default_rng(9), 200_000, 10, 0.2)
    with pytest.raises(KeyboardInterrupt):
        fmfast.write_recordio(tmp_path / "x.recordio", X, progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_sources_of_every_kind_read_alike(tmp_path):
    encoded = fmfast.encode_recordio(sp.eye(3, format="csr"), np.ones(3))
    (tmp_path / "f").write_bytes(encoded)
    sources = [encoded, bytearray(encoded), memoryview(encoded), np.frombuffer(encoded, np.uint8)]
    sources += [io.BytesIO(encoded), tmp_path / "f", str(tmp_path / "f")]
    for source in sources:
        X, _ = fmfast.read_recordio(source)
        np.testing.assert_array_equal(X.toarray(), np.eye(3))


def test_empty_stream_reads_as_no_rows(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    for source in (b"", tmp_path / "empty"):
        X, y = fmfast.read_recordio(source)
        assert X.shape == (0, 0) and y is None
    assert list(fmfast.iter_recordio(b"")) == []
