"""Byte-for-byte parity with the SageMaker SDK 2.x writers, live and against its golden vectors."""

from __future__ import annotations

import io

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from sagemaker.amazon.common import (
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)
from samples import GOLDEN, golden_cases, golden_input, random_csr


def sdk_bytes(writer, array, labels=None) -> bytes:
    """What the SDK writes; it refuses int32 arrays, which fmfast treats like int64 (Int32Tensor)."""
    if array.dtype == np.int32:
        array = array.astype(np.int64)
    if labels is not None and labels.dtype == np.int32:
        labels = labels.astype(np.int64)
    buffer = io.BytesIO()
    writer(buffer, array, labels)
    return buffer.getvalue()


@pytest.mark.parametrize("case", golden_cases(), ids=lambda c: c["name"])
def test_golden_bytes_are_reproduced(case):
    X, labels = golden_input(case["name"])
    layout = "dense" if case["writer"] == "write_numpy_to_dense_tensor" else "sparse"
    encoded = fmfast.encode_recordio(X, labels, layout=layout, dtype="auto")
    assert encoded == (GOLDEN / f"{case['name']}.bin").read_bytes()


@pytest.mark.parametrize("case", golden_cases(), ids=lambda c: c["name"])
def test_golden_bytes_decode_to_their_input(case):
    X, labels = golden_input(case["name"])
    decoded, decoded_labels = fmfast.read_recordio(GOLDEN / f"{case['name']}.bin")
    expected = sp.csr_array(X) if sp.issparse(X) else None
    if expected is None:
        np.testing.assert_array_equal(decoded.toarray(), X)
    else:
        # Stored entries keep their order, duplicates and explicit zeros, as the SDK wrote them.
        np.testing.assert_array_equal(decoded.indptr, expected.indptr)
        np.testing.assert_array_equal(decoded.indices, expected.indices)
        np.testing.assert_array_equal(decoded.data.view(np.uint8), expected.data.view(np.uint8))
        assert decoded.shape == expected.shape
    if labels is None:
        assert decoded_labels is None
    else:
        np.testing.assert_array_equal(decoded_labels, labels.astype(decoded_labels.dtype))


def test_mxnet_multi_part_record_decodes_like_the_sdk_one():
    single = fmfast.read_recordio(GOLDEN / "csr_magic_in_payload.bin")
    parts = fmfast.read_recordio(GOLDEN / "csr_magic_in_payload.mxnet_written.bin")
    assert (single[0] != parts[0]).nnz == 0
    np.testing.assert_array_equal(single[1], parts[1])
    streamed = list(fmfast.iter_recordio(GOLDEN / "csr_magic_in_payload.mxnet_written.bin", 1))
    assert len(streamed) == 1 and (streamed[0][0] != single[0]).nnz == 0


SHAPES = [(1, 1), (7, 3), (40, 25), (200, 1000), (64, 200_001)]


LABEL_DTYPES = [None, np.float32, np.float64, np.int32, np.int64]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.05, 0.6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_sparse_writer_matches_live_sdk(shape, density, dtype):
    seed = SHAPES.index(shape) * 100 + int(density * 50) + np.dtype(dtype).num
    rng = np.random.default_rng(seed)
    label_dtype = LABEL_DTYPES[seed % len(LABEL_DTYPES)]
    X = random_csr(rng, *shape, density, dtype)
    labels = None if label_dtype is None else rng.integers(-3, 6, shape[0]).astype(label_dtype)
    expected = sdk_bytes(write_spmatrix_to_sparse_tensor, X, labels)
    out = io.BytesIO()
    fmfast.write_spmatrix_to_sparse_tensor(out, X, labels, dtype="auto")
    assert out.getvalue() == expected


