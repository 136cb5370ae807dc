"""MXNet NDArray list files: golden files from MXNet 1.9.1, round trips, layout, hostile input."""

from __future__ import annotations

import struct
from pathlib import Path

import fmfast
import numpy as np
import pytest
import scipy.sparse as sp
from fmfast.interop.mxnet_params import RowSparse, read_mxnet_params, write_mxnet_params
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

GOLDEN = Path(__file__).parent.parent / "data" / "mxnet-golden"
PARAMS = sorted(p.stem for p in (GOLDEN / "params").glob("*.params"))
DENSE_FILES = ["fm_dense", "fm_noprefix", "list_f32", "mixed_dtypes", "extra_dtypes", "np_shape_v3"]


def raw(name: str) -> bytes:
    return (GOLDEN / "params" / f"{name}.params").read_bytes()


def truth(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "truth" / f"{name}.npz", allow_pickle=False) as z:
        return {key: z[key] for key in z}


def assert_exact(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def test_every_golden_file_is_covered():
    assert len(PARAMS) == 8


@pytest.mark.parametrize("name", ["fm_dense", "fm_noprefix", "mixed_dtypes", "extra_dtypes", "np_shape_v3"])
def test_dense_golden_loads_to_truth(name):
    loaded = read_mxnet_params(raw(name))
    expected = truth(name)
    assert isinstance(loaded, dict)
    assert list(loaded) == list(expected)
    for key, value in expected.items():
        assert_exact(loaded[key], value)


def test_list_file_loads_as_list():
    loaded = read_mxnet_params(raw("list_f32"))
    expected = truth("list_f32")
    assert isinstance(loaded, list)
    assert len(loaded) == 3
    for i, value in enumerate(loaded):
        assert_exact(value, expected[f"arr_{i}"])


def test_np_shape_v3_keeps_0d_and_empty():
    loaded = read_mxnet_params(raw("np_shape_v3"))
    assert loaded["scalar"].shape == ()
    assert loaded["scalar"][()] == np.float32(2.5)
    assert loaded["empty"].shape == (2, 0)


def test_row_sparse_golden_dense_and_raw():
    expected = truth("fm_rowsparse")
    dense = read_mxnet_params(raw("fm_rowsparse"))
    kept = read_mxnet_params(raw("fm_rowsparse"), keep_row_sparse=True)
    for key in ("arg:v", "arg:w1_weight"):
        assert_exact(dense[key], expected[f"{key}__dense"])
        assert isinstance(kept[key], RowSparse)
        assert_exact(kept[key].data, expected[f"{key}__data"])
        assert_exact(kept[key].indices, expected[f"{key}__indices"])
        assert_exact(kept[key].toarray(), expected[f"{key}__dense"])
    assert_exact(dense["arg:w0_weight"], expected["arg:w0_weight"])


def test_csr_golden_is_scipy_csr():
    expected = truth("csr")
    x = read_mxnet_params(raw("csr"))["x"]
    assert isinstance(x, sp.csr_array)
    assert_exact(x.data, expected["x__data"])
    np.testing.assert_array_equal(x.indptr, expected["x__indptr"])
    np.testing.assert_array_equal(x.indices, expected["x__indices"])
    assert_exact(x.toarray(), expected["x__dense"])


@pytest.mark.parametrize("name", DENSE_FILES)
def test_dump_reencodes_golden_byte_identically(name):
    data = raw(name)
    assert write_mxnet_params(read_mxnet_params(data)) == data


def test_dump_densifies_sparse_inputs():
    loaded = read_mxnet_params(raw("fm_rowsparse"), keep_row_sparse=True)
    assert write_mxnet_params(loaded) == write_mxnet_params(read_mxnet_params(raw("fm_rowsparse")))
    x = read_mxnet_params(raw("csr"))["x"]
    np.testing.assert_array_equal(read_mxnet_params(write_mxnet_params({"x": x}))["x"], x.toarray())


def test_dump_names_false_writes_a_list():
    arrays = read_mxnet_params(raw("fm_dense"))
    loaded = read_mxnet_params(write_mxnet_params(arrays, names=False))
    assert isinstance(loaded, list)
    for a, b in zip(loaded, arrays.values(), strict=True):
        assert_exact(a, b)


def test_dump_refuses_unsupported_dtype():
    with pytest.raises(fmfast.InvalidInputError, match="complex128"):
        write_mxnet_params({"c": np.zeros(2, dtype=np.complex128)})
    with pytest.raises(fmfast.InvalidInputError, match="0-d"):
        write_mxnet_params({"s": np.float32(1)}, version=2)


def test_big_endian_input_is_written_little_endian():
    value = np.arange(6, dtype=">f8").reshape(2, 3)
    loaded = read_mxnet_params(write_mxnet_params({"x": value}))["x"]
    assert loaded.dtype == np.dtype("<f8")
    np.testing.assert_array_equal(loaded, value)


# ---------------------------------------------------------------------------------------------
# An independent header parser checks the written layout.


def parse_layout(data: bytes) -> list[tuple[str, tuple[int, ...], int, int]]:
    """(name, shape, type_flag, data offset) of every array, read with struct only."""
    assert struct.unpack_from("<QQ", data, 0) == (0x112, 0)
    (n,) = struct.unpack_from("<Q", data, 16)
    pos, found = 24, []
    sizes = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1}
    for _ in range(n):
        magic, stype, ndim = struct.unpack_from("<Iii", data, pos)
        assert magic in (0xF993FAC9, 0xF993FACA) and stype == 0
        shape = struct.unpack_from(f"<{ndim}q", data, pos + 12)
        pos += 12 + 8 * ndim
        dev_type, dev_id, flag = struct.unpack_from("<iii", data, pos)
        assert (dev_type, dev_id) == (1, 0)
        pos += 12
        found.append(["", tuple(shape), flag, pos])
        pos += int(np.prod(shape, dtype=np.int64)) * sizes[flag]
    (k,) = struct.unpack_from("<Q", data, pos)
    pos += 8
    for i in range(k):
        (length,) = struct.unpack_from("<Q", data, pos)
        found[i][0] = data[pos + 8 : pos + 8 + length].decode()
        pos += 8 + length
    assert pos == len(data)
    return [tuple(item) for item in found]  # type: ignore[misc]


