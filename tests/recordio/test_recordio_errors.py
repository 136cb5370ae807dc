"""Corrupt, truncated and hostile input: typed errors that say where, never a crash."""

from __future__ import annotations

import io
import struct

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast import _fmfast
from hypothesis import given, settings
from hypothesis import strategies as st
from recordio_bytes import MAGIC, frame, sparse_record
from sagemaker.amazon.record_pb2 import Record

GOOD = frame(sparse_record([1.0, 2.0], [0, 2], [3], label=1.0))  # 52 bytes


def read_error(data: bytes) -> fmfast.RecordIOError:
    with pytest.raises(fmfast.RecordIOError) as caught:
        fmfast.read_recordio(data)
    with pytest.raises(fmfast.RecordIOError) as streamed:
        list(fmfast.iter_recordio(io.BytesIO(data), batch_size=2))
    assert str(streamed.value) == str(caught.value), "streaming and whole reads must agree"
    return caught.value


def test_good_record_reads():
    X, y = fmfast.read_recordio(GOOD + GOOD)
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 2], [1, 0, 2]])
    np.testing.assert_array_equal(y, [1, 1])


@pytest.mark.parametrize(
    ("data", "record", "offset", "message"),
    [
        (GOOD + GOOD[:5], 1, len(GOOD), "truncated header: 5 bytes left"),
        (GOOD + b"\0" * 8, 1, len(GOOD), "bad magic 0x00000000"),
        (GOOD + GOOD[:20], 1, len(GOOD), r"runs past the end of the data \(12 bytes left after the header\)"),
        (struct.pack("<II", MAGIC, (1 << 29) - 1), 0, 0, "length 536870911"),
        (frame(b"\x0a"), 0, 0, "truncated varint"),
        (frame(b"\x0a\x05ab"), 0, 0, "runs past the end of its message"),
        (frame(b"\x08\x01"), 0, 0, "Record field 1 has wire type 0"),
        (frame(b"\x1f"), 0, 0, "unsupported wire type 7"),
        (frame(b""), 0, 0, r'no features\["values"\]'),
        (GOOD + frame(sparse_record([1.0], [5], [3])), 1, len(GOOD), r"key 5 is outside shape \[3\]"),
        (
            GOOD + frame(sparse_record([1.0], [0], [4], 1.0)),
            1,
            len(GOOD),
            "feature dimension 4 differs from 3",
        ),
        (frame(sparse_record([1.0, 2.0], [0], [3])), 0, 0, "1 keys but 2 values"),
        (frame(sparse_record([1.0], [0], [])), 0, 0, "has no shape"),
        (frame(sparse_record([1.0], [0], [3, 2])), 0, 0, "shape has 2 dimensions"),
        (GOOD + frame(sparse_record([1.0], [0], [3])), 1, len(GOOD), "label is no label"),
        (
            GOOD + frame(sparse_record([1.0], [0], [3], 1.0, "float64_tensor")),
            1,
            len(GOOD),
            "features are a Float64Tensor, earlier records a Float32Tensor",
        ),
        (frame(b"\x0a\x0c\x0a\x06values\x12\x02\x4a\x00"), 0, 0, "Bytes values are not supported"),
        (frame(b"\x0a\x0a\x0a\x06values\x12\x00"), 0, 0, "holds no Float32/Float64/Int32 tensor"),
        (frame(b"\x0a\x0e\x0a\x06values\x12\x04\x12\x02\x0a\x03"), 0, 0, "runs past the end"),
        (frame(b"\x0a\x0f\x0a\x06values\x12\x05\x12\x03\x0a\x01\x00"), 0, 0, "not a multiple of 4"),
        (
            frame(b"\x0a\x0e\x0a\x06values\x12\x04\x12\x02\x08\x01"),
            0,
            0,
            "Float32Tensor values have wire type 0",
        ),
        (frame(b"\x0a\x0e\x0a\x06values\x12\x04\x12\x02\x15\x00"), 0, 0, "keys have wire type 5"),
        (frame(b"x", flag=2), 0, 0, "without a first part"),
        (frame(b"x", flag=1), 0, 0, "no last part"),
        (frame(b"x", flag=5), 0, 0, "invalid continuation flag 5"),
    ],
)
def test_errors_name_record_and_offset(data, record, offset, message):
    error = read_error(data)
    assert error.record == record and error.offset == offset
    assert f"record {record} at byte offset {offset}" in str(error)
    assert __import__("re").search(message, str(error)), str(error)


def test_label_with_several_values_is_refused():
    record = Record()
    record.features["values"].float32_tensor.values.extend([1.0])
    record.label["values"].float32_tensor.values.extend([1.0, 2.0])
    assert "label has 2 values, expected 1" in str(read_error(frame(record.SerializeToString())))


def test_duplicate_values_entry_is_refused():
    entry = sparse_record([1.0], [0], [3])
    assert "appears twice" in str(read_error(frame(entry + entry)))


def test_unknown_fields_and_other_map_keys_are_ignored():
    record = Record()
    record.features["values"].float32_tensor.values.extend([1.0, 2.0])
    record.features["other"].float32_tensor.values.extend([9.0])
    record.uid = "row-1"
    record.metadata = "{}"
    X, y = fmfast.read_recordio(frame(record.SerializeToString()))
    np.testing.assert_array_equal(X.toarray(), [[1, 2]])
    assert y is None