@pytest.mark.parametrize("shape", [(1, 1), (5, 0), (9, 4), (100, 37)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_dense_writer_matches_live_sdk(shape, dtype):
    rng = np.random.default_rng(3)
    X = (rng.standard_normal(shape) * 40).astype(dtype)
    labels = rng.standard_normal(shape[0]).astype(np.float32)
    expected = sdk_bytes(write_numpy_to_dense_tensor, X, labels)
    out = io.BytesIO()
    fmfast.write_numpy_to_dense_tensor(out, X, labels, dtype="auto")
    assert out.getvalue() == expected


def test_float32_defaults_are_the_sdk_bytes_for_float32_data():
    rng = np.random.default_rng(5)
    X = random_csr(rng, 300, 50, 0.1)
    y = rng.standard_normal(300).astype(np.float32)
    out = io.BytesIO()
    fmfast.write_spmatrix_to_sparse_tensor(out, X, y)
    assert out.getvalue() == sdk_bytes(write_spmatrix_to_sparse_tensor, X, y)


def test_float64_input_is_written_as_float32_by_default():
    rng = np.random.default_rng(6)
    X = random_csr(rng, 50, 20, 0.3, np.float64)
    y = rng.standard_normal(50)
    expected = sdk_bytes(write_spmatrix_to_sparse_tensor, X.astype(np.float32), y.astype(np.float32))
    assert fmfast.encode_recordio(X, y) == expected


@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok"])
def test_other_sparse_formats_write_like_their_csr(fmt):
    rng = np.random.default_rng(7)
    X = random_csr(rng, 30, 12, 0.3)
    y = np.arange(30, dtype=np.float32)
    expected = sdk_bytes(write_spmatrix_to_sparse_tensor, X, y)
    assert fmfast.encode_recordio(X.asformat(fmt), y) == expected
    assert fmfast.encode_recordio(sp.csr_array(X).asformat(fmt), y) == expected


def test_sdk_reads_what_fmfast_writes():
    rng = np.random.default_rng(8)
    X = random_csr(rng, 20, 9, 0.4)
    y = rng.standard_normal(20).astype(np.float32)
    records = read_records(io.BytesIO(fmfast.encode_recordio(X, y)))
    for row, record in enumerate(records):
        tensor = record.features["values"].float32_tensor
        np.testing.assert_array_equal(np.array(tensor.keys), X[[row]].indices)
        np.testing.assert_array_equal(np.array(tensor.values, dtype=np.float32), X[[row]].data)
        assert list(tensor.shape) == [9]
        assert record.label["values"].float32_tensor.values[0] == y[row]


def test_fmfast_reads_what_the_sdk_writes():
    rng = np.random.default_rng(9)
    X = random_csr(rng, 500, 3000, 0.01, np.float64)
    y = rng.integers(0, 2, 500)
    X_back, y_back = fmfast.read_recordio(sdk_bytes(write_spmatrix_to_sparse_tensor, X, y))
    assert X_back.dtype == np.float64 and y_back.dtype == np.int32
    assert (X_back != X).nnz == 0
    np.testing.assert_array_equal(y_back, y)


def test_label_count_mismatch_writes_nothing():
    out = io.BytesIO()
    with pytest.raises(fmfast.InvalidInputError, match="3 rows but 2 labels"):
        fmfast.write_spmatrix_to_sparse_tensor(out, sp.eye(3, format="csr"), np.ones(2))
    assert out.getvalue() == b""


def test_values_that_do_not_fit_are_refused():
    X = sp.csr_array(np.array([[1e300, 0.0]]))
    with pytest.raises(fmfast.InvalidInputError, match="row 0: value 1e300 does not fit in a Float32Tensor"):
        fmfast.encode_recordio(X)
    with pytest.raises(fmfast.InvalidInputError, match="does not fit in a Int32Tensor"):
        fmfast.encode_recordio(sp.csr_array(np.array([[0.5]])), dtype="int32")
    with pytest.raises(fmfast.InvalidInputError, match="label 3000000000 does not fit"):
        fmfast.encode_recordio(sp.eye(1, format="csr"), np.array([3_000_000_000]), label_dtype="int32")


def test_drop_in_writer_accepts_a_path(tmp_path):
    X = sp.random(10, 4, density=0.5, format="csr", dtype=np.float32, random_state=1)
    path = tmp_path / "train.recordio"
    fmfast.write_spmatrix_to_sparse_tensor(path, X)
    assert path.read_bytes() == sdk_bytes(write_spmatrix_to_sparse_tensor, X)
    fmfast.write_numpy_to_dense_tensor(str(path), X.toarray())
    assert path.read_bytes() == sdk_bytes(write_numpy_to_dense_tensor, X.toarray())