DTYPE_FLAGS = {
    np.dtype("float32"): 0,
    np.dtype("float64"): 1,
    np.dtype("float16"): 2,
    np.dtype("uint8"): 3,
    np.dtype("int32"): 4,
    np.dtype("int8"): 5,
    np.dtype("int64"): 6,
    np.dtype("bool"): 7,
}

arrays_strategy = st.lists(
    hnp.arrays(
        dtype=st.sampled_from(list(DTYPE_FLAGS)),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    min_size=0,
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(arrays=arrays_strategy, as_dict=st.booleans())
def test_dump_load_round_trip_and_layout(arrays, as_dict):
    value = {f"arg:a{i}": a for i, a in enumerate(arrays)} if as_dict else arrays
    data = write_mxnet_params(value)
    loaded = read_mxnet_params(data)
    if not arrays:
        assert loaded == []  # an empty file has no names: MXNet loads it as a list too
        pairs = []
    elif as_dict:
        assert isinstance(loaded, dict) and list(loaded) == list(value)
        pairs = list(zip(loaded.values(), value.values(), strict=True))
    else:
        assert isinstance(loaded, list)
        pairs = list(zip(loaded, arrays, strict=True))
    for got, want in pairs:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)  # NaN compares equal here
        assert got.tobytes() == want.tobytes()
    layout = parse_layout(data)
    for (name, shape, flag, offset), (key, want) in zip(
        layout, (value.items() if as_dict else enumerate(arrays)), strict=True
    ):
        assert name == (key if as_dict else "")
        assert shape == want.shape and flag == DTYPE_FLAGS[want.dtype]
        assert data[offset : offset + want.nbytes] == np.ascontiguousarray(want).tobytes()


# ---------------------------------------------------------------------------------------------
# Hostile and corrupt input: only ModelFormatError, with the offset.


@pytest.mark.parametrize("name", PARAMS)
def test_truncated_at_every_offset_raises_model_format_error(name):
    data = raw(name)
    for cut in range(len(data)):
        with pytest.raises(fmfast.ModelFormatError, match="offset"):
            read_mxnet_params(data[:cut])


@pytest.mark.parametrize("name", PARAMS)
def test_flipped_bytes_never_crash(name):
    data = bytearray(raw(name))
    rng = np.random.default_rng(0)
    for position in rng.integers(0, len(data), 300):
        corrupt = bytearray(data)
        corrupt[position] ^= 0xFF
        try:
            read_mxnet_params(bytes(corrupt))
        except fmfast.ModelFormatError:
            pass


def dense_file(shape_bytes: bytes, flag: int = 0, payload: bytes = b"", magic: int = 0xF993FAC9) -> bytes:
    array = struct.pack("<Ii", magic, 0) + shape_bytes + struct.pack("<iii", 1, 0, flag) + payload
    return struct.pack("<QQQ", 0x112, 0, 1) + array + struct.pack("<Q", 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 24, "bad file magic 0x0"),
        (struct.pack("<QQQ", 0x112, 0, 1 << 60), "array count"),
        (dense_file(struct.pack("<i", 33)), "ndim 33, more than 32"),
        (dense_file(struct.pack("<i", -5)), "ndim -5"),
        (dense_file(struct.pack("<iq", 1, -3)), "negative dimension"),
        (dense_file(struct.pack("<iqq", 2, 1 << 40, 1 << 40)), r"needs \d+ bytes, 8 left"),
        (dense_file(struct.pack("<iq", 1, 2), payload=b"\0" * 7), "needs 8 bytes, 7 left"),
        (dense_file(struct.pack("<iq", 1, 1), flag=9, payload=b"\0" * 4), "unknown array 0 dtype 9"),
        (dense_file(struct.pack("<iq", 1, 1), payload=b"\0" * 4, magic=0xDEADBEEF), "bad magic 0xdeadbeef"),
        (dense_file(struct.pack("<iq", 1, 1), payload=b"\0" * 4) + b"x", "1 bytes after the end"),
        (
            struct.pack("<QQQIi", 0x112, 0, 1, 0xF993FAC9, 3) + b"\0" * 40,
            "unknown storage type 3",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_malformed_headers(data, message):
    with pytest.raises(fmfast.ModelFormatError, match=message) as caught:
        read_mxnet_params(data)
    assert caught.value.offset is not None and 0 <= caught.value.offset <= len(data)
    assert isinstance(caught.value, fmfast.FmFastError)


def test_error_names_the_offset():
    data = dense_file(struct.pack("<iq", 1, 1), flag=9, payload=b"\0" * 4)
    with pytest.raises(fmfast.ModelFormatError, match=r"at byte offset 52\)") as caught:
        read_mxnet_params(data)
    assert caught.value.offset == 52  # 24 file header + 20 magic, stype, shape + 8 context


def test_name_count_must_match():
    data = raw("fm_dense")
    at = len(data) - (8 + 5) - 2 * (8 + 13) - 8
    assert struct.unpack_from("<Q", data, at) == (3,)
    with pytest.raises(fmfast.ModelFormatError, match="2 names for 3 arrays"):
        read_mxnet_params(data[:at] + struct.pack("<Q", 2) + data[at + 8 :])


def test_row_sparse_indices_are_checked():
    data = bytearray(raw("fm_rowsparse"))
    struct.pack_into("<q", data, 0xC4 + 8, 99)  # second row index of arg:v beyond 50 rows
    with pytest.raises(fmfast.ModelFormatError, match="row indices"):
        read_mxnet_params(bytes(data))


def test_csr_indptr_is_checked():
    data = bytearray(raw("csr"))
    struct.pack_into("<q", data, 120 + 8, 5)
    with pytest.raises(fmfast.ModelFormatError, match="indptr"):
        read_mxnet_params(bytes(data))


def test_legacy_v1_and_pre_v1_arrays():
    values = np.array([1.5, -2.0], dtype=np.float32)
    v1 = struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<Iiq", 0xF993FAC8, 1, 2)
    v1 += struct.pack("<iii", 1, 0, 0) + values.tobytes() + struct.pack("<Q", 0)
    np.testing.assert_array_equal(read_mxnet_params(v1)[0], values)
    legacy = struct.pack("<QQQ", 0x112, 0, 1) + struct.pack("<II", 1, 2)
    legacy += struct.pack("<iii", 1, 0, 0) + values.tobytes() + struct.pack("<Q", 0)
    np.testing.assert_array_equal(read_mxnet_params(legacy)[0], values)


def test_bool_dtype_round_trips():
    value = np.array([[True, False], [False, True]])
    assert_exact(read_mxnet_params(write_mxnet_params({"b": value}))["b"], value)