def test_unpacked_repeated_fields_are_read():
    # values 1.5 as a fixed32 field, key 2 and shape 4 as plain varints.
    tensor = b"\x0d" + struct.pack("<f", 1.5) + b"\x10\x02\x18\x04"
    value = b"\x12" + bytes([len(tensor)]) + tensor
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    X, _ = fmfast.read_recordio(frame(b"\x0a" + bytes([len(entry)]) + entry))
    np.testing.assert_array_equal(X.toarray(), [[0, 0, 1.5, 0]])


def test_non_finite_values_are_refused_when_asked():
    X = sp.csr_array(np.array([[1.0, 0.0], [np.nan, 2.0]], dtype=np.float32))
    assert len(fmfast.encode_recordio(X)) > 0
    with pytest.raises(fmfast.InvalidInputError, match="row 1: value NaN is not finite"):
        fmfast.encode_recordio(X, check_finite=True)
    with pytest.raises(fmfast.InvalidInputError, match="row 0: label inf is not finite"):
        fmfast.encode_recordio(X[[0]], np.array([np.inf]), check_finite=True)


def test_invalid_csr_arrays_are_refused():
    def csr(data, indices, indptr, shape):
        X = sp.csr_array((3, 3), dtype=np.float32)
        X.data, X.indices, X.indptr, X._shape = data, indices, indptr, shape
        return X

    cases = [
        (
            csr(np.ones(1, np.float32), np.array([5], np.int32), np.array([0, 1, 1, 1], np.int32), (3, 3)),
            "row 0 has column 5",
        ),
        (
            csr(np.ones(2, np.float32), np.array([0, 1], np.int32), np.array([0, 2, 1, 2], np.int32), (3, 3)),
            "decreases at row 1",
        ),
        (
            csr(np.ones(1, np.float32), np.array([-1], np.int32), np.array([0, 0, 1, 1], np.int32), (3, 3)),
            "negative index",
        ),
        (
            csr(np.ones(2, np.float32), np.array([0], np.int32), np.array([0, 0, 1, 1], np.int32), (3, 3)),
            "1 indices but 2 values",
        ),
    ]
    for X, message in cases:
        with pytest.raises(fmfast.InvalidInputError, match=message):
            fmfast.encode_recordio(X)


def test_unsupported_input_dtypes_are_refused():
    with pytest.raises(fmfast.InvalidInputError, match="complex128 are not supported"):
        fmfast.encode_recordio(np.ones((2, 2), dtype=np.complex128))
    with pytest.raises(fmfast.InvalidInputError, match="dtype must be one of"):
        fmfast.encode_recordio(np.ones((2, 2)), dtype="float16")
    with pytest.raises(fmfast.InvalidInputError, match="no SageMaker tensor type"):
        fmfast.encode_recordio(np.ones((2, 2), dtype=np.float16), dtype="auto")
    with pytest.raises(fmfast.InvalidInputError, match="no SageMaker tensor type"):
        fmfast.encode_recordio(np.eye(2), np.ones(2, dtype=np.uint8), dtype="auto")
    with pytest.raises(fmfast.InvalidInputError, match="labels must be a vector"):
        fmfast.encode_recordio(np.ones((2, 2)), np.ones((2, 1)))


def test_failed_file_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.recordio"
    X = sp.csr_array(np.array([[1.0], [1e300]]))
    with pytest.raises(fmfast.InvalidInputError):
        fmfast.write_recordio(target, X)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"previous")
    with pytest.raises(fmfast.InvalidInputError):
        fmfast.write_recordio(target, X)
    assert target.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [target]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_streams_raise_only_fmfast_errors(data):
    stream = bytearray(GOOD + frame(sparse_record([3.0], [1], [3], label=0.0)))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(stream) - 1))
        stream[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(stream)))
    try:
        X, _ = fmfast.read_recordio(bytes(stream[:cut]))
    except fmfast.RecordIOError as error:
        assert 0 <= error.offset <= len(stream)
    else:
        assert X.shape[0] <= 2


def test_encode_args_refuse_what_the_encoder_cannot_read_when_built() -> None:
    values = np.ones(2, np.float32)
    csr = (np.array([0, 1, 2]), np.array([0, 1]))
    args = _fmfast.EncodeArgs((2, 3), csr, values, None, "float32", "float32", False)
    assert args.shape == (2, 3) and args.labels is None
    assert len(_fmfast.encode(args)) > 0
    with pytest.raises(fmfast.InvalidInputError, match='unsupported tensor dtype "float16"'):
        _fmfast.EncodeArgs((2, 3), csr, values, None, "float16", "float32", False)
    with pytest.raises(fmfast.InvalidInputError, match="values must be contiguous 1-D arrays"):
        _fmfast.EncodeArgs((2, 3), csr, values.astype(np.float16), None, "float32", "float32", False)
    with pytest.raises(fmfast.InvalidInputError, match="indptr and indices must be"):
        _fmfast.EncodeArgs(
            (2, 3), (csr[0], csr[1].astype(np.int32)), values, None, "float32", "float32", False
        )
